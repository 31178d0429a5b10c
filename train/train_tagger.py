"""Train Weft's tagger and write models/tagger.onnx, embedder.onnx, tagger.json, the split and metrics.

    /usr/bin/python3 train/train_tagger.py

Stages (frozen-feature caches live in train/work/tagger_*, safe to delete):
 1. split data/clothing by MD5 of the file name (models/splits/clothing_val.txt, ~15%);
 2. run the frozen early blocks once per view: every photo's plain view and VIEWS
    augmented views of each training photo, cached at the stride-16 cut (after block 12);
 3. fine-tune blocks 13-16, the 1280-d head conv and the type head on the cached views and on
    catalogue-style model shots made from the masked street photos (street_type_views);
 4. garment-mask head on stride-8/16 features of exact street masks, the same street
    people composited on white, and casual clothing photos with pseudo-masks from the
    shared skin/clothes/hair model (also composited on white); then one weight per
    palette colour from our hand colour labels (calibrate_colour.py);
 5. embedding projection = principal axes of the fine-tuned pooled training features;
 6. export, check ONNX against torch, measure (eval_tagger.py), write metrics.
"""
import argparse
import hashlib
import json
import os

# Passive OpenMP waits: the 2 cores are shared with other jobs and spinning threads waste them.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from calibrate_colour import fit_palette_weights, hand_labels, lab_and_mask, palette_scores  # noqa: E402
from data import (CLOTHING, MOBILENET, STREET_NOT_GARMENT, TYPES, augment, clothing_rows, imagenet_labels,  # noqa: E402
                  is_clothing_val, on_white, square_float_mask, street_garment_view, street_mask_labels,
                  street_mask_path, street_masked)
from export import export  # noqa: E402
from palette import PALETTE  # noqa: E402
from preprocess import load_image, open_rgb, pad_square, to_tensor, SIZE  # noqa: E402
from pseudo_masks import ClothesSegmenter  # noqa: E402
from tagger import CUT8, CUT16, Tagger  # noqa: E402

ROOT = os.path.dirname(HERE)
WORK = os.path.join(HERE, "work")
# Fine-tuning starts at block 13, the first stride-32 block, on cached stride-16 maps, for 12
# epochs: held-out type top-1 over seeds 0-2 is 0.879/0.872/0.872, against 0.859/0.844/0.840 when
# it started one block later for 6 epochs (6 epochs from here: 0.870/0.865/0.865; 12 from there: 0.856).
# The mask head reads blocks[:13] too, so its input stays the frozen ImageNet one.
FT_CUT = CUT16
CHUNK = 128
# Street mask label -> garment type, for catalogue-style model shots (street_type_views). Only
# labels that mean the same in both datasets (data/clothing's "long sleeve" holds its sweaters and
# sweatshirts); the street set's "top", "blouse", "hoodie" or "cardigan" are not drawn the way
# data/clothing's classes are.
STREET_TYPE = {
    "t-shirt": "t-shirt", "shirt": "shirt", "sweater": "long sleeve", "jumper": "long sleeve",
    "sweatshirt": "long sleeve", "jacket": "outerwear", "coat": "outerwear",
    "blazer": "blazer", "jeans": "pants", "pants": "pants", "shorts": "shorts", "skirt": "skirt",
    "dress": "dress", "hat": "hat", "shoes": "shoes", "boots": "shoes", "sneakers": "shoes",
    "heels": "shoes", "flats": "shoes", "loafers": "shoes", "pumps": "shoes", "sandals": "shoes",
    "wedges": "shoes", "clogs": "shoes",
}


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def cached(path, make):
    if os.path.exists(path):
        return torch.load(path)
    val = make()
    torch.save(val, path + ".tmp")
    os.replace(path + ".tmp", path)
    return val


@torch.no_grad()
def early(model, imgs):
    """Frozen part on PIL images: (f8, f16) as float16."""
    x = torch.from_numpy(np.stack([to_tensor(i) for i in imgs]))
    f8 = model.stride8(x)
    f16 = model.backbone.run_blocks(f8, CUT8, CUT16)
    return f8.half(), f16.half()


