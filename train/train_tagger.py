"""Train Weft's tagger and write models/tagger.onnx, tagger.json, splits and metrics.

    /usr/bin/python3 train/train_tagger.py

Stages (frozen-feature caches live in train/work/, safe to delete):
 1. split data/clothing by file-name hash (models/splits/clothing_val.txt);
 2. type head on the backbone's pooled features;
 3. garment-mask head on exact street masks;
 4. embedding projection; export; metrics.
"""
import argparse
import json
import os

# Passive OpenMP waits: the 2 cores are shared with other jobs and spinning threads waste them.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from data import TYPES, clothing_rows, street_masked, street_sample  # noqa: E402
from export import export  # noqa: E402
from mobilenet import MobileNetV2  # noqa: E402
from palette import PALETTE  # noqa: E402
from preprocess import load_tensor, to_tensor  # noqa: E402
from tagger import Tagger  # noqa: E402

ROOT = os.path.dirname(HERE)
MOBILENET = "/work/shared/models/init/mobilenet_v2_imagenet.onnx"
WORK = os.path.join(HERE, "work")
MASK_LABELS = "/work/shared/data/street/mask_labels.json"


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def batches(items, n):
    for i in range(0, len(items), n):
        yield items[i:i + n]


@torch.no_grad()
def pooled_features(model, paths, cache):
    if os.path.exists(cache):
        return torch.load(cache)
    out = []
    for i, chunk in enumerate(batches(paths, 32)):
        x = torch.from_numpy(np.stack([load_tensor(p) for p in chunk]))
        f8 = model.stride8(x)
        out.append(model.pooled(model.backbone.run_blocks(f8, 6, 13)))
        if i % 20 == 0:
            log("features", i * 32, "/", len(paths))
    feats = torch.cat(out)
    torch.save(feats, cache)
    return feats


def fit_linear(x, y, n_out, epochs=300, wd=1e-3, lr=0.05):
    """Full-batch softmax regression (features standardised inside the layer)."""
    mu, sd = x.mean(0), x.std(0) + 1e-6
    lin = torch.nn.Linear(x.shape[1], n_out)
    opt = torch.optim.Adam(lin.parameters(), lr=lr, weight_decay=wd)
    xs = (x - mu) / sd
    for _ in range(epochs):
        opt.zero_grad()
        F.cross_entropy(lin(xs), y).backward()
        opt.step()
    w = lin.weight.detach() / sd
    return w, lin.bias.detach() - w @ mu


@torch.no_grad()
def street_mask_cache(model, cache, limit):
    if os.path.exists(cache):
        return torch.load(cache)
    labels = json.load(open(MASK_LABELS))
    from data import STREET_NOT_GARMENT
    garment_ids = [i for i, n in enumerate(labels) if n not in STREET_NOT_GARMENT]
    f8s, f16s, ms = [], [], []
    for img_path, mask_path in street_masked()[:limit or None]:
        img, mask = street_sample(img_path, mask_path, garment_ids)
        x = torch.from_numpy(to_tensor(img))[None]
        f8 = model.stride8(x)
        f16 = model.backbone.run_blocks(f8, 6, 13)
        f8s.append(f8.half())
        f16s.append(f16.half())
        ms.append(torch.from_numpy(mask)[None, None])
    data = (torch.cat(f8s), torch.cat(f16s), torch.cat(ms))
    torch.save(data, cache)
    return data


def train_mask_head(model, f8, f16, masks, epochs=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    target = F.adaptive_avg_pool2d(masks, 28)
    opt = torch.optim.Adam(model.mask_head.parameters(), lr=3e-3)
    n = f8.shape[0]
    for ep in range(epochs):
        perm = torch.randperm(n, generator=g)
        tot = 0.0
        for idx in batches(perm, 32):
            logits = model.mask_head(f8[idx].float(), f16[idx].float())
            loss = F.binary_cross_entropy_with_logits(logits, target[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += float(loss) * len(idx)
        if ep % 10 == 0 or ep == epochs - 1:
            log("mask epoch", ep, "bce", round(tot / n, 4))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "models"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-class", type=int, default=0, help="quick run: at most this many photos per type")
    ap.add_argument("--street", type=int, default=0, help="quick run: at most this many street masks")
    args = ap.parse_args()
    torch.set_num_threads(2)
    seed_all(args.seed)
    os.makedirs(WORK, exist_ok=True)
    os.makedirs(os.path.join(args.out, "splits"), exist_ok=True)
    t0 = time.time()

    rows = clothing_rows()
    with open(os.path.join(args.out, "splits", "clothing_val.txt"), "w") as f:
        for p, _, v in rows:
            if v:
                f.write(os.path.relpath(p, "/work/shared/data/clothing") + "\n")
    train = [r for r in rows if not r[2]]
    val = [r for r in rows if r[2]]
    log("clothing train", len(train), "val", len(val))

    model = Tagger(len(TYPES), [p[2] for p in PALETTE])
    model.backbone.load_onnx(MOBILENET)
    model.eval()

    if args.per_class:
        rows = [r for t in range(len(TYPES)) for r in [x for x in rows if x[1] == t][:args.per_class]]
    feats = pooled_features(model, [r[0] for r in rows], os.path.join(WORK, "tagger_pooled_v0_%d.pt" % args.per_class))
    y = torch.tensor([r[1] for r in rows])
    is_val = torch.tensor([r[2] for r in rows])
    w, b = fit_linear(feats[~is_val], y[~is_val], len(TYPES))
    with torch.no_grad():
        model.type_head.weight.copy_(w)
        model.type_head.bias.copy_(b)
        acc = float((model.type_head(feats[is_val]).argmax(1) == y[is_val]).float().mean())
    log("clothing val top-1", round(acc, 4))

    # Embedding projection: principal axes of the training features.
    tr = feats[~is_val]
    mu = tr.mean(0)
    _, _, v = torch.linalg.svd(tr - mu, full_matrices=False)
    comp = v[:model.type_dim]
    with torch.no_grad():
        model.proj.weight.copy_(comp)
        model.proj.bias.copy_(-comp @ mu)

    f8, f16, masks = street_mask_cache(model, os.path.join(WORK, "tagger_street_v0_%d.pt" % args.street), args.street)
    train_mask_head(model, f8, f16, masks, seed=args.seed)

    val = [r for r in rows if r[2]]
    check = np.stack([load_tensor(r[0]) for r in val[:4]])
    diffs = export(model, os.path.join(args.out, "tagger.onnx"), os.path.join(args.out, "tagger.json"), check)
    log("onnx vs torch max abs diff", diffs)
    metrics = {"clothing_val_top1": acc, "clothing_val_n": len(val), "train_seconds": round(time.time() - t0),
               "onnx_max_abs_diff": diffs}
    with open(os.path.join(args.out, "tagger_metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1)
        f.write("\n")
    log("done", metrics)


if __name__ == "__main__":
    main()
