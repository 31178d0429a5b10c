"""Garment pseudo-masks for the casual clothing photos from the shared
skin/clothes/hair segmentation model (PAN + MobileNetV3-small, MIT), run
offline through onnx_torch since Debian's Python has no onnxruntime."""
import os

import numpy as np
import torch
import torch.nn.functional as F

from data import SHARED
from onnx_torch import OnnxGraph

SEG = os.path.join(SHARED, "models/init/skin_clothes_hair_seg.onnx")
MEAN = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1)


class ClothesSegmenter:
    def __init__(self, path=SEG):
        self.graph = OnnxGraph(path)
        self.inp = self.graph.inputs[0]

    def __call__(self, imgs, size):
        """RGB uint8 [N,H,W,3] -> clothes probability [N,size,size] float32."""
        x = torch.from_numpy(np.asarray(imgs, np.float32).transpose(0, 3, 1, 2) / 255.0)
        x = F.interpolate(x, size=512, mode="bilinear", align_corners=False).numpy()
        out = self.graph.run({self.inp: (x - MEAN) / STD})
        probs = torch.from_numpy(next(iter(out.values())))
        return F.interpolate(probs[:, 1:2], size=size, mode="bilinear", align_corners=False)[:, 0].numpy()
