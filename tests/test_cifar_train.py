"""CIFAR-10 end to end on the real images (official pixels, from ../shared/data's lossless pack)."""

import csv
import json
import re
import subprocess
import sys

import numpy as np
import pytest

from nin.data.registry import dataset_info
from test_inspect import coloured_share


@pytest.mark.long
def test_cifar10_gcn_zca_augmented_training_beats_chance(cifar10_dir, tmp_path):
    out, cache = tmp_path / "run", tmp_path / "cache"
    # The epoch runs on 24 x 24 crops of the whitened images (--small-crop-epochs, as the CIFAR recipes' first
    # epochs do): 1.9 times the images/s of full size, and val/test are still evaluated at 32 x 32.
    result = subprocess.run(
        [sys.executable, "-m", "nin", "train", "--dataset", "cifar10", "--preset", "nin-cifar10",
         "--data-dir", str(cifar10_dir), "--offline", "--val-split", "paper", "--augment",
         "--train-subset", "10240", "--epochs", "1", "--small-crop-epochs", "1", "--cache-dir", str(cache),
         "--out", str(out), "--no-progress"],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    val_accuracy = float(rows[-1]["val_accuracy"])
    # This seed reaches 19.5-20.7% on the machine kinds measured (bf16 and fp32); chance is 10%, and 10,000
    # validation images put its noise near 0.3 points, so 17% leaves room for the kinds and still fails a run
    # that learnt half as much.
    assert val_accuracy > 17.0, rows
    data = json.loads((out / "data.json").read_text())
    assert data["val_split"] == "paper" and data["preprocess"]["method"] == "gcn-zca"
    card = json.loads((out / "card.json").read_text())
    assert card["preprocess"] == "gcn-zca" and card["augment"] is True
    # the same weights on another 10,000 images of the same distribution: within a few points of validation
    assert abs(card["test_accuracy"] - val_accuracy) < 3, (card["test_accuracy"], val_accuracy)
    assert card["data"] == data["description"] == "CIFAR-10 (official pixels)"   # recognised from the pixels
    # The cache holds the ZCA fitted on the 40,000 training images, and the whitened splits.
    (folder,) = cache.iterdir()
    assert np.load(folder / "zca_matrix.npy").shape == (3072, 3072)
    assert np.load(folder / "train_images.npy", mmap_mode="r").shape == (40000, 3, 32, 32)
    assert np.load(folder / "val_images.npy", mmap_mode="r").shape == (10000, 3, 32, 32)
    # The run's weights carry the ZCA fitted in training: new images are whitened exactly like the cache.
    import torch
    from PIL import Image

    from nin.data.datasets import load_raw_test
    from nin.inference import load_trained, model_inputs
    trained = load_trained(out)
    raw = load_raw_test("cifar10", cifar10_dir, offline=True)
    cached = torch.from_numpy(np.load(folder / "test_images.npy", mmap_mode="r")[:16].astype(np.float32))
    torch.testing.assert_close(model_inputs(trained, raw.images[:16]), cached, rtol=2e-3, atol=2e-2)
    # predict on a PNG of another size (resized to 32x32 before GCN + ZCA), maps of test images, the report
    Image.fromarray(raw.images[0].permute(1, 2, 0).numpy()).resize((50, 40)).save(tmp_path / "cifar.png")
    predicted = subprocess.run([sys.executable, "-m", "nin", "predict", str(out), str(tmp_path / "cifar.png")],
                               capture_output=True, text=True)
    assert predicted.returncode == 0, predicted.stderr
    # "cifar.png: airplane 23.4%, ..." with CIFAR-10's class names and probabilities that are percentages
    top = re.findall(r"([a-z]+) (\d+\.\d)%", predicted.stdout)
    assert top and all(name in dataset_info("cifar10").class_names and 0 <= float(p) <= 100 for name, p in top), predicted.stdout
    maps = subprocess.run([sys.executable, "-m", "nin", "maps", str(out), "--data-dir", str(cifar10_dir),
                           "--offline", "--samples", "3", "--out", str(tmp_path / "maps.png")], capture_output=True,
                          text=True)
    assert maps.returncode == 0, maps.stderr
    with Image.open(tmp_path / "maps.png") as image:
        assert coloured_share(image) > 0.02   # the maps drawn in a colour map
    assert "class confidence maps" in (out / "report.html").read_text()
    # `nin eval --split val` measures the same held-out images from the raw files with the weights' ZCA.
    evaluated = subprocess.run([sys.executable, "-m", "nin", "eval", str(out), "--split", "val", "--data-dir",
                                str(cifar10_dir), "--offline", "--json", str(tmp_path / "val.json")],
                               capture_output=True, text=True)
    assert evaluated.returncode == 0, evaluated.stderr
    val = json.loads((tmp_path / "val.json").read_text())
    assert val["split"] == "val" and val["images"] == 10000
    assert abs(val["test_accuracy"] - val_accuracy) < 0.5   # training read the float16 cache: a few images differ
