"""Measure models/tagger.onnx the way the Go side will use it.

    /usr/bin/python3 train/eval_tagger.py [--onnx models/tagger.onnx] [--json out.json]

Runs the exported graph (onnx_torch.OnnxGraph) on inputs from preprocess.load_tensor:
 - type: top-1 parent on the held-out clothing split (models/splits/clothing_val.txt), and on
   catalog-val where the product word names one of our types (CATALOG_TYPES);
 - colour on our hand-labelled training photos and street garments (calibrate_colour.py;
   calibration figures, not held-out ones);
 - colour: on catalog-val, the product's baseColour family (palette.CATALOG_FAMILY;
   "Multi" rows skipped) is among the families of the two most confident colour labels;
 - search: on catalog-val, leave-one-out cosine precision@10 of the same product type
   (last word of productDisplayName) and of the same type and baseColour; reported both
   literally ("Tshirts" != "Tshirt" != "T-shirt") and with the word normalised
   (lower case, hyphens dropped, English plural undone: "Watches" = "Watch");
 - search against catalogue size: the normalised figures on random quarter and half
   catalogues too, and a log-linear extrapolation to the ~7,700 photos the targets are set
   on (P@10 grows with the catalogue: more same-type neighbours to find), for our embedding
   and for the unchanged ImageNet backbone's pooled features, in the same run;
 - a bound for the colour part: the same type + colour curve when the type is known (true
   product word) and only our embedding's colour part orders the neighbours within it.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from data import CLOTHING, MOBILENET, TYPES, catalog_rows, clothing_rows  # noqa: E402
from onnx_torch import OnnxGraph  # noqa: E402
from calibrate_colour import hand_labels, top2_hits  # noqa: E402
from palette import CATALOG_FAMILY, FAMILIES, family_matrix  # noqa: E402
from preprocess import load_tensor  # noqa: E402

ROOT = os.path.dirname(HERE)
TARGET_CATALOGUE = 7700


def run_all(graph, items, load=load_tensor, batch=32):
    """The graph's outputs for every item, load(item) giving its input tensor."""
    outs = {}
    for i in range(0, len(items), batch):
        x = np.stack([load(it) for it in items[i:i + batch]])
        for k, v in graph.run({"image": x}).items():
            outs.setdefault(k, []).append(v)
    return {k: np.concatenate(v) for k, v in outs.items()}


def precision_at_k(emb, keys, k=10):
    """Leave-one-out: share of each image's k nearest (cosine) others with the same key."""
    sims = emb @ emb.T
    np.fill_diagonal(sims, -np.inf)
    nn_idx = np.argsort(-sims, axis=1)[:, :k]
    keys = np.asarray(keys)
    return float((keys[nn_idx] == keys[:, None]).mean())


def size_curve(emb, keys, fracs=(0.25, 0.5, 1.0), reps=5, seed=0):
    """P@10 on random sub-catalogues of each fraction (mean of reps draws) and its log-linear
    extrapolation to TARGET_CATALOGUE photos."""
    rng = np.random.default_rng(seed)
    keys = np.asarray(keys)
    n = len(keys)
    sizes, p10 = [], []
    for f in fracs:
        draws = [np.arange(n)] if f == 1.0 else [rng.choice(n, int(n * f), replace=False) for _ in range(reps)]
        sizes.append(len(draws[0]))
        p10.append(float(np.mean([precision_at_k(emb[d], keys[d]) for d in draws])))
    slope, icept = np.polyfit(np.log(sizes), p10, 1)
    return {"sizes": sizes, "p10": p10, "at_%d" % TARGET_CATALOGUE: float(icept + slope * np.log(TARGET_CATALOGUE))}


# Catalogue product words (normalised) -> the garment types a tagger may answer for them; read by
# eval.go too. Words with no clear type among ours (kurta, tunic, accessories) are not scored.
with open(os.path.join(ROOT, "eval", "catalog_types.json")) as f:
    CATALOG_TYPES = {k: set(v) for k, v in json.load(f).items()}


def norm_type(word):
    """Lower case, hyphens dropped, English plural undone (as eval.go's normType)."""
    w = word.lower().replace("-", "")
    if w.endswith(("ches", "shes", "sses", "xes")):
        return w[:-2]
    return w[:-1] if w.endswith("s") and not w.endswith("ss") else w


def family_scores(color_probs, meta):
    return color_probs @ family_matrix([c["parent"] for c in meta["colors"]])


