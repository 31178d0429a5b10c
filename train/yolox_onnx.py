"""A trainable torch module built from the YOLOX-Nano ONNX graph, and the way back to ONNX.

The COCO graph has batch norm folded into its convolutions and only a dozen op types, so a
small interpreter is enough: every Conv initializer becomes a torch Parameter, every other
initializer stays a constant. Export writes the original graph back with the trained weights,
so the Go decoder sees exactly the layout it already reads for the COCO file.
"""
import copy

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import numpy_helper

NUM_COCO = 80


def _attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _pname(name):
    # ParameterDict keys may not contain dots.
    return name.replace(".", "__")


class OnnxNet(nn.Module):
    """Runs an ONNX graph of Conv/Sigmoid/Mul/Add/Concat/Slice/MaxPool/Resize/Reshape/Transpose."""

    def __init__(self, model):
        super().__init__()
        self.graph = copy.deepcopy(model.graph)
        self.consts = {}
        conv_inputs = set()
        for n in self.graph.node:
            if n.op_type == "Conv":
                conv_inputs.update(n.input[1:])
        self.params = nn.ParameterDict()
        for init in self.graph.initializer:
            arr = numpy_helper.to_array(init)
            if init.name in conv_inputs:
                self.params[_pname(init.name)] = nn.Parameter(torch.from_numpy(arr.copy()))
            else:
                self.consts[init.name] = arr
        self.nodes = [(n.op_type, list(n.input), list(n.output), _attrs(n)) for n in self.graph.node]
        self.input_name = self.graph.input[0].name
        self.output_name = self.graph.output[0].name

    def value(self, env, name):
        if name in env:
            return env[name]
        key = _pname(name)
        if key in self.params:
            return self.params[key]
        return self.consts[name]

    def forward(self, x, outputs=None):
        """Returns the graph output, or a dict of the named intermediate tensors."""
        want = set(outputs) if outputs else {self.output_name}
        env = {self.input_name: x}
        for op, ins, outs, at in self.nodes:
            if want.issubset(env):
                break
            v = [self.value(env, i) if i else None for i in ins]
            if op == "Conv":
                pads = at.get("pads", [0, 0, 0, 0])
                assert pads[0] == pads[2] and pads[1] == pads[3]
                y = F.conv2d(v[0], v[1], v[2] if len(v) > 2 else None, stride=at.get("strides", [1, 1]),
                             padding=pads[:2], dilation=at.get("dilations", [1, 1]), groups=at.get("group", 1))
            elif op == "Sigmoid":
                y = torch.sigmoid(v[0])
            elif op == "Mul":
                y = v[0] * v[1]
            elif op == "Add":
                y = v[0] + v[1]
            elif op == "Concat":
                y = torch.cat(v, dim=at["axis"])
            elif op == "Slice":
                y = v[0]
                starts, ends, axes = v[1], v[2], v[3]
                steps = v[4] if len(v) > 4 and v[4] is not None else np.ones_like(starts)
                for s, e, a, st in zip(starts, ends, axes, steps):
                    idx = [slice(None)] * y.dim()
                    idx[int(a)] = slice(int(s), int(min(e, y.shape[int(a)])), int(st))
                    y = y[tuple(idx)]
            elif op == "MaxPool":
                k = at["kernel_shape"]
                y = F.max_pool2d(v[0], k, stride=at.get("strides", [1, 1]), padding=at.get("pads", [0, 0])[:2],
                                 ceil_mode=bool(at.get("ceil_mode", 0)))
            elif op == "Resize":
                assert at["mode"] == b"nearest"
                scales = v[2]
                y = F.interpolate(v[0], scale_factor=(float(scales[2]), float(scales[3])), mode="nearest")
            elif op == "Reshape":
                shape = [int(s) for s in v[1]]
                shape[0] = v[0].shape[0]
                y = v[0].reshape(shape)
            elif op == "Transpose":
                y = v[0].permute(*at["perm"])
            else:
                raise NotImplementedError(op)
            env[outs[0]] = y
        if outputs:
            return {k: env[k] for k in outputs}
        return env[self.output_name]


