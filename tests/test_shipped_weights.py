"""The weights in src/nin/weights/: loadable by name, integrity-checked, and as good as their cards say."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nin.data.sources import load_raw_test
from nin.inference import load_trained, model_inputs, shipped_weights_dir
from nin.maps.confidence import class_maps, strongest_map

CARD = json.loads((shipped_weights_dir() / "nin-mnist.json").read_text())


def test_card_describes_the_file():
    path = shipped_weights_dir() / CARD["weights"]
    assert path.stat().st_size == CARD["bytes"] < 5_000_000
    assert {"dataset", "recipe", "epochs", "test_error", "sha256", "command"} <= set(CARD)


@pytest.mark.parametrize("name, data", [("nin-mnist", "mnist_dir"), ("nin-mnist-paper", "mnist_dir"),
                                        ("nin-fashion-mnist", "fashion_dir")])
def test_eval_by_name_gives_the_error_on_the_card(name, data, request, tmp_path):
    card = json.loads((shipped_weights_dir() / f"{name}.json").read_text())
    data_dir = request.getfixturevalue(data)
    result = subprocess.run([sys.executable, "-m", "nin", "eval", name, "--data-dir", str(data_dir), "--offline",
                             "--json", str(tmp_path / "e.json")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    evaluation = json.loads((tmp_path / "e.json").read_text())
    # Same images, same bf16 path as in training: the same count of mistakes (one image is 0.01%).
    assert abs(evaluation["test_error"] - card["test_error"]) <= 0.011, (evaluation["test_error"], card["test_error"])


def test_true_class_map_is_strongest_for_correctly_classified_test_images(mnist_dir):
    trained = load_trained("nin-mnist")
    test = load_raw_test("mnist", mnist_dir, offline=True)
    right = strongest_right = 0
    for start in range(0, len(test.labels), 1000):
        images, labels = test.images[start:start + 1000], test.labels[start:start + 1000]
        maps, logits = class_maps(trained.model, model_inputs(trained, images))
        correct = logits.argmax(dim=1) == labels
        right += int(correct.sum())
        strongest_right += int((correct & (strongest_map(maps) == labels)).sum())
    assert right >= 9900
    assert strongest_right / right >= 0.90, strongest_right / right


def test_tampered_weights_are_refused(tmp_path):
    folder = tmp_path / "weights"
    shutil.copytree(shipped_weights_dir(), folder)
    path = folder / CARD["weights"]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    result = subprocess.run([sys.executable, "-m", "nin", "predict", "nin-mnist", str(tmp_path / "none.png")],
                            capture_output=True, text=True, env={**os.environ, "NIN_WEIGHTS": str(folder)})
    assert result.returncode == 2
    assert "does not match its card" in result.stderr and len(result.stderr.strip().splitlines()) == 1
