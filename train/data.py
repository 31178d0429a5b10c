"""Datasets of /work/shared/data as the tagger trainer needs them."""
import csv
import functools
import hashlib
import json
import os

import numpy as np
from PIL import Image

from preprocess import SIZE

SHARED = os.environ.get("WEFT_SHARED", "/work/shared")
CLOTHING = os.path.join(SHARED, "data/clothing")
STREET = os.path.join(SHARED, "data/street")
CATALOG = os.path.join(SHARED, "data/catalog-val")
MOBILENET = os.path.join(SHARED, "models/init/mobilenet_v2_imagenet.onnx")


def imagenet_labels():
    """The ImageNet classifier's 1001 class names, in its output order (0 = background)."""
    with open(os.path.join(SHARED, "models/init/imagenet_labels_1001.txt")) as f:
        return [line.strip() for line in f]

TYPES = ["t-shirt", "long sleeve", "pants", "shoes", "shirt", "dress", "outerwear", "shorts", "hat", "skirt",
         "polo", "undershirt", "blazer", "hoodie", "bodysuit", "top", "blouse"]
# Street mask labels that are not the product: background, hair and skin.
STREET_NOT_GARMENT = {"null", "hair", "skin"}
VAL_PERCENT = 15


def is_clothing_val(image):
    """Deterministic ~15% hold-out by MD5 of the file name."""
    h = int(hashlib.md5(os.path.basename(image).encode()).hexdigest()[:8], 16)
    return h % 100 < VAL_PERCENT


def clothing_rows():
    """[(path, type index, is_val)] for every labelled clothing photo."""
    out = []
    with open(os.path.join(CLOTHING, "labels.csv")) as f:
        for r in csv.DictReader(f):
            out.append((os.path.join(CLOTHING, r["image"]), TYPES.index(r["label"]), is_clothing_val(r["image"])))
    return out


def street_mask_path(image_path):
    return os.path.join(STREET, "masks", os.path.splitext(os.path.basename(image_path))[0] + ".png")


@functools.lru_cache(maxsize=None)
def street_mask_labels():
    """Names of the street mask indices (mask_labels.json)."""
    with open(os.path.join(STREET, "mask_labels.json")) as f:
        return tuple(json.load(f))


def street_masked():
    """[(image path, mask path)] for the pixel-annotated street photos."""
    out = []
    with open(os.path.join(STREET, "images.csv")) as f:
        for r in csv.DictReader(f):
            if r["annotation"] == "pixel":
                img = os.path.join(STREET, r["image"])
                out.append((img, street_mask_path(img)))
    return out


def catalog_rows():
    with open(os.path.join(CATALOG, "labels.csv")) as f:
        return [dict(r, path=os.path.join(CATALOG, r["path"])) for r in csv.DictReader(f)]


def square_float_mask(mask, size):
    """Pad a float HxW mask to square the way preprocess pads images (zeros = not garment) and resize."""
    h, w = mask.shape
    side = max(h, w)
    out = np.zeros((side, side), np.float32)
    top, left = (side - h) // 2, (side - w) // 2
    out[top:top + h, left:left + w] = mask
    return np.asarray(Image.fromarray(out, mode="F").resize((size, size), Image.BILINEAR), np.float32)


def augment(img, rng):
    """A training view of a square RGB PIL image: random crop/scale, flip, small rotation,
    brightness/contrast/saturation jitter. Hue is left alone (colour is a label too)."""
    from PIL import ImageEnhance
    side = img.size[0]
    if rng.random() < 0.3:  # zoom out: the garment smaller in the frame, border-coloured margin
        grow = int(side * rng.uniform(1.05, 1.4))
        fill = tuple(int(v) for v in np.median(np.asarray(img)[[0, -1]].reshape(-1, 3), axis=0))
        canvas = Image.new("RGB", (grow, grow), fill)
        canvas.paste(img, ((grow - side) // 2 + rng.integers(-5, 6), (grow - side) // 2 + rng.integers(-5, 6)))
        img, side = canvas, grow
    else:
        scale = rng.uniform(0.65, 1.0)
        aspect = np.exp(rng.uniform(np.log(0.8), np.log(1.25)))
        w = int(min(side, side * np.sqrt(scale * aspect)))
        h = int(min(side, side * np.sqrt(scale / aspect)))
        x0, y0 = rng.integers(0, side - w + 1), rng.integers(0, side - h + 1)
        img = img.crop((x0, y0, x0 + w, y0 + h))
    if rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    if rng.random() < 0.3:
        img = img.rotate(rng.uniform(-12, 12), resample=Image.BILINEAR, expand=False,
                         fillcolor=tuple(np.asarray(img)[0, 0].tolist()))
    img = img.resize((SIZE, SIZE), Image.BILINEAR)
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.75, 1.25))
    img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.75, 1.25))
    return ImageEnhance.Color(img).enhance(rng.uniform(0.8, 1.2))


def on_white(img, mask, rng):
    """Composite the masked part of an image onto a plain near-white studio background."""
    a = np.asarray(img, np.float32)
    m = np.clip(mask, 0, 1)[..., None]
    bg = np.full_like(a, rng.uniform(232, 255))
    return Image.fromarray((a * m + bg * (1 - m)).round().astype(np.uint8))


def street_garment_view(image_path, label, worn, bg=246):
    """A catalogue-like 224x224 view of one garment of a masked street photo: only its pixels
    on a plain near-white background, cropped to it (worn=False, a packshot), or the whole
    person on that background, framed on the garment with a margin (worn=True, a model shot)."""
    a = np.asarray(Image.open(image_path).convert("RGB"))
    lab = np.asarray(Image.open(street_mask_path(image_path)))
    garment = lab == street_mask_labels().index(label)
    keep = lab > 0 if worn else garment
    ys, xs = np.nonzero(garment)
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    margin = 0.3 if worn else 0.08
    mx, my = int((x1 - x0) * margin) + 2, int((y1 - y0) * margin) + 2
    h, w = garment.shape
    x0, y0, x1, y1 = max(0, x0 - mx), max(0, y0 - my), min(w, x1 + mx), min(h, y1 + my)
    out = Image.fromarray(np.where(keep[..., None], a, np.uint8(bg))[y0:y1, x0:x1])
    side = max(out.size)
    square = Image.new("RGB", (side, side), (bg, bg, bg))
    square.paste(out, ((side - out.size[0]) // 2, (side - out.size[1]) // 2))
    return square.resize((SIZE, SIZE), Image.BILINEAR)
