"""Garment boxes for the detector: street split, caches, letterbox and training scenes.

Street photos carry exact masks and boxes. Casual garment photos (data/clothing: one garment
filling the frame, on a floor, bed or hanger) carry only a type, so their box comes from the
shared clothes segmenter's mask (garment_items); they are shown as they are and cut out onto a
near-white studio background, the two kinds of photo the street set never shows."""
import csv
import hashlib
import json
import os
import pickle

import numpy as np
from PIL import Image

FAMILIES = ["top", "outerwear", "dress", "skirt", "pants", "footwear", "bag", "hat", "eyewear", "belt", "scarf"]
SIZE = 416
PAD = 114

# Mask labels of each family, so a garment can be cut out along its own pixels for pasting.
FAMILY_LABELS = {
    "top": ["blouse", "bodysuit", "hoodie", "jumper", "shirt", "sweater", "sweatshirt", "t-shirt", "top", "vest"],
    "outerwear": ["blazer", "cape", "cardigan", "coat", "jacket", "suit"],
    "dress": ["dress", "romper"],
    "skirt": ["skirt"],
    "pants": ["jeans", "leggings", "pants", "shorts"],
    "footwear": ["boots", "clogs", "flats", "heels", "loafers", "pumps", "sandals", "shoes", "sneakers", "wedges"],
    "bag": ["bag", "purse", "wallet"],
    "hat": ["hat"],
    "eyewear": ["glasses", "sunglasses"],
    "belt": ["belt"],
    "scarf": ["scarf"],
}


def is_val(image):
    """Deterministic ~20% hold-out by a hash of the file name."""
    return int(hashlib.sha1(os.path.basename(image).encode()).hexdigest()[:8], 16) % 5 == 0


def read_boxes(street):
    boxes = {}
    with open(os.path.join(street, "boxes.csv")) as f:
        for r in csv.DictReader(f):
            b = [float(r["x0"]), float(r["y0"]), float(r["x1"]) + 1, float(r["y1"]) + 1, FAMILIES.index(r["family"])]
            boxes.setdefault(r["image"], []).append(b)
    return {k: np.array(v, np.float32) for k, v in sorted(boxes.items())}


def letterbox(img):
    """PIL RGB image → float32 BGR [3,416,416] as YOLOX expects, and the scale used."""
    w, h = img.size
    r = min(SIZE / w, SIZE / h)
    nw, nh = int(round(w * r)), int(round(h * r))
    a = np.full((SIZE, SIZE, 3), PAD, np.uint8)
    a[:nh, :nw] = np.asarray(img.resize((nw, nh), Image.BILINEAR))[:, :, ::-1]
    return a, r


def build_cache(street, path):
    """Decodes every annotated photo once, resized to fit 416, with its boxes and family mask."""
    if os.path.exists(path):
        with open(path, "rb") as f:
            return pickle.load(f)
    labels = json.load(open(os.path.join(street, "mask_labels.json")))
    lut = np.full(256, 255, np.uint8)
    for fi, fam in enumerate(FAMILIES):
        for name in FAMILY_LABELS[fam]:
            if name in labels:
                lut[labels.index(name)] = fi
    items = []
    for image, boxes in read_boxes(street).items():
        img = Image.open(os.path.join(street, image)).convert("RGB")
        a, r = letterbox(img)
        nw, nh = int(round(img.size[0] * r)), int(round(img.size[1] * r))
        mask_path = os.path.join(street, image.replace("images/", "masks/").replace(".jpg", ".png"))
        m = Image.open(mask_path).resize((nw, nh), Image.NEAREST)
        items.append({"image": image, "val": is_val(image), "img": a[:nh, :nw].copy(),
                      "fam": lut[np.asarray(m)], "boxes": boxes * np.array([r, r, r, r, 1], np.float32),
                      "scale": r})
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(items, f)
    return items


# Garment-photo type (data.TYPES) -> detector family.
TYPE_FAMILY = {"t-shirt": "top", "long sleeve": "top", "pants": "pants", "shoes": "footwear", "shirt": "top",
               "dress": "dress", "outerwear": "outerwear", "shorts": "pants", "hat": "hat", "skirt": "skirt",
               "polo": "top", "undershirt": "top", "blazer": "outerwear", "hoodie": "top", "bodysuit": "top",
               "top": "top", "blouse": "top"}


