"""YOLOX loss with a SimOTA-style dynamic-k assignment."""
import torch
import torch.nn.functional as F
from torchvision.ops import box_iou, generalized_box_iou


class YoloxLoss:
    def __init__(self, strides=(8, 16, 32), size=416, radius=2.5, reg_weight=5.0):
        self.radius = radius
        self.reg_weight = reg_weight
        grids, ss = [], []
        for s in strides:
            n = size // s
            yv, xv = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
            grids.append(torch.stack((xv, yv), 2).reshape(-1, 2).float())
            ss.append(torch.full((n * n,), float(s)))
        self.grid = torch.cat(grids)
        self.stride = torch.cat(ss)
        self.centre = (self.grid + 0.5) * self.stride[:, None]

    def flatten(self, outs):
        """Per-level (reg, obj, cls) NCHW → boxes x0y0x1y1 [N,A,4], obj logits [N,A], cls logits [N,A,F]."""
        regs, objs, clss = [], [], []
        for reg, obj, cls in outs:
            n = reg.shape[0]
            regs.append(reg.reshape(n, 4, -1).transpose(1, 2))
            objs.append(obj.reshape(n, -1))
            clss.append(cls.reshape(n, cls.shape[1], -1).transpose(1, 2))
        reg, obj, cls = torch.cat(regs, 1), torch.cat(objs, 1), torch.cat(clss, 1)
        xy = (reg[..., :2] + self.grid) * self.stride[:, None]
        wh = torch.exp(reg[..., 2:4].clamp(max=10)) * self.stride[:, None]
        boxes = torch.cat((xy - wh / 2, xy + wh / 2), -1)
        return boxes, obj, cls

    @torch.no_grad()
    def assign(self, boxes, obj, cls, gt):
        """Returns anchor indices, their gt indices, and IoUs with those gts."""
        g = gt[:, :4]
        c = self.centre
        inside = ((c[:, None, 0] > g[:, 0]) & (c[:, None, 0] < g[:, 2]) &
                  (c[:, None, 1] > g[:, 1]) & (c[:, None, 1] < g[:, 3]))
        gc = (g[:, :2] + g[:, 2:]) / 2
        rad = self.radius * self.stride[:, None]
        near = ((c[:, None, 0] - gc[:, 0]).abs() < rad) & ((c[:, None, 1] - gc[:, 1]).abs() < rad)
        cand = (inside | near).any(1)
        idx = cand.nonzero().squeeze(1)
        if idx.numel() == 0:
            return idx, idx, torch.zeros(0)
        iou = box_iou(g, boxes[idx])  # [G, C]
        onehot = F.one_hot(gt[:, 4].long(), cls.shape[-1]).float()
        p = (torch.sigmoid(cls[idx]) * torch.sigmoid(obj[idx])[:, None]).sqrt()  # [C, F]
        cls_cost = F.binary_cross_entropy(p[None].expand(len(g), -1, -1).clamp(1e-6, 1 - 1e-6),
                                          onehot[:, None].expand(-1, len(idx), -1), reduction="none").sum(-1)
        both = (inside & near)[idx].T
        cost = cls_cost + 3.0 * -torch.log(iou + 1e-8) + 1e5 * (~both)
        k = torch.clamp(iou.topk(min(10, idx.numel()), 1).values.sum(1).int(), min=1)
        match = torch.zeros_like(cost, dtype=torch.bool)
        for j in range(len(g)):
            kk = min(int(k[j]), idx.numel())
            match[j, cost[j].topk(kk, largest=False).indices] = True
        multi = match.sum(0) > 1
        if multi.any():
            best = cost[:, multi].argmin(0)
            match[:, multi] = False
            match[best, multi.nonzero().squeeze(1)] = True
        gi, ai = match.nonzero(as_tuple=True)
        return idx[ai], gi, iou[gi, ai]

    def __call__(self, outs, targets):
        boxes, obj, cls = self.flatten(outs)
        n = boxes.shape[0]
        obj_t = torch.zeros_like(obj)
        l_iou, l_cls, num_fg = boxes.new_zeros(()), boxes.new_zeros(()), 0
        for b in range(n):
            gt = targets[b]
            if len(gt) == 0:
                continue
            a, gi, iou = self.assign(boxes[b], obj[b], cls[b], gt)
            if a.numel() == 0:
                continue
            obj_t[b, a] = 1.0
            num_fg += a.numel()
            l_iou = l_iou + (1 - torch.diag(generalized_box_iou(boxes[b, a], gt[gi, :4]))).sum()
            t = F.one_hot(gt[gi, 4].long(), cls.shape[-1]).float() * iou[:, None].clamp(min=0.01)
            l_cls = l_cls + F.binary_cross_entropy_with_logits(cls[b, a], t, reduction="sum")
        num_fg = max(num_fg, 1)
        l_obj = F.binary_cross_entropy_with_logits(obj, obj_t, reduction="sum")
        total = (self.reg_weight * l_iou + l_obj + l_cls) / num_fg
        return total, {"iou": float(l_iou) / num_fg, "obj": float(l_obj) / num_fg, "cls": float(l_cls) / num_fg}
