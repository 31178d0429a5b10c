"""How the colour constants in tagger.py were chosen, rerunnable.

    /usr/bin/python3 train/calibrate_colour.py [--state train/work/tagger_state_s0.pt]

No colour labels come with the shared training data, so we labelled some by hand
with the garment's colour family, in two sets (multicolor and unknown rows skipped):
 - train/colour_labels.csv: 288 casual photos of data/clothing (a fixed hash sample,
   none in the held-out split);
 - train/colour_labels_street.csv: 288 garments of masked street photos outside the
   detector's held-out split, shown as catalogue shots (data.street_garment_view: the
   garment alone on near-white, or the person on near-white framed on it).
This script scores the top-2 colour-family rule on both for a grid of the constants
(chroma gain, lightness weight, exposure gamma, centre prior), using the trained mask
head, and prints the shipped setting's scores and the best few by the mean of the two
sets. The constants were chosen on the casual set, then checked on the street set.

On top of them, train_tagger.py learns one weight per palette colour from both sets
(fit_palette_weights): the palette's prior, e.g. how often shading makes a garment
look grey without it being called grey. Its regularisation was chosen by fitting on
one set and scoring the other, both ways (cross_set_report). catalog-val is not read.
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
from data import CLOTHING, STREET, TYPES, street_garment_view  # noqa: E402
from palette import FAMILIES, PALETTE, family_matrix  # noqa: E402
from preprocess import load_tensor, to_tensor  # noqa: E402

CASUAL = os.path.join(HERE, "colour_labels.csv")
LAMBDA = 1.0  # the best mean over the two cross-set scores of cross_set_report
STREET_LABELS = os.path.join(HERE, "colour_labels_street.csv")


def _rows(path):
    with open(path) as f:
        return [r for r in csv.DictReader(f) if r["family"] in FAMILIES and r["family"] != "multicolor"]


def hand_labels():
    """{set name: [(loader, family)]}: loader() gives the float32 [3,224,224] model input."""
    casual = [(lambda p=os.path.join(CLOTHING, r["image"]): load_tensor(p), r["family"]) for r in _rows(CASUAL)]
    street = [(lambda r=r: to_tensor(street_garment_view(os.path.join(STREET, r["image"]), r["label"],
                                                         r["worn"] == "1")), r["family"]) for r in _rows(STREET_LABELS)]
    return {"casual": casual, "street_catalogue_views": street}


def top2_hits(family_scores, truth):
    top2 = np.argsort(-family_scores, axis=1)[:, :2]
    return float(np.mean([t in (FAMILIES[a], FAMILIES[b]) for (a, b), t in zip(top2, truth)]))


FAMILY = torch.from_numpy(family_matrix([p[1] for p in PALETTE]))


def palette_scores(lab, mask, gain=T.CHROMA_GAIN, l_weight=T.L_WEIGHT, gamma=T.L_GAMMA, centre=T.CENTRE_SIGMA):
    """The graph's colour_probs before the learned palette weights, from grid_lab and the
    garment mask, with the colour constants as arguments."""
    assign = T.colour_assign(lab, T.palette_lab([p[2] for p in PALETTE]), gain, l_weight, gamma)
    return T.palette_mix(assign, mask, T.centre_prior(sigma=centre))


@torch.no_grad()
def lab_and_mask(model, rows):
    """grid_lab and the garment mask of every row, one forward pass of the early blocks."""
    labs, masks = [], []
    for i in range(0, len(rows), 32):
        x = torch.from_numpy(np.stack([load() for load, _ in rows[i:i + 32]]))
        f8 = model.stride8(x)
        masks.append(model.garment_mask(f8, model.backbone.run_blocks(f8, T.CUT8, T.CUT16)))
        labs.append(T.grid_lab(x))
    return torch.cat(labs), torch.cat(masks)


def fit_palette_weights(probs, families, lam=LAMBDA, steps=300):
    """Palette log-weights w maximising the likelihood of the hand-labelled family under
    family score = sum of the family's p_j * exp(w_j), with an L2 penalty lam * mean(w^2)."""
    y = torch.tensor([FAMILIES.index(f) for f in families])
    w = torch.zeros(len(PALETTE), requires_grad=True)
    opt = torch.optim.Adam([w], lr=0.05)
    for _ in range(steps):
        scores = (probs * torch.exp(w)) @ FAMILY
        loss = F.nll_loss(torch.log(scores / scores.sum(dim=1, keepdim=True) + 1e-9), y) + lam * (w ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return w.detach()


def weighted_top2(probs, families, w):
    scores = ((probs * torch.exp(w)) @ FAMILY).numpy()
    return top2_hits(scores, families)


def cross_set_report(sets, lams=(0.1, 1.0, 10.0)):
    """{lambda: {"train on A, score B": top-2}} for every ordered pair of the hand-labelled sets."""
    out = {}
    for lam in lams:
        row = {}
        for a, b in itertools.permutations(sets, 2):
            w = fit_palette_weights(*sets[a], lam=lam)
            row["fit %s, score %s" % (a, b)] = weighted_top2(*sets[b], w)
        out[lam] = row
    zero = torch.zeros(len(PALETTE))
    out["unweighted"] = {name: weighted_top2(*s, zero) for name, s in sets.items()}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--state", default=os.path.join(HERE, "work", "tagger_state_s0.pt"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    model = T.Tagger(len(TYPES), [p[2] for p in PALETTE])
    model.load_state_dict(torch.load(args.state))
    model.eval()
    sets = {name: (*lab_and_mask(model, rows), [f for _, f in rows]) for name, rows in hand_labels().items()}
    cross = cross_set_report({name: (palette_scores(lab, mask), truth) for name, (lab, mask, truth) in sets.items()})

    def score(key):
        return {name: top2_hits((palette_scores(lab, mask, *key) @ FAMILY).numpy(), truth)
                for name, (lab, mask, truth) in sets.items()}

    shipped = (T.CHROMA_GAIN, T.L_WEIGHT, T.L_GAMMA, T.CENTRE_SIGMA)
    plain = (1.0, 0.6, 1.0, 0.3)
    grid = {key: score(key) for key in
            itertools.product([1.0, 1.5, 1.75, 2.0, 2.5], [0.4, 0.6], [1.0, 1.4, 1.8], [0.2, 0.3])}
    grid[shipped] = score(shipped)
    best = sorted(grid.items(), key=lambda kv: -np.mean(list(kv[1].values())))[:5]
    print(json.dumps({"n": {name: len(s[2]) for name, s in sets.items()},
                      "shipped": {"gain_lweight_gamma_centre": shipped, "top2": grid[shipped]},
                      "plain": {"gain_lweight_gamma_centre": plain, "top2": grid[plain]},
                      "best": [{"gain_lweight_gamma_centre": k, "top2": v} for k, v in best],
                      "palette_weights_cross_set": cross}, indent=1))


if __name__ == "__main__":
    main()