def mask_boxes(mask, fam):
    """Boxes [K,5] of a garment's pseudo-mask, or None when the mask is not trustworthy.

    The garment is the mask's largest component with any other of at least 30% of its size;
    footwear is usually a pair, so there each such component is its own box (two touching shoes
    stay one, as in the street labels). The segmenter fails on pale garments on pale floors and
    on busy floors, so a photo is skipped when its mask covers under 3% or over 90% of it, when
    the largest component is under half the mask (scattered pieces), when the garment fills
    under 30% of its box, when all its boxes together span under 12% of the photo (a piece of a
    printed garment), or when they touch all four borders."""
    from scipy import ndimage
    h, w = mask.shape
    area = mask.mean()
    if area < 0.03 or area > 0.9:
        return None
    lab, n = ndimage.label(mask)
    sizes = np.asarray(ndimage.sum(mask, lab, range(1, n + 1)))
    if sizes.max() < 0.5 * sizes.sum():
        return None
    keep = [i + 1 for i, sz in enumerate(sizes) if sz >= 0.3 * sizes.max()]
    groups = [[i] for i in keep] if FAMILIES[fam] == "footwear" else [keep]
    boxes = []
    for g in groups:
        part = np.isin(lab, g)
        ys, xs = np.nonzero(part)
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        if part.sum() < 0.3 * (x1 - x0) * (y1 - y0):
            return None
        boxes.append([x0, y0, x1, y1, fam])
    b = np.array(boxes, np.float32)
    span = (b[:, 2].max() - b[:, 0].min()) * (b[:, 3].max() - b[:, 1].min())
    if span < 0.12 * h * w:
        return None
    if b[:, 0].min() <= 1 and b[:, 1].min() <= 1 and b[:, 2].max() >= w - 1 and b[:, 3].max() >= h - 1:
        return None
    return b


def garment_items(rows, types, path, segmenter):
    """Training items from casual garment photos [(path, type index)]: the photo resized to fit
    416, its family map (the garment's family on its pseudo-mask, 255 elsewhere) and boxes.
    segmenter() makes seg, seg(RGB uint8 [N,H,W,3], size) -> clothes probabilities [N,size,size];
    it is made only when the cache at path is missing."""
    if os.path.exists(path):
        with open(path, "rb") as f:
            return pickle.load(f)
    from preprocess import open_rgb
    segment = segmenter()
    items, skipped, side = [], 0, 256
    for c in range(0, len(rows), 16):
        chunk = [(open_rgb(p), t) for p, t in rows[c:c + 16]]
        probs = segment(np.stack([np.asarray(img.resize((side, side), Image.BILINEAR)) for img, _ in chunk]), side)
        for (img, t), prob in zip(chunk, probs):
            a, r = letterbox(img)
            nw, nh = int(round(img.size[0] * r)), int(round(img.size[1] * r))
            mask = np.asarray(Image.fromarray((prob * 255).astype(np.uint8)).resize((nw, nh), Image.BILINEAR)) > 127
            fam = FAMILIES.index(TYPE_FAMILY[types[t]])
            boxes = mask_boxes(mask, fam)
            if boxes is None:
                skipped += 1
                continue
            items.append({"img": a[:nh, :nw].copy(), "fam": np.where(mask, fam, 255).astype(np.uint8),
                          "boxes": boxes})
        print(f"garment photos {min(c + 16, len(rows))}/{len(rows)}: {len(items)} kept, {skipped} skipped", flush=True)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(items, f)
    return items


def _resize(img, fam, boxes, s):
    h, w = img.shape[:2]
    nw, nh = max(1, int(w * s)), max(1, int(h * s))
    img = np.asarray(Image.fromarray(img).resize((nw, nh), Image.BILINEAR))
    if fam is not None:
        fam = np.asarray(Image.fromarray(fam).resize((nw, nh), Image.NEAREST))
    b = boxes.copy()
    b[:, :4] *= s
    return img, fam, b


def _place(canvas, img, boxes, x, y):
    """Pastes img with its top-left at (x, y), clipping to the canvas; returns shifted, clipped boxes."""
    H, W = canvas.shape[:2]
    h, w = img.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    if x1 <= x0 or y1 <= y0:
        return np.zeros((0, 5), np.float32)
    canvas[y0:y1, x0:x1] = img[y0 - y:y1 - y, x0 - x:x1 - x]
    b = boxes.copy()
    b[:, [0, 2]] += x
    b[:, [1, 3]] += y
    area0 = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    b[:, [0, 2]] = b[:, [0, 2]].clip(x0, x1)
    b[:, [1, 3]] = b[:, [1, 3]].clip(y0, y1)
    area1 = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    keep = (area1 > 0.4 * area0) & (b[:, 2] - b[:, 0] > 2) & (b[:, 3] - b[:, 1] > 2)
    return b[keep]


