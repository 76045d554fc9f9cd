"""keras-hub's RetinaNet detector and DeepLabV3 segmenter on an NF encoder, trained on generated
shapes (keras_nfnets.kerashub.dense_tasks.shapes_dataset) with their own ``fit``: prints the
share of held-out objects found at IoU >= 0.5, the mean IoU of held-out masks, and the time.

usage: python tools/dense_tasks.py [--encoder NFRegNetB0|toy] [--train 800] [--epochs 30] [--size 96]
The CI test (tests/kerashub/test_dense_tasks.py) runs a short fit of the same code."""

import argparse
import time


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="toy", help='a builder or timm name, a preset directory, or "toy" '
                        "(a 4-stage NF-RegNet of widths 24-160, seconds per epoch on a CPU)")
    parser.add_argument("--train", type=int, default=800)
    parser.add_argument("--test", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import keras
    import numpy as np

    import keras_nfnets
    from keras_nfnets.kerashub import NFNetBackbone, dense_tasks

    shape = (args.size, args.size, 3)
    x, boxes, labels, masks = dense_tasks.shapes_dataset(args.train, args.size, seed=args.seed)
    x_test, boxes_test, labels_test, masks_test = dense_tasks.shapes_dataset(args.test, args.size, seed=args.seed + 1)
    x, x_test = x / 127.5 - 1.0, x_test / 127.5 - 1.0

    def encoder():
        if args.encoder != "toy":
            return args.encoder
        return NFNetBackbone(keras_nfnets.nf_regnet_config("B0", widths=(24, 48, 96, 160), stem_width=24,
                                                           depths=(1, 1, 2, 2), final_conv_channels=256),
                             image_shape=shape)

    keras.utils.set_random_seed(args.seed)
    start = time.time()
    segmenter = dense_tasks.deeplab_segmenter(encoder(), num_classes=3, image_shape=shape)
    segmenter.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = segmenter.fit(x, masks[..., None], batch_size=args.batch_size, epochs=args.epochs, verbose=0)
    predicted = np.argmax(segmenter.predict(x_test, verbose=0), -1)
    miou = dense_tasks.mean_iou(predicted, masks_test, 3)
    print(f"DeepLabV3 on {args.encoder}: loss {history.history['loss'][0]:.3f} -> {history.history['loss'][-1]:.3f}, "
          f"held-out mean IoU {miou:.3f} (background, square, disc) in {time.time() - start:.0f} s", flush=True)

    keras.utils.set_random_seed(args.seed)
    start = time.time()
    detector = dense_tasks.retinanet_detector(encoder(), num_classes=2, image_shape=shape)
    detector.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = detector.fit(x, {"boxes": boxes, "labels": labels}, batch_size=args.batch_size, epochs=args.epochs,
                           verbose=0)
    recall = dense_tasks.detection_recall(dense_tasks.detect(detector, x_test), boxes_test, labels_test)
    print(f"RetinaNet on {args.encoder}: loss {history.history['loss'][0]:.3f} -> {history.history['loss'][-1]:.3f}, "
          f"held-out objects found at IoU >= 0.5: {recall:.3f} in {time.time() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