def clothing_cache(model, rows, views, seed):
    """Per chunk: base f8/f16 of every photo, f16 of `views` augmented views of training photos."""
    out = {"f8": [], "f16": [], "aug": [], "aug_y": []}
    for c in range(0, len(rows), CHUNK):
        def make(c=c):
            rng = np.random.default_rng(seed * 100003 + c)
            chunk = rows[c:c + CHUNK]
            base = [load_image(p) for p, _, _ in chunk]
            f8, f16 = early(model, base)
            aug, aug_y = [], []
            for _ in range(views):
                imgs = [augment(pad_square(open_rgb(p)), rng) for p, _, v in chunk if not v]
                if imgs:
                    aug.append(early(model, imgs)[1])
                    aug_y += [y for _, y, v in chunk if not v]
            return {"f8": f8, "f16": f16,
                    "aug": torch.cat(aug) if aug else torch.zeros(0, *f16.shape[1:]).half(),
                    "aug_y": torch.tensor(aug_y, dtype=torch.long)}
        part = cached(os.path.join(WORK, "tagger_clothing16_v%d_s%d_%04d.pt" % (views, seed, c // CHUNK)), make)
        for k in out:
            out[k].append(part[k])
        log("clothing cache", min(c + CHUNK, len(rows)), "/", len(rows))
    return {k: torch.cat(v) for k, v in out.items()}


def late_pooled(model, f16):
    b = model.backbone
    return b.top(b.run_blocks(f16.float(), FT_CUT, len(b.blocks))).mean(dim=(2, 3))


def late_logits(model, f16):
    return model.type_head(late_pooled(model, f16))


def late_params(model):
    """What fine-tuning trains: blocks 13-16, the 1280-d head conv and the type head."""
    b = model.backbone
    return list(b.blocks[FT_CUT:]) + [b.head, model.type_head]


def finetune(model, x, y, val_x, val_y, epochs, seed, weight=None):
    """weight: per-view loss weights (default 1)."""
    head, rest = model.type_head, late_params(model)[:-1]
    opt = torch.optim.AdamW([{"params": [p for m in rest for p in m.parameters()], "lr": 3e-4},
                             {"params": head.parameters(), "lr": 3e-3}], weight_decay=1e-4)
    n, bs = x.shape[0], 64
    weight = torch.ones(n) if weight is None else weight
    steps = epochs * ((n + bs - 1) // bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[3e-4, 3e-3], total_steps=steps, pct_start=0.1)
    g = torch.Generator().manual_seed(seed)
    for ep in range(epochs):
        perm = torch.randperm(n, generator=g)
        tot, t0 = 0.0, time.time()
        for i in range(0, n, bs):
            idx = perm[i:i + bs]
            xb = x[idx]
            # Cheap stand-in for image flips: mirror half of the cached 7x7 maps.
            flip = torch.rand(len(idx), generator=g) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            w = weight[idx]
            loss = (F.cross_entropy(late_logits(model, xb), y[idx], label_smoothing=0.1, reduction="none") * w).sum() / w.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss) * len(idx)
        acc = type_accuracy(model, val_x, val_y)
        log("finetune epoch", ep, "loss", round(tot / n, 4), "val top-1", round(acc, 4), "s", round(time.time() - t0))
    return acc


@torch.no_grad()
def type_accuracy(model, x, y):
    pred = torch.cat([late_logits(model, x[i:i + 256]).argmax(1) for i in range(0, x.shape[0], 256)])
    return float((pred == y).float().mean())


@torch.no_grad()
def pooled(model, f16):
    return torch.cat([late_pooled(model, f16[i:i + 256]) for i in range(0, f16.shape[0], 256)])


def street_type_views(model):
    """Catalogue model shots made from the masked street photos: the person on near-white, framed on
    one garment (data.street_garment_view, worn=True) and labelled with that garment's type.
    Casual photos show one garment alone; a shop's model shot shows trousers under the shirt it
    sells, and without these views the type head called such shots "pants". Garments under 1% of
    the photo and the mask head's held-out photos are left out."""
    labels = street_mask_labels()

    def make():
        f16s, ys, views = [], [], []
        todo = [p for p, _ in street_masked() if not is_clothing_val(p)]
        for k, img_path in enumerate(todo):
            lab = np.asarray(Image.open(street_mask_path(img_path)))
            for i in np.unique(lab):
                t = STREET_TYPE.get(labels[i])
                if t is not None and (lab == i).mean() >= 0.01:
                    views.append(street_garment_view(img_path, labels[i], worn=True))
                    ys.append(TYPES.index(t))
            if len(views) >= 64 or k == len(todo) - 1:
                f16s.append(early(model, views)[1])
                views = []
                log("street model shots", k + 1, "/", len(todo))
        return {"f16": torch.cat(f16s), "y": torch.tensor(ys, dtype=torch.long)}
    key = hashlib.md5(json.dumps(STREET_TYPE, sort_keys=True).encode()).hexdigest()[:8]
    return cached(os.path.join(WORK, "tagger_street_views_%s.pt" % key), make)


def street_mask_data(model, seed):
    """Exact street masks, plain and with the person composited on white; 15% held out by name."""
    labels = street_mask_labels()
    garment_ids = [i for i, n in enumerate(labels) if n not in STREET_NOT_GARMENT]

    def make():
        rng = np.random.default_rng(seed + 7)
        f8s, f16s, ms, val = [], [], [], []
        for img_path, mask_path in street_masked():
            lab = np.asarray(Image.open(mask_path))
            garment = square_float_mask(np.isin(lab, garment_ids).astype(np.float32), SIZE)
            person = square_float_mask((lab > 0).astype(np.float32), SIZE)
            img = pad_square(open_rgb(img_path)).resize((SIZE, SIZE), Image.BILINEAR)
            f8, f16 = early(model, [img, on_white(img, person, rng)])
            f8s.append(f8)
            f16s.append(f16)
            ms += [torch.from_numpy(garment)[None]] * 2
            val += [is_clothing_val(img_path)] * 2
        return torch.cat(f8s), torch.cat(f16s), torch.stack(ms), torch.tensor(val)
    return cached(os.path.join(WORK, "tagger_street_masks_s%d.pt" % seed), make)


def clothing_mask_data(model, rows, cache, n, seed):
    """Pseudo-masks for n training photos (plain view from the cache) and the same garments on white."""
    idx = [i for i, r in enumerate(rows) if not r[2]]
    rng = np.random.default_rng(seed + 11)
    idx = sorted(rng.choice(idx, size=min(n, len(idx)), replace=False).tolist())

    def make():
        seg = ClothesSegmenter()
        ms, f8w, f16w = [], [], []
        for c in range(0, len(idx), 16):
            imgs = [load_image(rows[i][0]) for i in idx[c:c + 16]]
            m = seg(np.stack([np.asarray(i) for i in imgs]), SIZE)
            ms.append(torch.from_numpy(m)[:, None])
            f8, f16 = early(model, [on_white(i, mm, rng) for i, mm in zip(imgs, m)])
            f8w.append(f8)
            f16w.append(f16)
            log("pseudo masks", c + 16, "/", len(idx))
        return torch.cat(ms), torch.cat(f8w), torch.cat(f16w)
    ms, f8w, f16w = cached(os.path.join(WORK, "tagger_clothing_masks_n%d_s%d.pt" % (n, seed)), make)
    sel = torch.tensor(idx)
    return torch.cat([cache["f8"][sel], f8w]), torch.cat([cache["f16"][sel], f16w]), torch.cat([ms, ms])


def train_mask_head(model, f8, f16, masks, epochs, seed):
    g = torch.Generator().manual_seed(seed)
    target = F.adaptive_avg_pool2d(masks, 28)
    opt = torch.optim.Adam(model.mask_head.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    n = f8.shape[0]
    for ep in range(epochs):
        perm = torch.randperm(n, generator=g)
        tot = 0.0
        for i in range(0, n, 32):
            idx = perm[i:i + 32]
            logits = model.mask_head(f8[idx].float(), f16[idx].float())
            loss = F.binary_cross_entropy_with_logits(logits, target[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += float(loss) * len(idx)
        sched.step()
        if ep % 5 == 0 or ep == epochs - 1:
            log("mask epoch", ep, "bce", round(tot / n, 4))


@torch.no_grad()
def mask_iou(model, f8, f16, masks):
    pred = model.garment_mask(f8.float(), f16.float()) > 0.5
    truth = F.adaptive_avg_pool2d(masks, pred.shape[-1]) > 0.5
    return float((pred & truth).sum() / (pred | truth).sum().clamp(min=1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "models"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--views", type=int, default=0, help="augmented views cached per training photo")
    ap.add_argument("--epochs", type=int, default=12, help="fine-tuning epochs over all cached views")
    ap.add_argument("--mask-photos", type=int, default=300, help="clothing photos given pseudo-masks")
    ap.add_argument("--street-views", type=float, default=1.0,
                    help="loss weight of the street model shots in type training (0: not used)")
    ap.add_argument("--eval", action="store_true", help="also measure on catalog-val (eval_tagger.py)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    seed_all(args.seed)
    os.makedirs(WORK, exist_ok=True)
    os.makedirs(os.path.join(args.out, "splits"), exist_ok=True)
    t0 = time.time()

    rows = clothing_rows()
    with open(os.path.join(args.out, "splits", "clothing_val.txt"), "w") as f:
        f.writelines(os.path.relpath(p, CLOTHING) + "\n" for p, _, v in rows if v)
    is_val = torch.tensor([r[2] for r in rows])
    y = torch.tensor([r[1] for r in rows])
    log("clothing train", int((~is_val).sum()), "val", int(is_val.sum()))

    model = Tagger(len(TYPES), [p[2] for p in PALETTE])
    model.backbone.load_onnx(MOBILENET)
    model.keep_imagenet_tail(imagenet_labels())
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    for m in late_params(model) + [model.mask_head]:
        for p in m.parameters():
            p.requires_grad_(True)

    cache = clothing_cache(model, rows, args.views, args.seed)
    x = torch.cat([cache["f16"][~is_val], cache["aug"]])
    yt = torch.cat([y[~is_val], cache["aug_y"]])
    weight = torch.ones(x.shape[0])
    if args.street_views > 0:
        sv = street_type_views(model)
        x, yt = torch.cat([x, sv["f16"]]), torch.cat([yt, sv["y"]])
        weight = torch.cat([weight, torch.full((sv["y"].shape[0],), args.street_views)])
        log("street model shots", sv["y"].shape[0], "weight", args.street_views)
    log("fine-tuning on", x.shape[0], "views")
    acc = finetune(model, x, yt, cache["f16"][is_val], y[is_val], args.epochs, args.seed, weight)

    feats = pooled(model, cache["f16"][~is_val])
    # Uncentred: cosine similarity of the projections then tracks that of the pooled features
    # themselves, for any image domain (centring on casual photos skews studio shots).
    _, _, v = torch.linalg.svd(feats, full_matrices=False)
    with torch.no_grad():
        model.proj.weight.copy_(v[:model.type_dim])
        model.proj.bias.zero_()

    s8, s16, sm, sval = street_mask_data(model, args.seed)
    c8, c16, cm = clothing_mask_data(model, rows, cache, args.mask_photos, args.seed)
    train_mask_head(model, torch.cat([s8[~sval], c8]), torch.cat([s16[~sval], c16]),
                    torch.cat([sm[~sval], cm]), epochs=30, seed=args.seed)
    iou = mask_iou(model, s8[sval], s16[sval], sm[sval])
    log("street held-out mask IoU", round(iou, 4))

    labelled = hand_labels()
    probs = torch.cat([palette_scores(*lab_and_mask(model, rows)) for rows in labelled.values()])
    weights = fit_palette_weights(probs, [f for rows in labelled.values() for _, f in rows])
    model.palette_log_weight.copy_(weights)
    log("palette weights from", probs.shape[0], "hand colour labels: range",
        round(float(model.palette_log_weight.min()), 3), round(float(model.palette_log_weight.max()), 3))

    val_paths = [r[0] for r in rows if r[2]]
    check = np.stack([to_tensor(load_image(p)) for p in val_paths[:4]])
    diffs = export(model, os.path.join(args.out, "tagger.onnx"), os.path.join(args.out, "tagger.json"), check)
    log("onnx vs torch max abs diff", diffs)
    metrics = {"clothing_val_top1_torch": acc, "clothing_val_n": int(is_val.sum()),
               "street_heldout_mask_iou": iou, "onnx_max_abs_diff": diffs,
               "train_seconds": round(time.time() - t0), "views": args.views, "epochs": args.epochs,
               "mask_photos": args.mask_photos, "street_views": args.street_views, "seed": args.seed}
    if args.eval:
        from eval_tagger import evaluate
        metrics["eval"] = evaluate(os.path.join(args.out, "tagger.onnx"), os.path.join(args.out, "tagger.json"))
    metrics["total_seconds"] = round(time.time() - t0)
    torch.save(model.state_dict(), os.path.join(WORK, "tagger_state_s%d.pt" % args.seed))
    with open(os.path.join(args.out, "tagger_metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1)
        f.write("\n")
    log("done", json.dumps(metrics))


if __name__ == "__main__":
    main()
