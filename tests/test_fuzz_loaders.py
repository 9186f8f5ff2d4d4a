"""Property-based: random, truncated and mutated files given to every loader end in NinError (or load, when a
mutation left the file valid), never in another exception, a hang or a crash."""

import io
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from nin.config import FIELDS, TrainConfig, load_config_file
from nin.data.cifar import LAYOUTS, read_binary_file
from nin.data.idx import read_idx
from nin.data.svhn import read_svhn_mat
from nin.errors import NinError
from nin.images import load_image
from nin.models import build_model
from nin.files import load_checkpoint, load_weights, save_checkpoint, save_weights

EXAMPLES = 200
# Every .mat file is parsed in a child process (~0.35 s each): fewer examples keep CI near its 15 minutes.
SVHN_EXAMPLES = 80


def _idx_bytes() -> bytes:
    images = np.arange(4 * 5 * 6, dtype=np.uint8).reshape(4, 5, 6)
    return (0x0803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in images.shape) + images.tobytes()


def _cifar_bytes() -> bytes:
    rng = np.random.default_rng(0)
    records = [bytes([i % 10]) + rng.integers(0, 256, 3072, dtype=np.uint8).tobytes() for i in range(3)]
    return b"".join(records)


def _svhn_bytes() -> bytes:
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    scipy.io.savemat(buffer, {"X": rng.integers(0, 256, (32, 32, 3, 4), dtype=np.uint8),
                              "y": np.array([[1], [10], [3], [4]], dtype=np.uint8)})
    return buffer.getvalue()


def _png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def _checkpoint_bytes() -> bytes:
    with tempfile.TemporaryDirectory() as d:
        save_checkpoint(Path(d) / "c.pt", {"model": {"w": torch.arange(6.0)}, "epoch": 1, "history": [{"a": 1.0}]})
        return (Path(d) / "c.pt").read_bytes()


def _weights_bytes() -> bytes:
    model = build_model("maxout-mnist")   # small
    with tempfile.TemporaryDirectory() as d:
        save_weights(Path(d) / "w.safetensors", model.state_dict(), {"model_config": model.config.to_dict()})
        return (Path(d) / "w.safetensors").read_bytes()


LOADERS = {
    "idx": (".idx", _idx_bytes, lambda p: read_idx(p, 3)),
    "cifar-binary": (".bin", _cifar_bytes, lambda p: read_binary_file(p, LAYOUTS["cifar10"], 10)),
    "svhn-mat": (".mat", _svhn_bytes, read_svhn_mat),
    "image": (".png", _png_bytes, lambda p: load_image(p, 3)),
    "checkpoint": (".pt", _checkpoint_bytes, load_checkpoint),
    "weights": (".safetensors", _weights_bytes, load_weights),
}


def _equal(a, b) -> bool:
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return isinstance(a, np.ndarray) and np.array_equal(a, b)


@st.composite
def damaged(draw, valid: bytes):
    """Random bytes, a truncation of a valid file, or a valid file with some bytes changed."""
    kind = draw(st.sampled_from(["random", "truncated", "mutated"]))
    if kind == "random":
        return kind, draw(st.binary(min_size=0, max_size=4096))
    if kind == "truncated":
        return kind, valid[:draw(st.integers(0, len(valid) - 1))]
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 8))):
        # Mostly in the header, where the structure is.
        position = draw(st.integers(0, min(len(data) - 1, draw(st.sampled_from([64, 512, len(data) - 1])))))
        data[position] = draw(st.integers(0, 255))
    return kind, bytes(data)


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_loader_never_fails_with_a_foreign_exception(name):
    suffix, make_valid, load = LOADERS[name]
    valid = make_valid()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"file{suffix}"
        path.write_bytes(valid)
        expected = load(path)   # the valid file loads

        @settings(max_examples=SVHN_EXAMPLES if name == "svhn-mat" else EXAMPLES, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(damaged(valid))
        def check(case):
            kind, data = case
            path.write_bytes(data)
            try:
                result = load(path)
            except NinError as e:
                assert str(path) in str(e)          # the message names the file
                return
            # Loaded: a mutation can leave a file valid; a truncation only when it cut nothing the data
            # needs (a PNG without its end marker); random bytes never.
            assert kind == "mutated" or data == valid or (kind == "truncated" and _equal(result, expected)), \
                (kind, data[:40])

        check()


# ------------------------------------------------------------------ settings files

CONFIG_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 500), st.floats(allow_nan=True),
                          st.text(max_size=12), st.sampled_from(["cifar10", "paper", "fast", "lsuv", "gcn-zca"]),
                          st.lists(st.integers(), max_size=2))


@settings(max_examples=EXAMPLES * 5, deadline=None, database=None)
@given(st.dictionaries(st.sampled_from([*FIELDS, "learning_rate", "Epochs"]), CONFIG_VALUES, max_size=5))
@example({"anneal_by_time": True})   # found by this test: a valid value, refused without --time-budget-minutes
@example({"test_flip": True})
def test_a_settings_file_is_either_valid_or_one_line_naming_the_key(values):
    """--config FILE.json: unknown keys, wrong types and values out of range are refused, naming the key."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "settings.json"
        path.write_text(json.dumps(values))
        try:
            loaded = load_config_file(path)
        except NinError as e:
            message = str(e)
            assert str(path) in message and "\n" not in message
            named = [key for key in values if message.startswith(f"{path}: {key} (--") or key in message]
            assert named, message
            return
        try:
            cfg = TrainConfig.from_dict(loaded).resolved()
        except NinError as e:
            # Valid values that do not go together ({"anneal_by_time": true} without a budget): the file's
            # keys merge with the command line's flags before this check, so it names the flags, not the file.
            message = str(e)
            assert "\n" not in message and any(f"--{key.replace('_', '-')}" in message for key in values), message
            return
    for key, value in values.items():   # accepted: every value is of its field's type and in its range
        meta = FIELDS[key].metadata
        choices = meta["choices"]() if callable(meta["choices"]) else meta["choices"]
        if value is not None and choices:
            assert value in choices
        if isinstance(value, (int, float)) and meta["minimum"] is not None:
            assert value >= meta["minimum"]
    assert cfg.epochs >= 1 and cfg.lr > 0


@pytest.mark.parametrize("values, pattern", [
    ({"epochs": "10"}, "epochs (--epochs): must be an int, got '10'"),
    ({"epochs": 2.5}, "epochs (--epochs): must be an int"),
    ({"augment": "yes"}, "augment (--augment): must be a bool"),
    ({"lr": 0}, "lr (--lr): must be above 0, got 0"),
    ({"dropout": 1.0}, "dropout (--dropout): must be below 1, got 1.0"),
    ({"val_split": "last"}, "val_split (--val-split): 'last' is not one of none, paper"),
    ({"batch_size": None}, "batch_size (--batch-size): must be an int, got null"),
    ({"learning_rate": 0.1}, "unknown keys learning_rate; expected some of"),
    ({"preset": "0"}, "preset (--preset): '0' is not one of nin-cifar10, nin-cifar100"),   # found by the fuzz test
])
def test_bad_settings_file_values_name_the_key_and_what_is_allowed(values, pattern, tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(values))
    with pytest.raises(NinError) as caught:
        load_config_file(path)
    assert str(caught.value).startswith(f"{path}: ") and pattern in str(caught.value)

