"""Draws the demo catalog's garment pictures (our own work, CC0 1.0).

Simple flat product shots on white, enough to walk through the API in the
README without any photo from elsewhere. Run: /usr/bin/python3 examples/make_images.py
"""
import os
from PIL import Image, ImageDraw, ImageFilter

HERE = os.path.dirname(os.path.abspath(__file__))

def tshirt(d, c):
    d.polygon([(130, 90), (180, 70), (220, 70), (270, 90), (340, 150), (300, 190), (270, 165),
               (270, 340), (130, 340), (130, 165), (100, 190), (60, 150)], fill=c)
    d.arc((170, 50, 230, 100), 0, 180, fill=(255, 255, 255), width=10)

def longsleeve(d, c):
    d.polygon([(130, 90), (180, 70), (220, 70), (270, 90), (330, 300), (295, 310), (265, 170),
               (270, 340), (130, 340), (135, 170), (105, 310), (70, 300)], fill=c)

def pants(d, c):
    d.polygon([(140, 60), (260, 60), (280, 350), (220, 350), (200, 150), (180, 350), (120, 350)], fill=c)

def dress(d, c):
    d.polygon([(170, 50), (230, 50), (240, 140), (310, 350), (90, 350), (160, 140)], fill=c)

def skirt(d, c):
    d.polygon([(150, 120), (250, 120), (300, 300), (100, 300)], fill=c)

def shoe(d, c):
    d.polygon([(70, 260), (90, 180), (170, 190), (250, 240), (330, 255), (335, 300), (70, 300)], fill=c)
    d.rectangle((70, 295, 335, 315), fill=(240, 240, 240))

def hat(d, c):
    d.pieslice((120, 120, 280, 300), 180, 360, fill=c)
    d.rectangle((90, 205, 310, 225), fill=c)

def shorts(d, c):
    d.polygon([(130, 120), (270, 120), (290, 280), (215, 280), (200, 190), (185, 280), (110, 280)], fill=c)

ITEMS = [
    ("red-tshirt", tshirt, (200, 30, 40)), ("navy-tshirt", tshirt, (30, 40, 90)),
    ("white-tshirt", tshirt, (235, 235, 230)), ("black-longsleeve", longsleeve, (25, 25, 28)),
    ("blue-jeans", pants, (60, 90, 150)), ("khaki-pants", pants, (190, 170, 120)),
    ("black-dress", dress, (20, 20, 22)), ("green-dress", dress, (40, 120, 60)),
    ("yellow-skirt", skirt, (230, 200, 40)), ("white-sneaker", shoe, (245, 245, 245)),
    ("brown-boot", shoe, (110, 70, 40)), ("pink-hat", hat, (230, 140, 170)),
    ("grey-shorts", shorts, (130, 130, 135)), ("purple-skirt", skirt, (110, 50, 140)),
]

def main():
    out = os.path.join(HERE, "images")
    os.makedirs(out, exist_ok=True)
    rows = []
    for i, (name, draw, colour) in enumerate(ITEMS, 1):
        im = Image.new("RGB", (400, 400), (255, 255, 255))
        draw(ImageDraw.Draw(im), colour)
        im = im.filter(ImageFilter.SMOOTH)
        im.save(os.path.join(out, name + ".jpg"), quality=90)
        rows.append(f'{i}\thttp://localhost:8081/{name}.jpg\t{{"name": "{name}", "price": {10 + i}.99}}')
    with open(os.path.join(HERE, "catalog.tsv"), "w") as f:
        f.write("\n".join(rows) + "\n")

if __name__ == "__main__":
    main()
