"""The tagger network: one forward pass from a preprocessed image to
embedding [N,256], type_probs [N,T] and color_probs [N,C].

Backbone: MobileNetV2 (mobilenet.py). Type: linear softmax head on the pooled
1280-d features. Colour: a small garment-mask head reads the stride-8 and
stride-16 feature maps; the input image, pooled to 56x56 and converted to CIE
Lab, normalised for exposure and the dullness of photographed cloth, is softly
assigned to the palette and the assignment is averaged with the squared mask
times a centre prior as weights, so background and skin do not vote. Embedding: a linear
projection of the pooled features (type/shape) concatenated with the square
root of color_probs (garment colour), each part unit-length and weighted,
then L2-normalised.
"""
import copy

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from mobilenet import MobileNetV2, relu6

EMBED_DIM = 256
COLOUR_GRID = 56
# Lab distance: lightness differences count less than hue/chroma ones because
# shading moves L across a single garment far more than it moves a and b.
L_WEIGHT = 0.4
ASSIGN_SIGMA = 9.0
# Photographed cloth is duller than its colour name: navy shows as slate, a "green"
# shirt as grey-green. Pixel chroma is amplified before matching so the hue decides.
CHROMA_GAIN = 1.75
# Exposure: lightness is read relative to the image's white point (its 99th
# percentile, at least L=30), so dim indoor photos and bright studio shots meet,
# then a contrast curve (gamma) undoes the lift that flare gives dark cloth.
WHITE_TOP = 32  # 1% of the 56x56 grid
WHITE_MIN_L = 30.0
L_GAMMA = 1.4
# The product is framed in the middle: a Gaussian centre prior (sigma = 0.2 of the
# side) keeps a model's trousers or a neighbouring item from outvoting it.
CENTRE_SIGMA = 0.2
# These were chosen on 261 hand-labelled training photos (train/colour_labels.csv),
# never on catalog-val.

# Backbone cut points: blocks[:6] ends at stride 8 (32 ch), [:13] at stride 16 (96 ch).
CUT8, CUT16 = 6, 13

# What shops sell beside garments, which none of our training photos show: named by the unchanged
# ImageNet classifier, run on its own copy of the stride-32 blocks (fine-tuning forgets them:
# on the fine-tuned features it gives catalogue watches 0.20 of its mass, on its own 0.61).
# (ImageNet class, label, parent); labels named twice sum their classes. Picked by what the
# classes mean, nothing fitted.
ACCESSORIES = [
    ("purse", "handbag", "bag"), ("backpack", "backpack", "bag"), ("mailbag", "bag", "bag"),
    ("wallet", "wallet", "bag"), ("sunglasses", "sunglasses", "eyewear"), ("sunglass", "eyewear", "eyewear"),
    ("digital watch", "watch", "watch"), ("analog clock", "watch", "watch"), ("stopwatch", "watch", "watch"),
    ("buckle", "belt", "belt"),
]


def accessory_labels():
    """[(label, parent)] in type_probs column order after the garment types."""
    out = []
    for _, name, parent in ACCESSORIES:
        if (name, parent) not in out:
            out.append((name, parent))
    return out


def accessory_map(imagenet_labels):
    """[1001, len(accessory_labels())] 0/1 matrix: ImageNet probabilities -> accessory labels."""
    labels = accessory_labels()
    m = torch.zeros(len(imagenet_labels), len(labels))
    for cls, name, parent in ACCESSORIES:
        m[imagenet_labels.index(cls), labels.index((name, parent))] = 1.0
    return m


