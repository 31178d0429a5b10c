"""Writes the tagger preprocessing parity references for vision's Go tests.

For each input, the 224x224 RGB image that train/preprocess.py's load_image
makes is saved losslessly as parity/<name>.ref.png; the network's tensor is
exactly that image scaled by x/127.5 - 1, so the Go test needs no Python.
The synthetic inputs (transparency, EXIF orientation, chroma subsampling,
palette, greyscale, tiny, WebP) are written here too; the photos come from ../shared.

    /usr/bin/python3 vision/testdata/make_parity.py
"""
import json
import os
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "train"))
from preprocess import load_image  # noqa: E402

OUT = os.path.join(HERE, "parity")
SHARED = [
    "../../../../shared/data/clothing/images/00003aeb-ace5-43bf-9a0c-dc31a03e9cd2.jpg",
    "../../../../shared/data/clothing/images/003f4cab-7214-4770-b727-3400d4508741.jpg",
    "../../../../shared/data/street/images/0001.jpg",
    "../../../../shared/data/catalog-val/images/10003.jpg",
]


def quadrants(w, h):
    """An asymmetric test card: four colours, a diagonal gradient, a white border."""
    y, x = np.mgrid[0:h, 0:w]
    a = np.zeros((h, w, 3), np.uint8)
    a[..., 0] = np.where(x < w // 2, 200, 30)
    a[..., 1] = np.where(y < h // 3, 180, 60)
    a[..., 2] = ((x + y) * 255 // (w + h)).astype(np.uint8)
    a[0, :] = a[-1, :] = a[:, 0] = a[:, -1] = 250
    return a


def synthetic():
    os.makedirs(OUT, exist_ok=True)
    names = []

    a = quadrants(90, 50)
    y, x = np.mgrid[0:50, 0:90]
    alpha = np.clip(x * 3, 0, 255).astype(np.uint8)
    alpha[:10, :] = 0
    Image.fromarray(np.dstack([a, alpha]), "RGBA").save(os.path.join(OUT, "alpha.png"))
    names.append("alpha.png")

    for o in (3, 6, 8):
        exif = Image.Exif()
        exif[0x0112] = o
        Image.fromarray(quadrants(64, 40)).save(os.path.join(OUT, f"exif{o}.jpg"), quality=95, subsampling=0, exif=exif.tobytes())
        names.append(f"exif{o}.jpg")

    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(quadrants(50, 30)).save(os.path.join(OUT, "exif6p.png"), exif=exif.tobytes())
    exif[0x0112] = 8
    Image.fromarray(quadrants(50, 30)).save(os.path.join(OUT, "exif8w.webp"), lossless=True, exif=exif.tobytes())
    names += ["exif6p.png", "exif8w.webp"]

    p = Image.fromarray(quadrants(40, 70)).quantize(16)
    p.info["transparency"] = 0
    p.save(os.path.join(OUT, "palette.gif"), transparency=0)
    names.append("palette.gif")

    # Odd sizes in each chroma subsampling: 4:2:2 and 4:2:0.
    Image.fromarray(quadrants(45, 30)).save(os.path.join(OUT, "sub422.jpg"), quality=90, subsampling=1)
    Image.fromarray(quadrants(45, 31)).save(os.path.join(OUT, "sub420.jpg"), quality=90, subsampling=2)
    names += ["sub422.jpg", "sub420.jpg"]

    Image.fromarray(quadrants(31, 57)[..., 1]).save(os.path.join(OUT, "grey.jpg"), quality=90)
    names.append("grey.jpg")

    Image.fromarray(quadrants(2, 5)).save(os.path.join(OUT, "tiny.png"))
    names.append("tiny.png")

    Image.fromarray(quadrants(120, 80)).save(os.path.join(OUT, "lossless.webp"), lossless=True)
    names.append("lossless.webp")
    return names


def main():
    cases = []
    for name in synthetic() + SHARED:
        src = os.path.normpath(os.path.join(OUT, name))
        ref = os.path.splitext(os.path.basename(name))[0] + ".ref.png"
        load_image(src).save(os.path.join(OUT, ref))
        cases.append({"input": name, "ref": ref})
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
