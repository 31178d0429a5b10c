"""Fine-tunes YOLOX-Nano (COCO) into Weft's garment detector and exports it for the Go side.

    /usr/bin/python3 train/train_detector.py

Prepares the street boxes (cached under train/work/), writes the held-out split, trains with
fixed seeds, exports models/detector.onnx + detector.json, checks the ONNX against torch and
writes models/detector_metrics.json with the held-out mAP@0.5. A share of the training scenes
(--garments) are casual garment photos from data/clothing (the tagger's training split), boxed
by the shared clothes segmenter's mask: as taken, and cut out onto near-white as packshots.

    /usr/bin/python3 train/train_detector.py --teacher train/work/detector_stage1.onnx

also trains on the 1,094 street photos that carry only garment tags, boxed by the teacher
(self-training): a photo is used when every garment family its tags name has a box, and
its boxes are the teacher's of those families (see pseudo_items).
"""
import argparse
import csv
import copy
import json
import math
import os
import sys
import time

import numpy as np
import onnx
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import detect_eval  # noqa: E402
from PIL import Image  # noqa: E402
from data import TYPES, clothing_rows  # noqa: E402
from yolox_data import FAMILIES, FAMILY_LABELS, Scenes, build_cache, garment_items, letterbox  # noqa: E402
from yolox_loss import YoloxLoss  # noqa: E402
from yolox_onnx import OnnxNet, load_detector  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INIT = os.path.join(ROOT, "..", "shared", "models", "init", "yolox_nano_coco.onnx")
WORK = os.path.join(ROOT, "train", "work")
MODELS = os.path.join(ROOT, "models")

# COCO classes whose heads are a better start than nothing: backpack, handbag, suitcase → bag; tie → scarf.
CLASS_INIT = {"bag": [24, 26, 28], "scarf": [27]}


def parse():
    p = argparse.ArgumentParser()
    p.add_argument("--iters", type=int, default=1800)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--crop", type=int, default=288)
    p.add_argument("--freeze", default="781", help="ONNX tensor up to which the backbone stays as trained on COCO")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=os.path.join(MODELS, "detector.onnx"))
    p.add_argument("--garments", type=float, default=0.3,
                   help="share of scenes that are one casual garment photo, as taken or as a packshot (0: street only)")
    p.add_argument("--teacher", help="detector ONNX that boxes the tag-only street photos for training")
    p.add_argument("--pseudo-score", type=float, default=0.4, help="teacher boxes kept from this score")
    p.add_argument("--pseudo-fallback", type=float, default=0.15,
                   help="a tagged family without a box at --pseudo-score takes its best box from this score")
    return p.parse_args()


def pseudo_items(teacher, street, score, fallback):
    """Training items from the tag-only street photos, boxed by the teacher detector.

    The tags say which families are in the photo, so a box of another family is dropped
    and a photo is skipped when one of its tagged families has no box at all (its garment
    would otherwise teach the model that it is background). No mask: never cut out for pasting."""
    family_of = {name: f for f, names in FAMILY_LABELS.items() for name in names}
    net = OnnxNet(onnx.load(teacher)).eval()
    items, skipped = [], 0
    with open(os.path.join(street, "images.csv")) as f:
        rows = [r for r in csv.DictReader(f) if r["annotation"] == "image"]
    for r in rows:
        want = {FAMILIES.index(family_of[t.strip()]) for t in r["tags"].split(";") if t.strip() in family_of}
        if not want:
            skipped += 1
            continue
        img = Image.open(os.path.join(street, r["image"])).convert("RGB")
        b, s, c = detect_eval.detect(net, img, min_score=fallback)
        keep = []
        for fam in want:
            mine = (c == fam).nonzero().flatten().tolist()
            strong = [i for i in mine if s[i] >= score]
            keep += strong or mine[:1]  # detect() returns boxes best first
        if {int(c[i]) for i in keep} != want:
            skipped += 1
            continue
        a, ratio = letterbox(img)
        nw, nh = int(round(img.size[0] * ratio)), int(round(img.size[1] * ratio))
        boxes = np.array([[*(b[i] * ratio).tolist(), float(c[i])] for i in keep], np.float32)
        items.append({"image": r["image"], "val": False, "img": a[:nh, :nw].copy(),
                      "fam": np.full((nh, nw), 255, np.uint8), "boxes": boxes, "scale": ratio})
    print(f"teacher boxes for {len(items)} tag-only photos ({sum(len(i['boxes']) for i in items)} boxes); "
          f"{skipped} skipped", flush=True)
    return items


def batch_of(scenes, n):
    imgs, targets = [], []
    for _ in range(n):
        img, boxes = scenes.sample()
        imgs.append(torch.from_numpy(img).permute(2, 0, 1))
        targets.append(torch.from_numpy(boxes.astype(np.float32)).reshape(-1, 5))
    return torch.stack(imgs).float(), targets