class Detector(nn.Module):
    """YOLOX-Nano with its class convolutions resized to the garment families.

    forward returns, per stride level, (reg, obj_logit, cls_logit) in NCHW — the raw tensors
    the loss needs; the sigmoids and the flattening happen only in the exported graph.
    """

    def __init__(self, model, num_classes, class_init=None):
        super().__init__()
        self.net = OnnxNet(model)
        self.num_classes = num_classes
        self.heads = []  # (reg, obj, cls) output names per level
        by_weight = {}
        for op, ins, outs, _ in self.net.nodes:
            if op == "Conv":
                by_weight[ins[1]] = outs[0]
        for k in range(3):
            self.heads.append(tuple(by_weight[f"head.{p}_preds.{k}.weight"] for p in ("reg", "obj", "cls")))
            w = self.net.params[_pname(f"head.cls_preds.{k}.weight")].data
            b = self.net.params[_pname(f"head.cls_preds.{k}.bias")].data
            nw = torch.zeros(num_classes, *w.shape[1:])
            nb = torch.full((num_classes,), -4.6)  # prior 0.01, as YOLOX initialises fresh heads
            torch.nn.init.normal_(nw, std=0.01)
            for c, sources in enumerate(class_init or []):
                if sources:
                    nw[c] = w[sources].mean(0)
                    nb[c] = b[sources].mean()
            self.net.params[_pname(f"head.cls_preds.{k}.weight")] = nn.Parameter(nw)
            self.net.params[_pname(f"head.cls_preds.{k}.bias")] = nn.Parameter(nb)

    def freeze_until(self, tensor):
        """Stops training every convolution up to the node that produces tensor (the early backbone)."""
        for op, ins, outs, _ in self.net.nodes:
            for i in ins:
                if _pname(i) in self.net.params:
                    self.net.params[_pname(i)].requires_grad_(False)
            if tensor in outs:
                return
        raise KeyError(tensor)

    def forward(self, x):
        names = [n for h in self.heads for n in h]
        env = self.net(x, outputs=names)
        return [tuple(env[n] for n in h) for h in self.heads]

    def export(self, path):
        """Writes the COCO graph back with these weights and 5+F outputs per anchor point."""
        g = self.net.graph
        m = onnx.ModelProto()
        m.CopyFrom(self._proto)
        width = 5 + self.num_classes
        new_inits = []
        for init in m.graph.initializer:
            key = _pname(init.name)
            if key in self.net.params:
                arr = self.net.params[key].detach().cpu().numpy().astype(np.float32)
            else:
                arr = numpy_helper.to_array(init)
                if arr.dtype == np.int64 and arr.tolist() == [1, 5 + NUM_COCO, -1]:
                    arr = np.array([1, width, -1], dtype=np.int64)
            new_inits.append(numpy_helper.from_array(arr, init.name))
        del m.graph.initializer[:]
        m.graph.initializer.extend(new_inits)
        m.graph.output[0].type.tensor_type.shape.dim[2].dim_value = width
        del m.graph.value_info[:]
        assert g.output[0].name == m.graph.output[0].name
        onnx.checker.check_model(m)
        onnx.save(m, path)


def load_detector(onnx_path, num_classes, class_init=None):
    model = onnx.load(onnx_path)
    det = Detector(model, num_classes, class_init)
    det._proto = model
    return det


def decode(output, strides=(8, 16, 32), size=416):
    """Raw [N,3549,5+F] → boxes cx,cy,w,h in input pixels, as the Go side decodes it."""
    grids, ss = [], []
    for s in strides:
        n = size // s
        yv, xv = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
        grids.append(torch.stack((xv, yv), 2).reshape(-1, 2))
        ss.append(torch.full((n * n, 1), s))
    grid = torch.cat(grids).to(output)
    stride = torch.cat(ss).to(output)
    xy = (output[..., :2] + grid) * stride
    wh = torch.exp(output[..., 2:4]) * stride
    return torch.cat((xy, wh, output[..., 4:]), -1)
