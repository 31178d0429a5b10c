"""mAP@0.5 per garment family of an exported detector on the held-out street photos.

The ONNX file is run through the same graph interpreter used for training, decoded the way the
Go side decodes it (score = objectness x class, NMS per family), and compared with boxes.csv.

    /usr/bin/python3 train/detect_eval.py [models/detector.onnx]
"""
import json
import os
import sys

import numpy as np
import onnx
import torch
from PIL import Image
from torchvision.ops import batched_nms, box_iou

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from yolox_data import FAMILIES, letterbox, read_boxes  # noqa: E402
from yolox_onnx import OnnxNet, decode  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STREET = os.path.join(ROOT, "..", "shared", "data", "street")
SPLIT = os.path.join(ROOT, "models", "splits", "street_val.txt")


def detect(net, img, nms_iou=0.5, min_score=0.001, max_det=100):
    """One photo → boxes [K,4] in photo pixels, scores [K], family indices [K]."""
    a, r = letterbox(img)
    x = torch.from_numpy(a.astype(np.float32)).permute(2, 0, 1)[None].contiguous()
    with torch.no_grad():
        d = decode(net(x))[0]
    xy, wh = d[:, :2], d[:, 2:4]
    boxes = torch.cat((xy - wh / 2, xy + wh / 2), 1) / r
    # Clamped to the photo, as the Go decoder does.
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, img.size[0])
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, img.size[1])
    scores = d[:, 4:5] * d[:, 5:]
    ai, ci = (scores > min_score).nonzero(as_tuple=True)
    b, s = boxes[ai], scores[ai, ci]
    keep = batched_nms(b, s, ci, nms_iou)[:max_det]
    return b[keep], s[keep], ci[keep]


def average_precision(recall, precision):
    """VOC all-point interpolated AP."""
    r = np.concatenate(([0.0], recall, [1.0]))
    p = np.concatenate(([0.0], precision, [0.0]))
    for i in range(len(p) - 2, -1, -1):
        p[i] = max(p[i], p[i + 1])
    i = np.nonzero(r[1:] != r[:-1])[0]
    return float(((r[i + 1] - r[i]) * p[i + 1]).sum())


def evaluate(onnx_path, images=None, iou_thr=0.5):
    net = OnnxNet(onnx.load(onnx_path)).eval()
    gts = read_boxes(STREET)
    if images is None:
        images = [line.strip() for line in open(SPLIT) if line.strip()]
    dets = {c: [] for c in range(len(FAMILIES))}  # (score, image, box)
    npos = np.zeros(len(FAMILIES), int)
    for image in images:
        g = gts[image]
        for c in g[:, 4].astype(int):
            npos[c] += 1
        b, s, c = detect(net, Image.open(os.path.join(STREET, image)).convert("RGB"))
        for bb, ss, cc in zip(b, s.tolist(), c.tolist()):
            dets[cc].append((ss, image, bb))
    ap = {}
    for c, fam in enumerate(FAMILIES):
        if npos[c] == 0:
            continue
        ds = sorted(dets[c], key=lambda t: -t[0])
        used = {im: np.zeros(int((gts[im][:, 4] == c).sum()), bool) for im in images}
        tp = np.zeros(len(ds))
        for i, (_, im, bb) in enumerate(ds):
            g = gts[im]
            g = torch.from_numpy(g[g[:, 4] == c, :4])
            if len(g) == 0:
                continue
            iou = box_iou(bb[None], g)[0]
            j = int(iou.argmax())
            if iou[j] >= iou_thr and not used[im][j]:
                used[im][j] = True
                tp[i] = 1
        ctp = np.cumsum(tp)
        recall = ctp / npos[c]
        precision = ctp / np.maximum(np.arange(1, len(ds) + 1), 1)
        ap[fam] = average_precision(recall, precision)
    return {"mAP50": float(np.mean(list(ap.values()))), "AP50": ap,
            "val_images": len(images), "val_boxes": {f: int(n) for f, n in zip(FAMILIES, npos) if n}}


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "models", "detector.onnx")
    torch.set_num_threads(2)
    res = evaluate(path)
    for fam, v in res["AP50"].items():
        print(f"{fam:10s} AP50 {v:.3f}  ({res['val_boxes'][fam]} boxes)")
    print(f"mAP50 {res['mAP50']:.3f} over {len(res['AP50'])} families, {res['val_images']} images")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
