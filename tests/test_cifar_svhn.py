"""CIFAR-10/100 and SVHN readers on small files written here in the official formats."""

import dataclasses
import io
import json
import os
import pickle
import tarfile

import numpy as np
import pytest
import scipy.io

from nin.data import cifar
from nin.data.archives import md5sum, safe_extract
from nin.data.datasets import load_dataset
from nin.errors import NinError


def binary_records(n, label_bytes, num_classes, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, (n, label_bytes), dtype=np.uint8)
    pixels = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    return np.concatenate([labels, pixels], axis=1).tobytes()


def write_cifar10_binary(folder, n=20):
    folder.mkdir(parents=True)
    for i, name in enumerate([f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]):
        (folder / name).write_bytes(binary_records(n, 1, 10, seed=i))


def test_cifar10_binary(tmp_path):
    write_cifar10_binary(tmp_path / "cifar-10-batches-bin")
    data = load_dataset("cifar10", tmp_path, offline=True, preprocess="none")
    assert data.train.images.shape == (100, 3, 32, 32) and len(data.test) == 20
    first = np.frombuffer((tmp_path / "cifar-10-batches-bin" / "data_batch_1.bin").read_bytes()[:3073], np.uint8)
    assert data.train.labels[0] == first[0]
    assert data.train.images[0].flatten().tolist() == first[1:].tolist()   # R plane, G plane, B plane


def test_cifar100_binary_uses_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-binary"
    folder.mkdir()
    (folder / "train.bin").write_bytes(binary_records(30, 2, 20))
    (folder / "test.bin").write_bytes(binary_records(10, 2, 20, seed=1))
    records = np.frombuffer((folder / "train.bin").read_bytes(), np.uint8).reshape(30, 3074)
    data = load_dataset("cifar100", tmp_path, offline=True, preprocess="none")
    assert data.train.labels.tolist() == records[:, 1].tolist()
    assert data.info.num_classes == 100


def test_truncated_binary_batch(tmp_path):
    write_cifar10_binary(tmp_path / "cifar-10-batches-bin")
    path = tmp_path / "cifar-10-batches-bin" / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(NinError, match=r"data_batch_3\.bin: 61450 bytes is not a whole number of 3073-byte"):
        load_dataset("cifar10", tmp_path, offline=True, preprocess="none")


def test_binary_label_out_of_range(tmp_path):
    write_cifar10_binary(tmp_path / "cifar-10-batches-bin")
    path = tmp_path / "cifar-10-batches-bin" / "test_batch.bin"
    raw = bytearray(path.read_bytes())
    raw[0] = 57
    path.write_bytes(bytes(raw))
    with pytest.raises(NinError, match="label 57 out of range 0-9"):
        load_dataset("cifar10", tmp_path, offline=True, preprocess="none")


def test_missing_binary_file(tmp_path):
    write_cifar10_binary(tmp_path / "cifar-10-batches-bin")
    (tmp_path / "cifar-10-batches-bin" / "data_batch_5.bin").unlink()
    with pytest.raises(NinError, match="missing data_batch_5.bin"):
        load_dataset("cifar10", tmp_path, offline=True, preprocess="none")


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_tampered_python_batch_is_refused_before_unpickling(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps({"data": Exploit(), "labels": [0]}))
    with pytest.raises(NinError, match=r"data_batch_1: MD5 .* refusing to unpickle.*binary version"):
        load_dataset("cifar10", tmp_path, offline=True, preprocess="none")
    assert not (tmp_path / "pwned").exists()


