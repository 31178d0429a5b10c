"""Write models/tagger.onnx and models/tagger.json, and check the ONNX graph against torch."""
import json

import numpy as np
import torch

from data import TYPES
from onnx_torch import OnnxGraph
from palette import PALETTE

OUTPUTS = ["embedding", "type_probs", "color_probs"]


def tagger_json():
    return {
        "input": "image", "size": 224, "embedding_dim": 256,
        "types": [{"name": t, "parent": t} for t in TYPES],
        "colors": [{"name": "color " + n, "parent": fam, "rgb": list(rgb)} for n, fam, rgb in PALETTE],
    }


def export(model, onnx_path, json_path, check_images):
    model.eval()
    dummy = torch.zeros(1, 3, 224, 224)
    torch.onnx.export(model, dummy, onnx_path, input_names=["image"], output_names=OUTPUTS,
                      opset_version=13, do_constant_folding=True,
                      dynamic_axes={"image": {0: "N"}, **{o: {0: "N"} for o in OUTPUTS}})
    with open(json_path, "w") as f:
        json.dump(tagger_json(), f, indent=1)
        f.write("\n")
    with torch.no_grad():
        want = [t.numpy() for t in model(torch.from_numpy(check_images))]
    got = OnnxGraph(onnx_path).run({"image": check_images})
    return {o: float(np.abs(got[o] - w).max()) for o, w in zip(OUTPUTS, want)}