def raw_output(det, x):
    """The exported graph's output computed from the training module, to check the export."""
    cols = []
    for reg, obj, cls in det(x):
        n = reg.shape[0]
        cols.append(torch.cat((reg, torch.sigmoid(obj), torch.sigmoid(cls)), 1).reshape(n, 5 + det.num_classes, -1))
    return torch.cat(cols, 2).transpose(1, 2)


def main():
    args = parse()
    t0 = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    items = build_cache(detect_eval.STREET, os.path.join(WORK, "street_cache.pkl"))
    train = [it for it in items if not it["val"]]
    val = [it["image"] for it in items if it["val"]]
    os.makedirs(os.path.dirname(detect_eval.SPLIT), exist_ok=True)
    with open(detect_eval.SPLIT, "w") as f:
        f.write("\n".join(val) + "\n")
    print(f"{len(train)} training photos, {len(val)} held out; prepared in {time.time() - t0:.0f}s", flush=True)
    if args.teacher:
        train = train + pseudo_items(args.teacher, detect_eval.STREET, args.pseudo_score, args.pseudo_fallback)
    garments = []
    if args.garments > 0:
        from pseudo_masks import ClothesSegmenter
        torch.set_num_threads(2)
        # The tagger's split: its held-out photos stay unseen here too.
        rows = [(p, t) for p, t, v in clothing_rows() if not v]
        garments = garment_items(rows, TYPES, os.path.join(WORK, "garment_items.pkl"), ClothesSegmenter)
        torch.set_num_threads(args.threads)
        print(f"{len(garments)} garment photos with mask boxes ({len(rows) - len(garments)} skipped)", flush=True)

    init = [CLASS_INIT.get(f, []) for f in FAMILIES]
    det = load_detector(INIT, len(FAMILIES), init)
    if args.freeze:
        det.freeze_until(args.freeze)
    ema = copy.deepcopy(det)
    for p in ema.parameters():
        p.requires_grad_(False)
    scenes = Scenes(train, rng, args.crop, garments, args.garments)
    loss_fn = YoloxLoss(size=args.crop)
    decay, other = [], []
    for p in det.parameters():
        if not p.requires_grad:
            continue
        (decay if p.dim() > 1 else other).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 5e-4}, {"params": other, "weight_decay": 0}],
                            lr=args.lr)
    warm = min(300, args.iters // 10)
    t1 = time.time()
    avg = None
    for it in range(args.iters):
        lr = args.lr * (it + 1) / warm if it < warm else \
            args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (it - warm) / (args.iters - warm))))
        for g in opt.param_groups:
            g["lr"] = lr
        x, targets = batch_of(scenes, args.batch)
        loss, parts = loss_fn(det(x), targets)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(decay + other, 10.0)
        opt.step()
        d = 0.999 * (1 - math.exp(-(it + 1) / 200))
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), det.parameters()):
                pe.mul_(d).add_(p.detach(), alpha=1 - d)
        avg = parts if avg is None else {k: 0.95 * avg[k] + 0.05 * v for k, v in parts.items()}
        if (it + 1) % 50 == 0:
            el = time.time() - t1
            print(f"it {it + 1}/{args.iters} lr {lr:.2e} " + " ".join(f"{k} {v:.3f}" for k, v in avg.items()) +
                  f" | {el / (it + 1):.2f}s/it, eta {el / (it + 1) * (args.iters - it - 1) / 60:.1f}min", flush=True)
    train_s = time.time() - t1

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    ema.export(args.out)
    # The exported file, run on its own, must give what the trained module gives.
    exported = OnnxNet(onnx.load(args.out)).eval()
    worst = 0.0
    with torch.no_grad():
        for it in [i for i in items if i["val"]][:4]:
            x = torch.full((1, 3, 416, 416), 114.0)
            h, w = it["img"].shape[:2]
            x[0, :, :h, :w] = torch.from_numpy(it["img"]).permute(2, 0, 1).float()
            worst = max(worst, float((exported(x) - raw_output(ema, x)).abs().max()))
    print(f"export check: max |onnx - torch| = {worst:.2e}", flush=True)
    assert worst < 1e-3

    meta = {"input": "images", "size": 416, "strides": [8, 16, 32], "pad_value": 114, "bgr": True,
            "sigmoid_in_graph": True, "categories": FAMILIES, "score_threshold": 0.3, "nms_iou": 0.5}
    base = os.path.splitext(args.out)[0]
    with open(base + ".json", "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    res = detect_eval.evaluate(args.out)
    for fam, v in res["AP50"].items():
        print(f"{fam:10s} AP50 {v:.3f}  ({res['val_boxes'][fam]} boxes)")
    print(f"mAP50 {res['mAP50']:.3f}", flush=True)
    res.update({"command": "/usr/bin/python3 train/train_detector.py " + " ".join(sys.argv[1:]),
                "iters": args.iters, "batch": args.batch, "lr": args.lr, "seed": args.seed,
                "train_images": len(train), "garment_images": len(garments), "garments": args.garments,
                "train_seconds": round(train_s), "total_seconds": round(time.time() - t0),
                "export_max_abs_diff": worst})
    with open(base + "_metrics.json", "w") as f:
        json.dump(res, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
