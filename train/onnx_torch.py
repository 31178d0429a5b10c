"""Run an ONNX graph with torch ops (no onnxruntime for Debian's Python).

Covers the operators of the shared segmentation model and of our exported
tagger; an unknown operator raises instead of guessing.
"""
import numpy as np
import onnx
from onnx import numpy_helper
import torch
import torch.nn.functional as F


def _attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _pads4(p):
    # ONNX (top, left, bottom, right) -> F.pad (left, right, top, bottom)
    return (p[1], p[3], p[0], p[2])


def _ints(t):
    return [int(v) for v in t.reshape(-1).tolist()]


def _conv(x, w, b=None, pads=(0, 0, 0, 0), strides=(1, 1), dilations=(1, 1), group=1, **_):
    if pads[0] == pads[2] and pads[1] == pads[3]:
        return F.conv2d(x, w, b, strides, (pads[0], pads[1]), dilations, group)
    return F.conv2d(F.pad(x, _pads4(pads)), w, b, strides, 0, dilations, group)


def _resize(x, roi=None, scales=None, sizes=None, mode=b"nearest",
            coordinate_transformation_mode=b"half_pixel", **_):
    mode = mode.decode()
    ctm = coordinate_transformation_mode.decode()
    if sizes is not None and sizes.numel() > 0:
        size = _ints(sizes)[2:]
        kw = {"size": size}
    else:
        kw = {"scale_factor": [float(s) for s in scales.reshape(-1).tolist()[2:]]}
    if mode == "nearest":
        return F.interpolate(x, mode="nearest", **kw)
    if mode != "linear":
        raise NotImplementedError("Resize mode " + mode)
    return F.interpolate(x, mode="bilinear", align_corners=(ctm == "align_corners"), **kw)


def _slice(x, starts, ends, axes=None, steps=None):
    starts, ends = _ints(starts), _ints(ends)
    axes = _ints(axes) if axes is not None else list(range(len(starts)))
    steps = _ints(steps) if steps is not None else [1] * len(starts)
    for s, e, a, st in zip(starts, ends, axes, steps):
        a = a % x.dim()
        n = x.shape[a]
        s = s + n if s < 0 else s
        e = e + n if e < 0 else e
        if st > 0:
            s, e = min(max(s, 0), n), min(max(e, 0), n)
        else:
            s, e = min(max(s, -1), n - 1), min(max(e, -1), n - 1)
        x = torch.index_select(x, a, torch.arange(s, e, st, dtype=torch.long))
    return x


def _reduce(fn):
    def op(x, axes_in=None, axes=None, keepdims=1, **_):
        ax = axes if axes is not None else (_ints(axes_in) if axes_in is not None else list(range(x.dim())))
        return fn(x, dim=tuple(ax), keepdim=bool(keepdims))
    return op


