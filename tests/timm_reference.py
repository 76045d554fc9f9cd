"""Run by the tests in a subprocess (torch/timm and TensorFlow do not share a process well):
builds timm NF models with seeded random weights, writes their checkpoints, inputs and logits,
the tensor shapes of all timm NF model names, and peer parameter counts: timm's own code
(its config helpers, its NormFreeNet) building DeepMind's layouts where timm can express them.

usage: python timm_reference.py OUT_DIR SIZE NAME [NAME ...]
"""

import dataclasses
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


# ResNet depths per stage (He et al.; DeepMind's nf_resnet.py variant table).
RESNET_DEPTHS = {14: (1, 1, 1, 1), 26: (2, 2, 2, 2), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3),
                 200: (3, 24, 36, 3), 288: (24, 24, 24, 24)}
NFNET_DEPTHS = {i: (1 * (i + 1), 2 * (i + 1), 6 * (i + 1), 3 * (i + 1)) for i in range(8)}


def peer_parameter_counts():
    """Builder name -> parameter count of timm's twin of DeepMind's architecture.

    NF-ResNets: timm's ``_nfres_cfg`` with SkipInit on (DeepMind's NF-ResNets have SkipInit and
    channels that timm's %8 rounding leaves alone). NFNet-F: timm's ``_dm_nfnet_cfg`` (DeepMind's
    layout; reference §9.2). NF-RegNet-B5: ``_nfreg_cfg`` with ch_div=1, rd_divisor=1 and SkipInit,
    the only B variant where timm's rounding then equals DeepMind's flooring (reference §9.1).
    NFNet-L / ECA-NFNet-L: timm's own models.
    """
    from timm.models import nfnet

    def count(model):
        return sum(p.numel() for p in model.parameters())

    configs = {f"NFResNet{d}": dataclasses.replace(nfnet._nfres_cfg(depths), skipinit=True)
               for d, depths in RESNET_DEPTHS.items()}
    configs.update({f"NFNetF{i}": nfnet._dm_nfnet_cfg(depths) for i, depths in NFNET_DEPTHS.items()})
    b5 = nfnet._nfreg_cfg((3, 7, 14, 14), (80, 168, 336, 704))
    configs["NFRegNetB5"] = dataclasses.replace(b5, ch_div=1, skipinit=True, attn_kwargs=dict(rd_ratio=0.5, rd_divisor=1))
    counts = {}
    with torch.device("meta"):
        for name, cfg in configs.items():
            counts[name] = count(nfnet.NormFreeNet(cfg))
        for builder, timm_name in (("NFNetL0", "nfnet_l0"), ("ECANFNetL0", "eca_nfnet_l0"),
                                   ("ECANFNetL1", "eca_nfnet_l1"), ("ECANFNetL2", "eca_nfnet_l2"),
                                   ("ECANFNetL3", "eca_nfnet_l3")):
            counts[builder] = count(timm.create_model(timm_name, pretrained=False))
    return counts


# One model of each family, whose features_only maps are written too (issue 37: pyramid outputs).
FEATURE_MODELS = ("nf_resnet50", "nf_regnet_b1", "test_nfnet", "dm_nfnet_f0")
FEATURE_INPUT = (96, 160)  # non-square, so that height and width padding are both checked


def write_features(model, name, generator, out_dir):
    """timm's ``features_only=True`` model of ``name`` with ``model``'s weights: its maps (NHWC)
    on a non-square input, and its feature_info reductions."""
    features = timm.create_model(name, pretrained=False, features_only=True).eval()
    full = model.state_dict()

    def full_key(key):  # FeatureListNet flattens the first module level: stem_conv.weight, stages_0.0....
        return key if key in full else key.replace("_", ".", 1)

    features.load_state_dict({key: full[full_key(key)] for key in features.state_dict()})
    x = torch.randn(2, 3, *FEATURE_INPUT, generator=generator)
    with torch.no_grad():
        maps = features(x)
    arrays = {f"feature{i}": m.permute(0, 2, 3, 1).numpy() for i, m in enumerate(maps)}
    np.savez(os.path.join(out_dir, f"{name}_features.npz"), x=x.permute(0, 2, 3, 1).numpy(),
             reductions=np.array(features.feature_info.reduction()), **arrays)


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
        if name in FEATURE_MODELS:
            write_features(model, name, generator, out_dir)
    shapes = {}
    for name in ALL_NAMES:
        with torch.device("meta"):
            model = timm.create_model(name, pretrained=False)
        shapes[name] = {k: list(v.shape) for k, v in model.state_dict().items()}
    with open(os.path.join(out_dir, "shapes.json"), "w") as f:
        json.dump(shapes, f)
    with open(os.path.join(out_dir, "peer_params.json"), "w") as f:
        json.dump(peer_parameter_counts(), f)


if __name__ == "__main__":
    main()
