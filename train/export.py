"""Write models/tagger.onnx, models/embedder.onnx and models/tagger.json, and check them against torch."""
import json
import os

import numpy as np
import torch

from data import TYPES
from onnx_torch import OnnxGraph
from palette import PALETTE
from tagger import accessory_labels

OUTPUTS = ["embedding", "type_probs", "color_probs"]


def tagger_json():
    return {
        "input": "image", "size": 224, "embedding_dim": 256,
        "types": [{"name": t, "parent": t} for t in TYPES]
        + [{"name": n, "parent": p} for n, p in accessory_labels()],
        "colors": [{"name": "color " + n, "parent": fam, "rgb": list(rgb)} for n, fam, rgb in PALETTE],
    }


class Embedder(torch.nn.Module):
    def __init__(self, tagger):
        super().__init__()
        self.tagger = tagger

    def forward(self, image):
        return self.tagger.embedding(image)


def export(model, onnx_path, json_path, check_images):
    """Writes the tagger (every output) to onnx_path, the embedding alone to embedder.onnx beside
    it, and tagger.json; returns each output's max abs difference from torch."""
    model.eval()
    dummy = torch.zeros(1, 3, 224, 224)
    embedder_path = os.path.join(os.path.dirname(onnx_path), "embedder.onnx")
    for module, path, outputs in ((model, onnx_path, OUTPUTS), (Embedder(model), embedder_path, OUTPUTS[:1])):
        torch.onnx.export(module, dummy, path, input_names=["image"], output_names=outputs,
                          opset_version=13, do_constant_folding=True,
                          dynamic_axes={"image": {0: "N"}, **{o: {0: "N"} for o in outputs}})
    with open(json_path, "w") as f:
        json.dump(tagger_json(), f, indent=1)
        f.write("\n")
    with torch.no_grad():
        want = [t.numpy() for t in model(torch.from_numpy(check_images))]
    got = OnnxGraph(onnx_path).run({"image": check_images})
    diffs = {o: float(np.abs(got[o] - w).max()) for o, w in zip(OUTPUTS, want)}
    got = OnnxGraph(embedder_path).run({"image": check_images})
    diffs["embedder"] = float(np.abs(got["embedding"] - want[0]).max())
    return diffs