class OnnxGraph:
    def __init__(self, path):
        self.model = onnx.load(path)
        g = self.model.graph
        self.consts = {i.name: torch.from_numpy(np.array(numpy_helper.to_array(i))) for i in g.initializer}
        self.inputs = [i.name for i in g.input if i.name not in self.consts]
        self.outputs = [o.name for o in g.output]

    @torch.no_grad()
    def run(self, feeds):
        env = dict(self.consts)
        env.update({k: torch.as_tensor(v) for k, v in feeds.items()})
        for node in self.model.graph.node:
            args = [env[n] if n else None for n in node.input]
            outs = self._op(node.op_type, args, _attrs(node))
            if not isinstance(outs, (list, tuple)):
                outs = [outs]
            for name, val in zip(node.output, outs):
                env[name] = val
        return {o: env[o].numpy() for o in self.outputs}

    def _op(self, op, a, at):
        if op == "Conv":
            return _conv(*a, **at)
        if op == "Clip":
            lo = a[1] if len(a) > 1 and a[1] is not None else at.get("min")
            hi = a[2] if len(a) > 2 and a[2] is not None else at.get("max")
            return torch.clamp(a[0], None if lo is None else float(lo), None if hi is None else float(hi))
        simple = {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div, "Pow": torch.pow,
                  "MatMul": torch.matmul, "Max": torch.maximum, "Min": torch.minimum}
        if op in simple:
            return simple[op](a[0], a[1])
        unary = {"Relu": torch.relu, "Sigmoid": torch.sigmoid, "Exp": torch.exp, "Sqrt": torch.sqrt,
                 "Neg": torch.neg, "Abs": torch.abs, "Log": torch.log, "Identity": lambda t: t,
                 "Reciprocal": torch.reciprocal, "Floor": torch.floor, "Tanh": torch.tanh}
        if op in unary:
            return unary[op](a[0])
        if op == "HardSigmoid":
            return torch.clamp(a[0] * at.get("alpha", 0.2) + at.get("beta", 0.5), 0, 1)
        if op == "GlobalAveragePool":
            return a[0].mean(dim=(2, 3), keepdim=True)
        if op == "MaxPool":
            p = at.get("pads", [0, 0, 0, 0])
            x = a[0] if not any(p) else F.pad(a[0], _pads4(p), value=float("-inf"))
            return F.max_pool2d(x, at["kernel_shape"], at.get("strides", 1), ceil_mode=bool(at.get("ceil_mode", 0)))
        if op == "AveragePool":
            p = at.get("pads", [0, 0, 0, 0])
            x = a[0] if not any(p) else F.pad(a[0], _pads4(p))
            return F.avg_pool2d(x, at["kernel_shape"], at.get("strides", 1))
        if op == "Flatten":
            ax = at.get("axis", 1)
            return a[0].reshape(int(np.prod(a[0].shape[:ax])), -1)
        if op == "Gemm":
            x, w = a[0], a[1]
            if at.get("transA", 0):
                x = x.t()
            if at.get("transB", 0):
                w = w.t()
            y = at.get("alpha", 1.0) * (x @ w)
            return y + at.get("beta", 1.0) * a[2] if len(a) > 2 and a[2] is not None else y
        if op == "Reshape":
            shape = _ints(a[1])
            shape = [a[0].shape[i] if s == 0 else s for i, s in enumerate(shape)]
            return a[0].reshape(shape)
        if op == "Softmax":
            return torch.softmax(a[0], at.get("axis", -1))
        if op == "ReduceMean":
            return _reduce(torch.mean)(a[0], a[1] if len(a) > 1 else None, **at)
        if op == "ReduceSum":
            return _reduce(torch.sum)(a[0], a[1] if len(a) > 1 else None, **at)
        if op == "ReduceMax":
            return _reduce(torch.amax)(a[0], a[1] if len(a) > 1 else None, **at)
        if op == "ReduceL2":
            return _reduce(lambda t, dim, keepdim: torch.sqrt((t * t).sum(dim=dim, keepdim=keepdim)))(
                a[0], a[1] if len(a) > 1 else None, **at)
        if op == "Resize":
            return _resize(a[0], *(a[1:] + [None] * (4 - len(a)))[:3], **at)
        if op == "Shape":
            return torch.tensor(a[0].shape, dtype=torch.int64)
        if op == "Slice":
            return _slice(*a)
        if op == "Concat":
            return torch.cat([t for t in a if t is not None], dim=at["axis"])
        if op == "Constant":
            return torch.from_numpy(np.array(numpy_helper.to_array(at["value"])))
        if op == "Transpose":
            return a[0].permute(*at["perm"])
        if op == "Unsqueeze":
            ax = at.get("axes") or _ints(a[1])
            x = a[0]
            for d in sorted(ax):
                x = x.unsqueeze(d)
            return x
        if op == "Squeeze":
            ax = at.get("axes") or (_ints(a[1]) if len(a) > 1 and a[1] is not None else None)
            return a[0].squeeze() if ax is None else a[0].squeeze(tuple(ax)) if len(ax) > 1 else a[0].squeeze(ax[0])
        if op == "Gather":
            return torch.index_select(a[0], at.get("axis", 0), a[1].reshape(-1).long()).reshape(
                a[0].shape[:at.get("axis", 0)] + a[1].shape + a[0].shape[at.get("axis", 0) + 1:])
        if op == "Cast":
            return a[0].to({1: torch.float32, 7: torch.int64, 6: torch.int32, 9: torch.bool}[at["to"]])
        if op == "Pad":
            p = _ints(a[1])
            n = len(p) // 2
            # ONNX: begins for every axis then ends; F.pad wants last axis first.
            fp = []
            for d in reversed(range(n)):
                fp += [p[d], p[d + n]]
            val = float(a[2]) if len(a) > 2 and a[2] is not None else 0.0
            return F.pad(a[0], fp, mode=at.get("mode", b"constant").decode().replace("edge", "replicate"), value=val)
        if op == "Where":
            return torch.where(a[0], a[1], a[2])
        if op == "Greater":
            return a[0] > a[1]
        if op == "LessOrEqual":
            return a[0] <= a[1]
        if op == "GreaterOrEqual":
            return a[0] >= a[1]
        if op == "Less":
            return a[0] < a[1]
        if op == "Equal":
            return a[0] == a[1]
        if op == "Expand":
            return a[0].expand(*_ints(a[1]))
        if op == "ConstantOfShape":
            v = numpy_helper.to_array(at["value"]) if "value" in at else np.zeros(1, np.float32)
            return torch.full(_ints(a[0]), float(v.reshape(-1)[0]))
        if op == "TopK":
            k = _ints(a[1])[0]
            r = torch.topk(a[0], k, dim=at.get("axis", -1), largest=bool(at.get("largest", 1)),
                           sorted=bool(at.get("sorted", 1)))
            return [r.values, r.indices]
        raise NotImplementedError("ONNX op " + op)
