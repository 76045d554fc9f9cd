"""Run by the tests in a subprocess (torch/timm and TensorFlow do not share a process well):
builds timm NF models with seeded random weights, writes their checkpoints, inputs and logits,
and the tensor shapes of all timm NF model names.

usage: python timm_reference.py OUT_DIR SIZE NAME [NAME ...]
"""

import json
import os
import sys

import numpy as np
import timm
import torch
from safetensors.torch import save_file

ALL_NAMES = [
    *(f"dm_nfnet_f{i}" for i in range(7)), *(f"nfnet_f{i}" for i in range(8)), "nfnet_l0",
    *(f"eca_nfnet_l{i}" for i in range(4)), *(f"nf_regnet_b{i}" for i in range(6)),
    *(f"nf_{kind}resnet{d}" for kind in ("", "se", "eca") for d in (26, 50, 101)), "test_nfnet",
]


def randomise(model, generator):
    """Move gains, biases and SkipInit gains away from their init values."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(".gain") or name.endswith("skipinit_gain"):
                param.copy_(torch.rand(param.shape, generator=generator) * 0.8 + 0.4)
            elif name.endswith(".bias"):
                param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
            elif name == "head.fc.weight":
                param.copy_(torch.randn(param.shape, generator=generator) * 0.05)


def main():
    out_dir, size, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    torch.set_num_threads(2)
    for index, name in enumerate(names):
        generator = torch.Generator().manual_seed(index)
        torch.manual_seed(index)
        model = timm.create_model(name, pretrained=False).eval()
        randomise(model, generator)
        x = torch.randn(2, 3, size, size, generator=generator)
        with torch.no_grad():
            logits = model(x).numpy()
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(out_dir, f"{name}.safetensors"))
        if name == "test_nfnet":  # one PyTorch-format file, for the .pth loading path
            torch.save(model.state_dict(), os.path.join(out_dir, f"{name}.pth"))
        np.savez(os.path.join(out_dir, f"{name}.npz"), x=x.permute(0, 2, 3, 1).numpy(), logits=logits)
    shapes = {}
    for name in ALL_NAMES:
        with torch.device("meta"):
            model = timm.create_model(name, pretrained=False)
        shapes[name] = {k: list(v.shape) for k, v in model.state_dict().items()}
    with open(os.path.join(out_dir, "shapes.json"), "w") as f:
        json.dump(shapes, f)


if __name__ == "__main__":
    main()