def test_python_batches_load_when_md5_matches(tmp_path, monkeypatch):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    names = [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]
    for name in names:
        batch = {"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), "labels": [1, 2, 3, 4]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    md5s = {name: md5sum(folder / name) for name in names}
    monkeypatch.setattr(cifar, "_official_python_md5s",
                        lambda _name: ({n: md5s[n] for n in names[:5]}, {"test_batch": md5s["test_batch"]}, "x"))
    data = load_dataset("cifar10", tmp_path, offline=True, preprocess="none")
    assert len(data.train) == 20 and data.test.labels.tolist() == [1, 2, 3, 4]


def make_tar(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in members:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


@pytest.mark.parametrize("bad_name", ["../escape.txt", "/tmp/absolute-nin-test.txt", "a/../../escape.txt"])
def test_tar_member_outside_target_is_refused(tmp_path, bad_name):
    archive = tmp_path / "bad.tar.gz"
    make_tar(archive, [("ok.txt", b"fine"), (bad_name, b"evil")])
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(NinError, match="outside"):
        safe_extract(archive, target)
    assert not (tmp_path / "escape.txt").exists() and not os.path.exists("/tmp/absolute-nin-test.txt")
    assert not (target / "ok.txt").exists()   # nothing is extracted from an unsafe archive


def test_binary_archive_with_wrong_md5_is_refused(tmp_path):
    make_tar(tmp_path / "cifar-10-binary.tar.gz", [("cifar-10-batches-bin/test_batch.bin", b"x")])
    with pytest.raises(NinError, match="MD5 .* expected the official c32a1d4ab5d03f1284b67883e8d87530"):
        load_dataset("cifar10", tmp_path, offline=True, preprocess="none")


def test_the_presence_check_extracts_nothing_and_the_first_load_extracts_the_archive(tmp_path, monkeypatch):
    from nin.reproduce.runner import find_data_dir

    write_cifar10_binary(tmp_path / "made" / "cifar-10-batches-bin")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    archive = data_dir / "cifar-10-binary.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "made" / "cifar-10-batches-bin", arcname="cifar-10-batches-bin")
    official = dataclasses.replace(cifar.LAYOUTS["cifar10"], binary_archive_md5=md5sum(archive))
    monkeypatch.setitem(cifar.LAYOUTS, "cifar10", official)
    assert find_data_dir("cifar10", data_dir) == (data_dir, None)
    assert sorted(p.name for p in data_dir.iterdir()) == ["cifar-10-binary.tar.gz"]
    data = load_dataset("cifar10", data_dir, offline=True, preprocess="none")
    assert len(data.train) == 100 and len(data.test) == 20
    assert (data_dir / "cifar-10-batches-bin" / "test_batch.bin").is_file()


def test_offline_without_files(tmp_path):
    with pytest.raises(NinError, match=r"cifar-10-batches-bin/.*drop --offline"):
        load_dataset("cifar10", tmp_path, offline=True)


def write_svhn(folder, per_class):
    rng = np.random.default_rng(0)
    for split, n_per_class in per_class.items():
        labels = np.repeat(np.arange(1, 11), n_per_class)   # SVHN writes digit 0 as 10
        rng.shuffle(labels)
        x = rng.integers(0, 256, (32, 32, 3, len(labels)), dtype=np.uint8)
        scipy.io.savemat(folder / f"{split}_32x32.mat", {"X": x, "y": labels[:, None].astype(np.uint8)})


@pytest.fixture(scope="module")
def svhn_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("svhn")
    write_svhn(folder, {"train": 410, "extra": 205, "test": 5})
    return folder


def test_svhn_paper_split_sizes_per_class(svhn_dir, tmp_path):
    data = load_dataset("svhn", svhn_dir, offline=True, val_split="paper", preprocess="none", seed=3)
    val_counts = np.bincount(data.val.labels.numpy(), minlength=10)
    assert val_counts.tolist() == [600] * 10
    assert len(data.train) == 10 * (410 + 205) - 6000
    assert np.bincount(data.train.labels.numpy(), minlength=10).tolist() == [15] * 10
    assert data.test.labels.min() >= 0 and data.test.labels.max() <= 9
    chosen = data.record["val_indices"]
    assert len(chosen) == 6000 and sum(i < 4100 for i in chosen) == 4000
    again = load_dataset("svhn", svhn_dir, offline=True, val_split="paper", preprocess="none", seed=3)
    assert again.record["val_indices"] == chosen


def test_svhn_lcn_is_cached(svhn_dir, tmp_path):
    first = load_dataset("svhn", svhn_dir, offline=True, val_split="paper", cache_dir=tmp_path)
    assert first.preprocess == "lcn" and first.train.images.dtype == __import__("torch").float16
    assert np.isfinite(first.train.images[:100].float().numpy()).all()
    folders = list(tmp_path.iterdir())
    assert len(folders) == 1 and json.loads((folders[0] / "meta.json").read_text())["lcn_kernel"] == 7
    stamp = (folders[0] / "train_images.npy").stat().st_mtime_ns
    second = load_dataset("svhn", svhn_dir, offline=True, val_split="paper", cache_dir=tmp_path)
    assert (folders[0] / "train_images.npy").stat().st_mtime_ns == stamp   # read back, not recomputed
    assert (second.train.images[:50] == first.train.images[:50]).all()


def test_svhn_missing_extra(tmp_path):
    write_svhn(tmp_path, {"train": 1, "test": 1})
    with pytest.raises(NinError, match="missing extra_32x32.mat"):
        load_dataset("svhn", tmp_path, offline=True)


def test_svhn_corrupt_mat(tmp_path):
    write_svhn(tmp_path, {"train": 1, "extra": 1, "test": 1})
    (tmp_path / "test_32x32.mat").write_bytes(b"MATLAB 5.0 MAT-file" + bytes(50))
    with pytest.raises(NinError, match="test_32x32.mat: not a readable SVHN .mat file"):
        load_dataset("svhn", tmp_path, offline=True, preprocess="none")


def test_truncated_binary_batch_via_cli_is_one_line_exit_2(tmp_path, capsys):
    from nin.cli import main

    write_cifar10_binary(tmp_path / "cifar-10-batches-bin")
    path = tmp_path / "cifar-10-batches-bin" / "test_batch.bin"
    path.write_bytes(path.read_bytes()[:5000])
    assert main(["train", "--dataset", "cifar10", "--preset", "nin-cifar10", "--data-dir", str(tmp_path),
                 "--offline", "--preprocess", "none", "--out", str(tmp_path / "run")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "test_batch.bin: 5000 bytes is not a whole number of 3073-byte" in lines[0]


def test_stacked_rows_read_like_the_concatenation_without_making_it(tmp_path):
    from nin.data.datasets import StackedRows, _digest

    a = np.arange(1000 * 12, dtype=np.uint8).reshape(1000, 12)
    b = a[::-1].copy()
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    stacked = StackedRows([np.load(tmp_path / "a.npy", mmap_mode="r"), np.load(tmp_path / "b.npy", mmap_mode="r")])
    whole = np.concatenate([a, b])
    index = np.random.default_rng(0).permutation(2000)[:700]
    assert len(stacked) == 2000 and stacked.shape == whole.shape
    assert np.array_equal(stacked[index], whole[index]) and np.array_equal(stacked[5:1500], whole[5:1500])
    assert _digest(stacked) == _digest(whole)   # the cache key does not depend on how the pool is held
