"""Weft's colour palette and the family tables.

Each palette entry is a fashion colour name with a family parent and the sRGB
value that a photographed garment of that colour typically shows (standard
colour-chart values, darkened/desaturated where cloth under normal light never
reaches the chart value, e.g. black and navy). Several entries deliberately sit
close to one another with different parents (silver / light grey, khaki /
beige, tan / camel) because shoppers name such garments either way.

CATALOG_FAMILY maps the catalog's `baseColour` vocabulary to a family; it is
used only to score colour tags, never to fit anything. Colours it does not list
("Multi") have no single family and their rows are skipped when scoring.
"""
import json
import os

import numpy as np


FAMILIES = ["black", "white", "grey", "blue", "red", "pink", "purple", "green", "yellow", "orange",
            "brown", "beige", "gold", "silver", "multicolor"]

# (name, parent family, sRGB)
PALETTE = [
    ("black", "black", (22, 22, 24)),
    ("charcoal", "grey", (54, 69, 79)),
    ("grey", "grey", (128, 128, 128)),
    ("light grey", "grey", (180, 180, 180)),
    ("silver", "silver", (196, 198, 204)),
    ("white", "white", (238, 238, 238)),
    ("off white", "white", (240, 234, 218)),
    ("cream", "beige", (243, 229, 188)),
    ("beige", "beige", (222, 200, 165)),
    ("khaki", "beige", (189, 174, 135)),
    ("camel", "brown", (193, 154, 107)),
    ("tan", "brown", (170, 120, 75)),
    ("brown", "brown", (105, 68, 42)),
    ("chocolate", "brown", (65, 40, 28)),
    ("navy", "blue", (30, 38, 70)),
    ("denim", "blue", (60, 90, 140)),
    ("blue", "blue", (30, 80, 190)),
    ("light blue", "blue", (150, 190, 225)),
    ("teal", "blue", (0, 118, 118)),
    ("turquoise", "blue", (64, 200, 200)),
    ("red", "red", (200, 30, 40)),
    ("burgundy", "red", (110, 20, 40)),
    ("coral", "orange", (245, 120, 95)),
    ("orange", "orange", (240, 120, 30)),
    ("rust", "orange", (170, 70, 30)),
    ("mustard", "yellow", (210, 165, 40)),
    ("yellow", "yellow", (245, 215, 50)),
    ("gold", "gold", (200, 165, 70)),
    ("olive", "green", (95, 98, 45)),
    ("khaki green", "green", (120, 120, 80)),
    ("green", "green", (40, 135, 65)),
    ("mint", "green", (165, 225, 190)),
    ("pink", "pink", (245, 170, 195)),
    ("fuchsia", "pink", (220, 40, 140)),
    ("purple", "purple", (105, 50, 135)),
    ("lavender", "purple", (185, 165, 215)),
]

# One copy, shared with the Go evaluation (eval/eval.go embeds the same file).
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(_ROOT, "eval", "catalog_colours.json")) as f:
    CATALOG_FAMILY = json.load(f)


def family_matrix(parents):
    """One-hot [K, len(FAMILIES)] float32 matrix of K palette colours' parent families:
    palette probabilities @ family_matrix = family scores, as the API ranks colour tags."""
    import numpy as np
    m = np.zeros((len(parents), len(FAMILIES)), np.float32)
    m[np.arange(len(parents)), [FAMILIES.index(p) for p in parents]] = 1.0
    return m
