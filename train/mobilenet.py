"""MobileNetV2 1.0/224 mirroring /work/shared/models/init/mobilenet_v2_imagenet.onnx.

The ONNX file has batch norm folded into biased convolutions and TF-style
asymmetric padding for stride-2 3x3 convolutions (pad bottom/right only), so
torchvision's class cannot hold its weights; this module reproduces that graph
node for node and every Conv/Gemm initializer is loaded one to one.
"""
import numpy as np
import onnx
from onnx import numpy_helper
import torch
import torch.nn as nn
import torch.nn.functional as F

# (expansion, out channels, repeats, first stride) of the TF MobileNetV2 after expanded_conv.
BLOCKS = [(6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
PREFIX = "MobilenetV2/"


class TFConv(nn.Conv2d):
    """Conv2d whose stride-2 3x3 padding is TensorFlow's SAME for even inputs: (0,1,0,1)."""

    def __init__(self, cin, cout, k, stride=1, groups=1):
        self.tf_stride2 = k == 3 and stride == 2
        pad = 0 if (k == 1 or self.tf_stride2) else 1
        super().__init__(cin, cout, k, stride, pad, groups=groups, bias=True)

    def forward(self, x):
        if self.tf_stride2:
            x = F.pad(x, (0, 1, 0, 1))
        return super().forward(x)


def relu6(x):
    return torch.clamp(x, 0.0, 6.0)


class Block(nn.Module):
    def __init__(self, name, cin, cout, t, stride):
        super().__init__()
        self.name = name
        hid = cin * t
        self.expand = TFConv(cin, hid, 1) if t != 1 else None
        self.depthwise = TFConv(hid, hid, 3, stride, groups=hid)
        self.project = TFConv(hid, cout, 1)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        h = relu6(self.expand(x)) if self.expand is not None else x
        h = self.project(relu6(self.depthwise(h)))
        return h + x if self.residual else h

    def onnx_names(self):
        out = [] if self.expand is None else [("expand", "expand/weights", "expand/Conv2D_Fold_bias")]
        return out + [("depthwise", "depthwise/weights", "depthwise/depthwise_Fold_bias"),
                      ("project", "project/weights", "project/Conv2D_Fold_bias")]


class MobileNetV2(nn.Module):
    """features(x, upto) runs the stem and blocks [0, upto); forward returns pooled 1280-d features."""

    def __init__(self):
        super().__init__()
        self.stem = TFConv(3, 32, 3, 2)
        blocks = [Block("expanded_conv", 32, 16, 1, 1)]
        cin = 16
        for t, c, n, s in BLOCKS:
            for i in range(n):
                blocks.append(Block("expanded_conv_%d" % len(blocks), cin, c, t, s if i == 0 else 1))
                cin = c
        self.blocks = nn.ModuleList(blocks)
        self.head = TFConv(320, 1280, 1)
        self.classifier = nn.Linear(1280, 1001)

    def stem_forward(self, x):
        return relu6(self.stem(x))

    def run_blocks(self, x, start, stop):
        for b in self.blocks[start:stop]:
            x = b(x)
        return x

    def top(self, x):
        """Final 1x1 conv + ReLU6 feature map [N,1280,7,7]."""
        return relu6(self.head(x))

    def forward(self, x):
        x = self.run_blocks(self.stem_forward(x), 0, len(self.blocks))
        return self.top(x).mean(dim=(2, 3))

    def load_onnx(self, path):
        """Copy every Conv/Gemm initializer of the ImageNet ONNX file, failing on any mismatch."""
        inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(path).graph.initializer}
        used = set()

        def put(param, name):
            arr = inits[PREFIX + name]
            if tuple(arr.shape) != tuple(param.shape):
                raise ValueError("%s: shape %s, module wants %s" % (name, arr.shape, tuple(param.shape)))
            with torch.no_grad():
                param.copy_(torch.from_numpy(np.ascontiguousarray(arr)))
            used.add(PREFIX + name)

        put(self.stem.weight, "Conv/weights")
        put(self.stem.bias, "Conv/Conv2D_Fold_bias")
        for b in self.blocks:
            for attr, w, bias in b.onnx_names():
                put(getattr(b, attr).weight, b.name + "/" + w)
                put(getattr(b, attr).bias, b.name + "/" + bias)
        put(self.head.weight, "Conv_1/weights")
        put(self.head.bias, "Conv_1/Conv2D_Fold_bias")
        put(self.classifier.weight, "Logits/Conv2d_1c_1x1/weights")
        put(self.classifier.bias, "Logits/Conv2d_1c_1x1/Conv2D_bias")
        left = [k for k, v in inits.items() if k not in used and v.ndim >= 1 and v.size > 1
                and k.startswith(PREFIX)]
        if left:
            raise ValueError("unused initializers: %s" % left)
        return self
