"""Data sources (keras_nfnets.data.sources): image folders with corrupt or too few images are
explained before a run starts (issue 20)."""

import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO_ENV, write_jpeg


# --- corrupt images ---------------------------------------------------------------------------------
def _folder_with_bad_files(root):
    """Two classes of good JPEGs/PNGs; among them an empty file, a truncated JPEG, a text file
    named .png and a truncated PNG (bad), and a JPEG with 6 KB after its end marker (good)."""
    import tensorflow as tf

    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(6):
            write_jpeg(root / label / f"{i}.jpg", seed=i + (10 if label == "b" else 0))
    png = tf.io.encode_png(np.zeros((20, 20, 3), "uint8")).numpy()
    (root / "a" / "ok.png").write_bytes(png)
    (root / "a" / "trailing.jpg").write_bytes((root / "a" / "0.jpg").read_bytes() + b"\0" * 6000)
    bad = [root / "a" / "empty.jpg", root / "a" / "truncated.jpg", root / "b" / "notes.png", root / "b" / "cut.png"]
    bad[0].write_bytes(b"")
    bad[1].write_bytes((root / "a" / "1.jpg").read_bytes()[:300])
    bad[2].write_text("not an image")
    bad[3].write_bytes(png[: len(png) // 2])
    return sorted(str(p) for p in bad)


def test_corrupt_images_are_named_before_a_run_starts(tmp_path):
    from keras_nfnets import data
    from keras_nfnets.training import train

    bad = _folder_with_bad_files(tmp_path / "photos")
    paths = sorted(str(p) for p in (tmp_path / "photos").rglob("*.*"))
    assert sorted(data.find_corrupt_images(paths)) == bad  # and trailing.jpg, which decodes, is not
    output = tmp_path / "run"
    with pytest.raises(data.CorruptImageError) as error:
        train("NFResNet14", str(tmp_path / "photos"), output_dir=str(output), epochs=1, batch_size=4, image_size=32,
              verbose=0, tensorboard=False)
    assert sorted(error.value.files) == bad  # the train split holds all four (each class's first file is held out)
    assert "cannot be decoded" in str(error.value) and "remove or replace them" in str(error.value)
    for path in error.value.files:
        assert path in str(error.value)
    assert not output.exists()  # no run.json, no logs/: nothing half-made


def test_one_image_per_class_explains_the_hold_out_rule(tmp_path):
    from keras_nfnets import data

    for label in ("a", "b", "c"):
        (tmp_path / label).mkdir()
        write_jpeg(tmp_path / label / "only.jpg", seed=0)
    data.load_source(str(tmp_path), "test")  # every class's first file is held out
    with pytest.raises(ValueError, match=r"found 3 classes and 0 images for split 'train' \(of its 3 images, every "
                                         r"10th file of each class, from the first, is held out"):
        data.load_source(str(tmp_path), "train")


@pytest.mark.slow
def test_a_broken_jpeg_body_gets_one_message_not_libjpegs_line_before_it(tmp_path):
    """A JPEG whose header is valid and whose body is cut: `nfnets predict` says it skipped the
    file, in one line; libjpeg's own "Input file read error" no longer comes first (issue 44)."""
    good = tmp_path / "good.jpg"
    write_jpeg(good, seed=0, size=(64, 64))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(good.read_bytes()[:200] + b"\0" * 50)
    result = subprocess.run([sys.executable, "-m", "keras_nfnets.cli", "predict", str(broken), "--model", "NFResNet26",
                             "--weights", "none"], capture_output=True, text=True, timeout=300, env=REPO_ENV)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"nfnets predict: skipped {broken}: Cannot decode {str(broken)!r} as an image "
                                          "(JPEG, PNG, BMP or GIF expected; the file is empty, truncated or of another "
                                          "format)."], result.stderr