def srgb_to_lab(rgb01):
    """[N,3,H,W] sRGB in [0,1] -> CIE Lab (D65), differentiable and ONNX-exportable."""
    c = torch.clamp(rgb01, 0.0, 1.0)
    lin = torch.where(c <= 0.04045, c / 12.92, torch.pow((torch.clamp(c, min=0.04045) + 0.055) / 1.055, 2.4))
    m = lin.new_tensor([[0.4124564 / 0.95047, 0.3575761 / 0.95047, 0.1804375 / 0.95047],
                        [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339 / 1.08883, 0.1191920 / 1.08883, 0.9503041 / 1.08883]])
    xyz = F.conv2d(lin, m[:, :, None, None])
    eps = 216.0 / 24389.0
    f = torch.where(xyz > eps, torch.pow(torch.clamp(xyz, min=eps), 1.0 / 3.0), (24389.0 / 27.0 * xyz + 16.0) / 116.0)
    fx, fy, fz = f[:, 0:1], f[:, 1:2], f[:, 2:3]
    return torch.cat([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=1)


def centre_prior(n=COLOUR_GRID, sigma=CENTRE_SIGMA):
    c = (torch.arange(n, dtype=torch.float32) + 0.5) / n - 0.5
    r2 = c[:, None] ** 2 + c[None, :] ** 2
    return torch.exp(-r2 / (2 * sigma ** 2)).reshape(1, 1, n, n)


def palette_lab(rgbs):
    t = torch.tensor(np.asarray(rgbs, np.float32) / 255.0).reshape(1, -1, 1, 3).permute(0, 3, 1, 2)
    return srgb_to_lab(t)[0, :, :, 0].t().contiguous()  # [K,3]


class MaskHead(nn.Module):
    """Garment probability at stride 8 from the stride-8 and stride-16 feature maps."""

    def __init__(self, c8=32, c16=96, width=32):
        super().__init__()
        self.lat8 = nn.Conv2d(c8, width, 1)
        self.lat16 = nn.Conv2d(c16, width, 1)
        self.dw = nn.Conv2d(width, width, 3, padding=1, groups=width)
        self.pw = nn.Conv2d(width, width, 1)
        self.out = nn.Conv2d(width, 1, 1)

    def forward(self, f8, f16):
        up = F.interpolate(self.lat16(f16), size=f8.shape[-2:], mode="bilinear", align_corners=False)
        h = torch.relu(self.lat8(f8) + up)
        h = torch.relu(self.pw(self.dw(h)))
        return self.out(h)  # logits [N,1,28,28]


def grid_lab(image):
    """The model input [N,3,224,224] pooled to 4x4 patches, in CIE Lab: [N,3,56,56]."""
    return srgb_to_lab(F.adaptive_avg_pool2d(image, COLOUR_GRID) * 0.5 + 0.5)


def colour_assign(lab, lab_palette, gain=CHROMA_GAIN, l_weight=L_WEIGHT, gamma=L_GAMMA):
    """Soft palette assignment [N,K,56,56] of a grid_lab image after exposure and chroma
    normalisation (see the constants; calibrate_colour.py varies them)."""
    light = lab[:, 0:1]
    white = torch.topk(light.flatten(1), WHITE_TOP, dim=1).values[:, -1:].clamp(min=WHITE_MIN_L)
    light = 100.0 * torch.pow(torch.clamp(light / white[:, :, None, None], 0.0, 1.2), gamma)
    lab = torch.cat([light, lab[:, 1:] * gain], dim=1)
    w = lab.new_tensor([l_weight, 1.0, 1.0]).reshape(1, 3, 1, 1)
    diff = (lab.unsqueeze(1) - lab_palette.reshape(1, -1, 3, 1, 1)) * w.unsqueeze(1)
    d2 = (diff * diff).sum(dim=2)
    return torch.softmax(-d2 / (2.0 * ASSIGN_SIGMA ** 2), dim=1)


def palette_mix(assign, mask, centre):
    """Mask- and centre-weighted mean of the assignments: [N,K], summing to 1."""
    # Squared: the blurry edge of the upsampled mask (background, skin) votes less.
    mask = mask * mask * centre
    return (assign * mask).sum(dim=(2, 3)) / (mask.sum(dim=(2, 3)) + 1e-6)


class Tagger(nn.Module):
    def __init__(self, n_types, palette_rgb, type_dim=None, colour_weight=0.6):
        super().__init__()
        self.backbone = MobileNetV2()
        k = len(palette_rgb)
        self.type_dim = type_dim or EMBED_DIM - k
        if self.type_dim + k != EMBED_DIM:
            raise ValueError("type_dim + palette size must be %d" % EMBED_DIM)
        self.type_head = nn.Linear(1280, n_types)
        self.proj = nn.Linear(1280, self.type_dim)
        self.mask_head = MaskHead()
        self.register_buffer("lab_palette", palette_lab(palette_rgb))
        self.register_buffer("centre", centre_prior())
        # Learned from our hand colour labels (calibrate_colour.fit_palette_weights): how much more
        # or less often a garment is named by each palette colour than its pixels alone suggest.
        self.register_buffer("palette_log_weight", torch.zeros(k))
        self.colour_weight = colour_weight
        self.imagenet_tail = None

    def keep_imagenet_tail(self, imagenet_labels):
        """Copy the backbone's stride-32 blocks, head and classifier as they are now (call it
        before fine-tuning) to name ACCESSORIES beside the garment types."""
        b = self.backbone
        self.imagenet_tail = nn.ModuleDict({"blocks": copy.deepcopy(b.blocks[CUT16:]),
                                            "head": copy.deepcopy(b.head),
                                            "classifier": copy.deepcopy(b.classifier)})
        for p in self.imagenet_tail.parameters():
            p.requires_grad_(False)
        self.register_buffer("accessory_map", accessory_map(imagenet_labels))

    def type_probs(self, feat, f16):
        """Garment types, then (with an ImageNet tail) accessories: the accessories' ImageNet
        mass, the garment types sharing what is left."""
        probs = torch.softmax(self.type_head(feat), dim=1)
        if self.imagenet_tail is None:
            return probs
        t = self.imagenet_tail
        x = f16
        for blk in t["blocks"]:
            x = blk(x)
        x = relu6(t["head"](x)).mean(dim=(2, 3))
        acc = torch.softmax(t["classifier"](x), dim=1) @ self.accessory_map
        return torch.cat([probs * (1.0 - acc.sum(dim=1, keepdim=True)), acc], dim=1)

    def stride8(self, image):
        b = self.backbone
        return b.run_blocks(b.stem_forward(image), 0, CUT8)

    def pooled(self, f16):
        b = self.backbone
        return b.top(b.run_blocks(f16, CUT16, len(b.blocks))).mean(dim=(2, 3))

    def garment_mask(self, f8, f16):
        logits = self.mask_head(f8, f16)
        return torch.sigmoid(F.interpolate(logits, size=COLOUR_GRID, mode="bilinear", align_corners=False))

    def colour_probs(self, image, mask):
        probs = palette_mix(colour_assign(grid_lab(image), self.lab_palette), mask, self.centre)
        probs = probs * torch.exp(self.palette_log_weight)
        return probs / probs.sum(dim=1, keepdim=True).clamp(min=1e-12)

    def embed(self, feat, color_probs):
        t = F.normalize(self.proj(feat), dim=1) * (1.0 - self.colour_weight ** 2) ** 0.5
        c = torch.sqrt(color_probs + 1e-8)
        c = F.normalize(c, dim=1) * self.colour_weight
        return F.normalize(torch.cat([t, c], dim=1), dim=1)

    def shared(self, image):
        """What the embedding and the tags share: the stride-16 map, pooled features, colour."""
        f8 = self.stride8(image)
        f16 = self.backbone.run_blocks(f8, CUT8, CUT16)
        return f16, self.pooled(f16), self.colour_probs(image, self.garment_mask(f8, f16))

    def embedding(self, image):
        """The embedding alone (models/embedder.onnx): without the ImageNet tail, which only the
        tags need, and which ONNX Runtime would run whatever output is fetched."""
        _, feat, color_probs = self.shared(image)
        return self.embed(feat, color_probs)

    def forward(self, image):
        f16, feat, color_probs = self.shared(image)
        return self.embed(feat, color_probs), self.type_probs(feat, f16), color_probs
