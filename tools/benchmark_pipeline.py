"""Input pipeline throughput: ours (tf.data) against timm's DataLoader on the same JPEGs.

usage: python tools/benchmark_pipeline.py [--folder DIR] [--images 256] [--size 192] [--batch 32]
                                          [--threads 1 2] [--batches 40] [--magnitude 5] [--layers 4]
                                          [--cpu native|avx2] [--onednn default|on|off]

Without --folder it writes ImageNet-sized JPEGs (sides 333–500 px, quality 90, 4 classes) to a
temporary folder. Each configuration runs in its own process with the same number of threads
(ours: a private tf.data thread pool of that size; timm: that many DataLoader workers, torch
at one thread each), after a warm-up of three epochs, and prints images/s, images/s per thread and the
ratio to timm for: decode + crop + flip; + RandAugment (`rand-mM-nN`); + CutMix/MixUp (timm's
Mixup on each batch: the full recipe). Ours runs seeded (deterministic) and unseeded. ``--cpu
avx2`` emulates a CPU without AVX-512 for both (see tools/benchmark_train.py).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from timing import add_cpu_arguments, describe_cpu, enter_cpu_kind  # noqa: E402

STAGES = ("decode + crop + flip", "+ RandAugment", "+ CutMix/MixUp")


def make_folder(root, count, seed=0):
    """``count`` JPEGs of natural-looking colour fields, sides 333–500 px, quality 90."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(count):
        folder = os.path.join(root, f"class{i % 4}")
        os.makedirs(folder, exist_ok=True)
        height, width = (int(v) for v in rng.integers(333, 501, 2))
        coarse = Image.fromarray(rng.integers(0, 255, (6, 8, 3)).astype("uint8"))
        picture = np.asarray(coarse.resize((width, height), Image.BICUBIC)).astype("float32")
        picture = np.clip(picture + rng.normal(0, 10, picture.shape), 0, 255).astype("uint8")
        Image.fromarray(picture).save(os.path.join(folder, f"{i:04d}.jpg"), quality=90)
    return root


def ours(folder, stage, threads, seeded, args):
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(threads))
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", str(threads))
    from keras_nfnets import data

    source = data.load_source(folder, "train")
    augmentation = None
    if stage >= 1:
        augmentation = data.Augmentation(mixup_alpha=0.2 if stage >= 2 else 0.0, cutmix_alpha=1.0 if stage >= 2 else 0.0,
                                         randaugment=(args.layers, args.magnitude))
    epochs = 1000
    dataset = data.train_dataset(source, args.size, args.batch, epochs=epochs, seed=0 if seeded else None,
                                 augmentation=augmentation, threads=threads)
    iterator = iter(dataset)
    for _ in range(max(12, 3 * (source.num_examples // args.batch))):  # warm-up: three epochs (XLA compiles)
        next(iterator)
    start = time.perf_counter()
    for _ in range(args.batches):
        next(iterator)
    return args.batches * args.batch / (time.perf_counter() - start)


def timm(folder, stage, threads, args):
    import torch
    from timm.data import ImageDataset, Mixup, create_loader

    torch.set_num_threads(1)
    dataset = ImageDataset(folder)
    loader = create_loader(dataset, input_size=(3, args.size, args.size), batch_size=args.batch, is_training=True,
                           auto_augment=f"rand-m{args.magnitude:g}-n{args.layers}" if stage >= 1 else None,
                           color_jitter=0.0, interpolation="bicubic", num_workers=threads, use_prefetcher=False,
                           device=torch.device("cpu"), persistent_workers=True)
    mix = Mixup(mixup_alpha=0.2, cutmix_alpha=1.0, label_smoothing=0.1, num_classes=4) if stage >= 2 else None

    def batches():
        while True:
            for images, labels in loader:
                if mix is not None:
                    images, labels = mix(images, labels)
                yield images

    iterator = batches()
    for _ in range(max(12, 3 * (len(dataset) // args.batch))):  # warm-up: three epochs, as ours
        next(iterator)
    start = time.perf_counter()
    for _ in range(args.batches):
        next(iterator)
    return args.batches * args.batch / (time.perf_counter() - start)


def measure(kind, folder, stage, threads, seeded, args):
    """One configuration in a fresh process: its images/s."""
    command = [sys.executable, os.path.abspath(__file__), "--folder", folder, "--one", json.dumps(
        dict(kind=kind, stage=stage, threads=threads, seeded=seeded)), "--size", str(args.size), "--batch",
        str(args.batch), "--batches", str(args.batches), "--magnitude", str(args.magnitude), "--layers",
        str(args.layers)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"{kind} stage {stage} with {threads} threads failed:\n{result.stderr[-3000:]}")
    return float(result.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", default=None, help="a folder of class sub-folders of JPEGs (default: made here)")
    parser.add_argument("--images", type=int, default=256, help="JPEGs to make without --folder (default 256)")
    parser.add_argument("--size", type=int, default=192, help="crop size (default 192, NFNet-F0's)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batches", type=int, default=60, help="timed batches after three warm-up epochs")
    parser.add_argument("--magnitude", type=float, default=5, help="RandAugment magnitude (F0: 5)")
    parser.add_argument("--layers", type=int, default=4, help="RandAugment layers (NFNets: 4)")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    add_cpu_arguments(parser)
    args = parser.parse_args(argv)
    if not args.one:
        enter_cpu_kind(args)

    if args.one:
        one = json.loads(args.one)
        if one["kind"] == "ours":
            print(ours(args.folder, one["stage"], one["threads"], one["seeded"], args))
        else:
            print(timm(args.folder, one["stage"], one["threads"], args))
        return 0

    folder = args.folder or make_folder(tempfile.mkdtemp(prefix="nfnets-jpegs-"), args.images)
    print(f"{folder}: {sum(len(f) for _, _, f in os.walk(folder))} JPEGs, {args.size} px crops, batch {args.batch}, "
          f"RandAugment {args.layers} layers magnitude {args.magnitude:g}\nCPU: {describe_cpu()}", flush=True)
    rows = {}
    for threads in args.threads:
        for stage, name in enumerate(STAGES):
            peer = measure("timm", folder, stage, threads, False, args)
            for seeded in (True, False):
                rate = measure("ours", folder, stage, threads, seeded, args)
                rows[(threads, stage, seeded)] = (rate, peer)
                print(f"{threads} thread(s) | {name:<22} | {'seeded  ' if seeded else 'unseeded'} | ours "
                      f"{rate:7.1f} img/s ({rate / threads:6.1f} per thread) | timm {peer:7.1f} img/s "
                      f"({peer / threads:6.1f} per thread) | {rate / peer:5.2f}x timm", flush=True)
    print("\ntargets: full recipe >= 1.5x timm; decode + crop + flip >= 1.5x timm; seeded >= 0.9x unseeded; "
          "2 threads >= 1.7x one thread")
    for (threads, stage, seeded), (rate, peer) in sorted(rows.items()):
        if seeded:
            unseeded = rows[(threads, stage, False)][0]
            line = f"{threads} thread(s) {STAGES[stage]:<22}: {rate / peer:5.2f}x timm, seeded/unseeded {rate / unseeded:4.2f}"
            single = rows.get((1, stage, True))
            if threads > 1 and single:
                line += f", {threads} threads / 1 thread {rate / single[0]:4.2f}"
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