class Scenes:
    """Random training scenes: single photos with scale jitter, 2x2 mosaics, pasted garments;
    with garment photos, a share p_garment of scenes is one of them, as taken or as a packshot."""

    def __init__(self, items, rng, crop=SIZE, garments=(), p_garment=0.0):
        self.items = items
        self.rng = rng
        self.crop = crop
        self.garments = garments
        self.p_garment = p_garment if len(garments) else 0.0
        # Cut-outs for pasting: garments big enough to read, with their own pixels.
        self.cuts = []
        for it in items:
            for b in it["boxes"]:
                x0, y0, x1, y1 = [int(round(v)) for v in b[:4]]
                fam = int(b[4])
                sub = it["fam"][y0:y1, x0:x1] == fam
                if sub.size and sub.mean() > 0.2 and min(x1 - x0, y1 - y0) >= 8:
                    self.cuts.append((it["img"][y0:y1, x0:x1], sub, fam))

    def sample(self):
        r = self.rng
        if r.random() < self.p_garment:
            return self._garment()
        if r.random() < 0.4:
            img, boxes = self._mosaic()
        else:
            img, boxes = self._single()
        if r.random() < 0.5:
            img, boxes = self._paste(img, boxes, r.integers(1, 4))
        img = self._colour(img)
        if self.crop < SIZE:
            # Training on crops keeps garments at their inference scale for less compute.
            x, y = (int(v) for v in self.rng.integers(0, SIZE - self.crop + 1, size=2))
            canvas = np.empty((self.crop, self.crop, 3), np.uint8)
            boxes = _place(canvas, img, boxes, -x, -y)
            img = canvas
        return img, boxes

    def _pick(self):
        it = self.items[self.rng.integers(len(self.items))]
        img, fam, boxes = it["img"], it["fam"], it["boxes"]
        if self.rng.random() < 0.5:
            img, fam = img[:, ::-1], fam[:, ::-1]
            w = img.shape[1]
            boxes = boxes.copy()
            boxes[:, [0, 2]] = w - boxes[:, [2, 0]]
        return np.ascontiguousarray(img), np.ascontiguousarray(fam), boxes

    def _single(self):
        r = self.rng
        img, fam, boxes = self._pick()
        s = float(np.exp(r.uniform(np.log(0.55), np.log(1.25))))
        img, fam, boxes = _resize(img, fam, boxes, s)
        canvas = np.full((SIZE, SIZE, 3), PAD, np.uint8)
        h, w = img.shape[:2]
        # Half the time at the top-left like the letterbox at inference, otherwise anywhere.
        if r.random() < 0.5 and s <= 1.0:
            x, y = 0, 0
        else:
            x = int(r.integers(min(0, SIZE - w), max(0, SIZE - w) + 1))
            y = int(r.integers(min(0, SIZE - h), max(0, SIZE - h) + 1))
        return canvas, _place(canvas, img, boxes, x, y)

    def _mosaic(self):
        r = self.rng
        canvas = np.full((SIZE, SIZE, 3), PAD, np.uint8)
        cx, cy = int(r.integers(SIZE // 4, 3 * SIZE // 4)), int(r.integers(SIZE // 4, 3 * SIZE // 4))
        out = []
        for k in range(4):
            img, fam, boxes = self._pick()
            s = float(r.uniform(0.4, 0.8))
            img, fam, boxes = _resize(img, fam, boxes, s)
            h, w = img.shape[:2]
            x = cx - w if k in (0, 2) else cx
            y = cy - h if k in (0, 1) else cy
            # Each quadrant is clipped so the photos do not overlap one another.
            qx0, qy0 = (0 if k in (0, 2) else cx), (0 if k in (0, 1) else cy)
            qx1, qy1 = (cx if k in (0, 2) else SIZE), (cy if k in (0, 1) else SIZE)
            sub = canvas[qy0:qy1, qx0:qx1]
            b = _place(sub, img, boxes, x - qx0, y - qy0)
            b[:, [0, 2]] += qx0
            b[:, [1, 3]] += qy0
            out.append(b)
        return canvas, np.concatenate(out)

    def _paste(self, img, boxes, n):
        r = self.rng
        img = img.copy()
        for _ in range(n):
            cut, mask, fam = self.cuts[r.integers(len(self.cuts))]
            s = float(np.exp(r.uniform(np.log(0.5), np.log(1.2))))
            h, w = max(2, int(cut.shape[0] * s)), max(2, int(cut.shape[1] * s))
            if h >= SIZE or w >= SIZE:
                continue
            c = np.asarray(Image.fromarray(cut).resize((w, h), Image.BILINEAR))
            m = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((w, h), Image.NEAREST)) > 0
            if r.random() < 0.5:
                c, m = c[:, ::-1], m[:, ::-1]
            x, y = int(r.integers(0, SIZE - w)), int(r.integers(0, SIZE - h))
            nb = np.array([x, y, x + w, y + h], np.float32)
            # A pasted garment must not hide much of one already there.
            if len(boxes):
                ix = (np.minimum(boxes[:, 2], nb[2]) - np.maximum(boxes[:, 0], nb[0])).clip(0)
                iy = (np.minimum(boxes[:, 3], nb[3]) - np.maximum(boxes[:, 1], nb[1])).clip(0)
                area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
                if ((ix * iy) / area).max() > 0.25:
                    continue
            region = img[y:y + h, x:x + w]
            region[m] = c[m]
            ys, xs = np.nonzero(m)
            if len(xs) == 0:
                continue
            tight = np.array([[x + xs.min(), y + ys.min(), x + xs.max() + 1, y + ys.max() + 1, fam]], np.float32)
            boxes = np.concatenate([boxes, tight]) if len(boxes) else tight
        return img, boxes

    def _garment(self):
        """One garment photo filling most of a crop-sized frame: as taken (letterboxed at the
        top-left like inference, or anywhere) or cut out along its mask onto near-white."""
        r = self.rng
        it = self.garments[r.integers(len(self.garments))]
        img, fam, boxes = it["img"], it["fam"], it["boxes"]
        if r.random() < 0.5:
            img, fam = img[:, ::-1], fam[:, ::-1]
            boxes = boxes.copy()
            boxes[:, [0, 2]] = img.shape[1] - boxes[:, [2, 0]]
        packshot = r.random() < 0.5
        if packshot:
            # Crop to the garment with a margin so that it fills the frame as in a catalogue.
            x0, y0 = boxes[:, :2].min(0)
            x1, y1 = boxes[:, 2:4].max(0)
            m = r.uniform(0.03, 0.25) * max(x1 - x0, y1 - y0)
            h, w = img.shape[:2]
            cx0, cy0 = int(max(0, x0 - m)), int(max(0, y0 - m))
            cx1, cy1 = int(min(w, x1 + m)), int(min(h, y1 + m))
            bg = np.uint8(r.uniform(232, 255))
            img = np.where((fam != 255)[..., None], img, bg)[cy0:cy1, cx0:cx1]
            boxes = boxes.copy()
            boxes[:, [0, 2]] -= cx0
            boxes[:, [1, 3]] -= cy0
            canvas = np.full((self.crop, self.crop, 3), bg, np.uint8)
        else:
            canvas = np.full((self.crop, self.crop, 3), PAD, np.uint8)
        h, w = img.shape[:2]
        s = r.uniform(0.6, 1.0) * self.crop / max(h, w)
        img, _, boxes = _resize(np.ascontiguousarray(img), None, boxes, s)
        h, w = img.shape[:2]
        if packshot:
            x, y = (self.crop - w) // 2, (self.crop - h) // 2
        elif r.random() < 0.5:
            x, y = 0, 0
        else:
            x, y = int(r.integers(0, self.crop - w + 1)), int(r.integers(0, self.crop - h + 1))
        boxes = _place(canvas, img, boxes, x, y)
        return self._colour(canvas), boxes

    def _colour(self, img):
        r = self.rng
        f = img.astype(np.float32)
        gray = f.mean(2, keepdims=True)
        f = gray + (f - gray) * r.uniform(0.5, 1.5)  # saturation
        f = f * r.uniform(0.7, 1.3) + r.uniform(-20, 20)  # exposure
        f = f * r.uniform(0.92, 1.08, size=3)  # colour cast
        return f.clip(0, 255).astype(np.uint8)
