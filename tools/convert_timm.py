"""Convert a timm NF checkpoint into a Keras ``.weights.h5`` file (for hosting converted weights).

usage: python tools/convert_timm.py TIMM_NAME CHECKPOINT OUT.weights.h5 [--no-top]

CHECKPOINT is a .safetensors or .pth/.bin file in timm's naming, or "hub" for the tag's Hugging
Face checkpoint. The file records its architecture; load it with the builder whose ImageNet
weights it holds (``keras_nfnets.NFRegNetB1(weights=OUT)`` for ``nf_regnet_b1``; ``nfnets predict
--model NFRegNetB1 --weights OUT``), or with ``keras_nfnets.from_timm(TIMM_NAME,
pretrained=False)`` followed by ``model.load_weights(OUT)``.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="timm model name or tag, e.g. nf_regnet_b1 or dm_nfnet_f0.dm_in1k")
    parser.add_argument("checkpoint", help='checkpoint file, or "hub"')
    parser.add_argument("output", help="output path ending in .weights.h5")
    parser.add_argument("--no-top", action="store_true", help="drop the classifier (include_top=False)")
    args = parser.parse_args(argv)
    if not args.output.endswith(".weights.h5"):
        parser.error("the output path must end in .weights.h5")

    import keras_nfnets

    model = keras_nfnets.from_timm(
        args.name, checkpoint=None if args.checkpoint == "hub" else args.checkpoint, include_top=not args.no_top
    )
    model.save_weights(args.output)  # records the architecture and the checkpoint tag
    print(f"{args.name}: {keras_nfnets.count_params(model):,} parameters -> {args.output}")


if __name__ == "__main__":
    main()
