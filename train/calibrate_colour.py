"""How the colour constants in tagger.py were chosen, rerunnable.

    /usr/bin/python3 train/calibrate_colour.py [--state train/work/tagger_state_s0.pt]

No colour labels come with the shared training data, so 288 training photos of
data/clothing (a fixed hash sample, never in the held-out split) were labelled by
hand with the garment's colour family: train/colour_labels.csv. This script
scores the top-2 colour-family rule on them (multicolor rows skipped) for a grid
of the constants (chroma gain, lightness weight, exposure gamma, centre prior),
using the trained mask head, and prints the shipped setting's score and the best
few. catalog-val is not read.
"""
import argparse
import csv
import itertools
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import tagger as T  # noqa: E402
from data import CLOTHING, TYPES  # noqa: E402
from palette import FAMILIES, PALETTE  # noqa: E402
from preprocess import load_tensor  # noqa: E402

LABELS = os.path.join(HERE, "colour_labels.csv")


def hand_labels():
    """[(path, family)] of the hand-labelled photos, multicolor left out."""
    with open(LABELS) as f:
        return [(os.path.join(CLOTHING, r["image"]), r["family"]) for r in csv.DictReader(f)
                if r["family"] in FAMILIES and r["family"] != "multicolor"]


def top2_hits(family_scores, truth):
    top2 = np.argsort(-family_scores, axis=1)[:, :2]
    return float(np.mean([t in (FAMILIES[a], FAMILIES[b]) for (a, b), t in zip(top2, truth)]))


def family_scores(lab, mask, gain, l_weight, gamma, centre):
    """T.colour_probs with the constants as arguments, summed per family."""
    light = lab[:, 0:1]
    white = torch.topk(light.flatten(1), T.WHITE_TOP, dim=1).values[:, -1:].clamp(min=T.WHITE_MIN_L)
    light = 100.0 * torch.pow(torch.clamp(light / white[:, :, None, None], 0.0, 1.2), gamma)
    lab = torch.cat([light, lab[:, 1:] * gain], dim=1)
    pal = T.palette_lab([p[2] for p in PALETTE])
    w = lab.new_tensor([l_weight, 1.0, 1.0]).reshape(1, 3, 1, 1)
    d2 = (((lab.unsqueeze(1) - pal.reshape(1, -1, 3, 1, 1)) * w.unsqueeze(1)) ** 2).sum(dim=2)
    assign = torch.softmax(-d2 / (2.0 * T.ASSIGN_SIGMA ** 2), dim=1)
    c = (torch.arange(T.COLOUR_GRID, dtype=torch.float32) + 0.5) / T.COLOUR_GRID - 0.5
    prior = torch.exp(-(c[:, None] ** 2 + c[None, :] ** 2) / (2 * centre ** 2))
    m = mask * mask * prior
    probs = ((assign * m).sum(dim=(2, 3)) / (m.sum(dim=(2, 3)) + 1e-6)).numpy()
    fam = np.zeros((probs.shape[0], len(FAMILIES)))
    for j, p in enumerate(PALETTE):
        fam[:, FAMILIES.index(p[1])] += probs[:, j]
    return fam


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--state", default=os.path.join(HERE, "work", "tagger_state_s0.pt"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    model = T.Tagger(len(TYPES), [p[2] for p in PALETTE])
    model.load_state_dict(torch.load(args.state))
    model.eval()
    rows = hand_labels()
    labs, masks = [], []
    with torch.no_grad():
        for i in range(0, len(rows), 32):
            x = torch.from_numpy(np.stack([load_tensor(p) for p, _ in rows[i:i + 32]]))
            f8 = model.stride8(x)
            masks.append(model.garment_mask(f8, model.backbone.run_blocks(f8, T.CUT8, T.CUT16)))
            labs.append(T.srgb_to_lab(F.adaptive_avg_pool2d(x, T.COLOUR_GRID) * 0.5 + 0.5))
    lab, mask, truth = torch.cat(labs), torch.cat(masks), [f for _, f in rows]
    shipped = (T.CHROMA_GAIN, T.L_WEIGHT, T.L_GAMMA, T.CENTRE_SIGMA)
    grid = {}
    for key in itertools.product([1.0, 1.5, 1.75, 2.0, 2.5], [0.4, 0.6], [1.0, 1.4], [0.2, 0.3]):
        grid[key] = top2_hits(family_scores(lab, mask, *key), truth)
    grid[shipped] = top2_hits(family_scores(lab, mask, *shipped), truth)
    best = sorted(grid.items(), key=lambda kv: -kv[1])[:5]
    print(json.dumps({"n": len(rows), "shipped": {"gain_lweight_gamma_centre": shipped, "top2": grid[shipped]},
                      "gain1_lweight0.6_gamma1_centre0.3": grid[(1.0, 0.6, 1.0, 0.3)],
                      "best": [{"gain_lweight_gamma_centre": k, "top2": v} for k, v in best]}, indent=1))


if __name__ == "__main__":
    main()
