"""Inference preprocessing for Weft's tagger, written once.

The Go side (vision/) reimplements exactly these steps and its parity test
imports this module, so any change here is a contract change.

Steps:
 1. decode with PIL, apply EXIF orientation, convert to RGB; alpha is
    composited on white (transparent product shots are meant to sit on white);
 2. pad to square without stretching; the fill colour is the per-channel
    median of the 1-pixel outer border ring (each ring pixel counted once),
    rounded half up to an integer; the shorter side is padded symmetrically,
    the odd extra pixel going bottom/right;
 3. resize to 224x224 with PIL's antialiasing bilinear filter;
 4. float32 x/127.5 - 1, HWC -> CHW.
"""
import numpy as np
from PIL import Image, ImageOps

SIZE = 224


def open_rgb(path):
    """Decode, orient and flatten to RGB (alpha composited on white)."""
    img = Image.open(path)
    img = ImageOps.exif_transpose(img)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return img.convert("RGB")


def border_colour(a):
    """Per-channel median of the outer ring of an HxWx3 uint8 array."""
    h, w, _ = a.shape
    if h <= 2 or w <= 2:
        ring = a.reshape(-1, 3)
    else:
        ring = np.concatenate([a[0], a[-1], a[1:-1, 0], a[1:-1, -1]], axis=0)
    med = np.median(ring.astype(np.float64), axis=0)
    return tuple(int(np.floor(m + 0.5)) for m in med)


def pad_square(img):
    """Pad the shorter side symmetrically (odd pixel bottom/right) with the border median."""
    w, h = img.size
    if w == h:
        return img
    side = max(w, h)
    fill = border_colour(np.asarray(img))
    out = Image.new("RGB", (side, side), fill)
    out.paste(img, ((side - w) // 2, (side - h) // 2))
    return out


def load_image(path):
    """The 224x224 RGB PIL image the network sees."""
    return pad_square(open_rgb(path)).resize((SIZE, SIZE), Image.BILINEAR)


def to_tensor(img):
    """PIL RGB image -> float32 [3,H,W] scaled to [-1,1]."""
    x = np.asarray(img, dtype=np.float32) / 127.5 - 1.0
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def load_tensor(path):
    """Image file -> np.float32 [3,224,224], exactly what tagger.onnx expects."""
    return to_tensor(load_image(path))
