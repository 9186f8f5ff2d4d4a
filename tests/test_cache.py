"""The preprocessing cache proves itself: damaged entries are rebuilt, never used; concurrent builds leave one."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from nin.data.cache import CacheDamaged, verify
from nin.data.datasets import load_dataset


def write_small_cifar10(folder, n=300):
    """A CIFAR-10 binary folder of random images (LCN needs no fitting, so building the cache is fast)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i, name in enumerate([f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]):
        labels = rng.integers(0, 10, (n, 1), dtype=np.uint8)
        (folder / name).write_bytes(np.concatenate([labels, rng.integers(0, 256, (n, 3072), dtype=np.uint8)], 1).tobytes())


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar-small")
    write_small_cifar10(root / "cifar-10-batches-bin")
    return root


def load(data_dir, cache):
    return load_dataset("cifar10", data_dir, offline=True, preprocess="lcn", cache_dir=cache)


def arrays(data):
    return [s.images.clone() for s in (data.train, data.test)] + [s.labels.clone() for s in (data.train, data.test)]


def entry(cache):
    (folder,) = [p for p in cache.iterdir() if not p.name.startswith(".")]
    return folder


@pytest.mark.parametrize("damage", ["truncated", "bytes overwritten", "meta missing", "array missing"])
def test_a_damaged_cache_entry_is_rebuilt_with_a_note_and_gives_the_clean_result(data_dir, tmp_path, capsys, damage):
    cache = tmp_path / "cache"
    clean = arrays(load(data_dir, cache))
    folder = entry(cache)
    target = folder / "train_images.npy"
    if damage == "truncated":
        target.write_bytes(target.read_bytes()[:-1000])
    elif damage == "bytes overwritten":
        with open(target, "r+b") as f:   # inside the data, past the header: shape and size stay right
            f.seek(target.stat().st_size // 2)
            f.write(b"\x00\x7c" * 8)
    elif damage == "meta missing":
        (folder / "meta.json").unlink()
    else:
        target.unlink()
    with pytest.raises(CacheDamaged):
        verify(folder)
    capsys.readouterr()
    again = load(data_dir, cache)
    note = capsys.readouterr().err
    assert note.count("\n") == 1 and "damaged" in note and "rebuilding" in note, note
    assert all(torch.equal(a, b) for a, b in zip(arrays(again), clean))
    verify(entry(cache))
    assert sorted(p.name for p in cache.iterdir()) == [folder.name]   # no temporaries or damaged copies left


def test_a_clean_entry_is_read_back_without_a_note(data_dir, tmp_path, capsys):
    cache = tmp_path / "cache"
    load(data_dir, cache)
    stamp = (entry(cache) / "train_images.npy").stat().st_mtime_ns
    capsys.readouterr()
    load(data_dir, cache)
    assert capsys.readouterr().err == ""
    assert (entry(cache) / "train_images.npy").stat().st_mtime_ns == stamp
    meta = json.loads((entry(cache) / "meta.json").read_text())
    assert meta["arrays"]["train_images.npy"]["shape"] == [1500, 3, 32, 32]
    assert meta["arrays"]["train_images.npy"]["dtype"] == "float16" and len(meta["arrays"]) == 4


def test_two_processes_building_one_entry_at_once_leave_one_good_copy(data_dir, tmp_path):
    cache = tmp_path / "cache"
    code = ("import sys, torch; from pathlib import Path; from nin.data.datasets import load_dataset; "
            "d = load_dataset('cifar10', Path(sys.argv[1]), offline=True, preprocess='lcn', cache_dir=Path(sys.argv[2])); "
            "print(float(d.train.images.float().sum()), float(d.test.images.float().sum()))")
    processes = [subprocess.Popen([sys.executable, "-c", code, str(data_dir), str(cache)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        outputs.append(out)
    assert len(set(outputs)) == 1
    assert [p.name for p in cache.iterdir()] == [entry(cache).name]
    verify(entry(cache))
    expected = arrays(load(data_dir, tmp_path / "alone"))
    assert all(torch.equal(a, b) for a, b in zip(arrays(load(data_dir, cache)), expected))