def evaluate(onnx_path, meta_path):
    meta = json.load(open(meta_path))
    graph = OnnxGraph(onnx_path)
    res = {}

    val_names = set(open(os.path.join(ROOT, "models/splits/clothing_val.txt")).read().split())
    val = [r for r in clothing_rows() if os.path.relpath(r[0], CLOTHING) in val_names]
    out = run_all(graph, [r[0] for r in val])
    parents = [t["parent"] for t in meta["types"]]
    pred_val = [parents[i] for i in out["type_probs"].argmax(1)]
    res["type_top1_clothing_val"] = float(np.mean([p == TYPES[r[1]] for p, r in zip(pred_val, val)]))
    res["type_n"] = len(val)

    for name, rows in hand_labels().items():
        probs = run_all(graph, [load for load, _ in rows], load=lambda load: load())["color_probs"]
        res["colour_top2_family_hand_" + name] = top2_hits(family_scores(probs, meta), [f for _, f in rows])
        res["colour_hand_n_" + name] = len(rows)

    cat = catalog_rows()
    out = run_all(graph, [r["path"] for r in cat])
    # Ranked as the API ranks colour tags (vision.pick): a family's score is the sum of
    # its palette colours' probabilities.
    fam_scores = family_scores(out["color_probs"], meta)
    known = [(i, CATALOG_FAMILY.get(r["baseColour"])) for i, r in enumerate(cat)
             if CATALOG_FAMILY.get(r["baseColour"])]
    idx = [i for i, _ in known]
    res["colour_top2_family_catalog"] = top2_hits(fam_scores[idx], [f for _, f in known])
    res["colour_n"], res["colour_skipped_multi"] = len(known), len(cat) - len(known)
    res["colour_top1_family_catalog"] = float(np.mean(
        [FAMILIES[j] == f for j, (_, f) in zip(fam_scores[idx].argmax(1), known)]))

    emb = out["embedding"]
    typ = [r["productDisplayName"].split()[-1] for r in cat]
    ntyp = [norm_type(t) for t in typ]
    # Type tags on catalogue shots (packshots and model shots), where a product word names a type.
    pred = [parents[i] for i in out["type_probs"].argmax(1)]
    scored = [(p, CATALOG_TYPES[t]) for p, t in zip(pred, ntyp) if t in CATALOG_TYPES]
    res["type_top1_catalog"] = float(np.mean([p in ok for p, ok in scored]))
    res["type_catalog_n"] = len(scored)
    # The same, split: products our garment types name, and accessories (bags, watches ...).
    garment = set(TYPES)
    for part, keep in (("garments", lambda ok: ok <= garment), ("accessories", lambda ok: not ok <= garment)):
        hits = [p in ok for p, ok in scored if keep(ok)]
        res["type_top1_catalog_" + part] = float(np.mean(hits))
        res["type_catalog_n_" + part] = len(hits)
    # How often something that is not an accessory is called one.
    accessory = set(parents) - garment
    res["type_accessory_false_catalog_garments"] = float(np.mean(
        [p in accessory for p, ok in scored if ok <= garment]))
    res["type_accessory_false_clothing_val"] = float(np.mean(
        [p in accessory for p in pred_val]))
    res["search_p10_type_catalog"] = precision_at_k(emb, typ)
    res["search_p10_type_colour_catalog"] = precision_at_k(emb, [t + "|" + r["baseColour"] for t, r in zip(typ, cat)])
    ncol = [t + "|" + r["baseColour"] for t, r in zip(ntyp, cat)]
    res["search_p10_normtype_catalog"] = precision_at_k(emb, ntyp)
    res["search_p10_normtype_colour_catalog"] = precision_at_k(emb, ncol)
    res["embedding_norm_max_dev"] = float(np.abs(np.linalg.norm(emb, axis=1) - 1).max())

    base = run_all(OnnxGraph(MOBILENET), [r["path"] for r in cat])["embedding"]
    base = base / np.linalg.norm(base, axis=1, keepdims=True)
    for name, e in (("tagger", emb), ("imagenet", base)):
        res["search_size_curve_normtype_" + name] = size_curve(e, ntyp)
        res["search_size_curve_normtype_colour_" + name] = size_curve(e, ncol)
    # A bound on what better type features alone could give: the true product word (one-hot,
    # dominant) beside our embedding's colour part, so neighbours are ranked by colour within
    # the right type.
    words = sorted(set(ntyp))
    true_type = np.eye(len(words))[[words.index(t) for t in ntyp]] * 4.0
    colour_part = emb[:, -len(meta["colors"]):]
    res["search_size_curve_normtype_colour_true_type"] = size_curve(
        np.hstack([true_type, colour_part]) / np.sqrt(16.0 + (colour_part ** 2).sum(1, keepdims=True)), ncol)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--onnx", default=os.path.join(ROOT, "models/tagger.onnx"))
    ap.add_argument("--meta", default=os.path.join(ROOT, "models/tagger.json"))
    ap.add_argument("--json", help="also store the figures under \"eval\" in this JSON file (created if missing)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    t0 = time.time()
    res = evaluate(args.onnx, args.meta)
    res["eval_seconds"] = round(time.time() - t0)
    print(json.dumps(res, indent=1))
    if args.json:
        doc = json.load(open(args.json)) if os.path.exists(args.json) else {}
        doc["eval"] = res
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
