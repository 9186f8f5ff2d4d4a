"""IDX reading and data-set location, on small files written here and on the real MNIST."""

import numpy as np
import pytest

from conftest import write_idx
from nin.data.idx import read_idx
from nin.data.datasets import describe_data, load_dataset
from nin.errors import NinError


def write_fake_mnist(folder, n_train=20, n_test=10, compress=True):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if compress else ""
    for stem, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{stem}-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), compress)
        write_idx(folder / f"{stem}-labels-idx1-ubyte{suffix}", rng.integers(0, 10, (n,), dtype=np.uint8), compress)


@pytest.mark.parametrize("compress", [True, False])
def test_reads_gzipped_and_plain(tmp_path, compress):
    write_fake_mnist(tmp_path, compress=compress)
    data = load_dataset("mnist", tmp_path, offline=True)
    assert data.train.images.shape == (20, 1, 28, 28) and data.test.labels.shape == (10,)


def test_finds_torchvision_layout(tmp_path):
    write_fake_mnist(tmp_path / "FashionMNIST" / "raw")
    assert len(load_dataset("fashion-mnist", tmp_path, offline=True).train.labels) == 20


def test_real_mnist(mnist_dir):
    data = load_dataset("mnist", mnist_dir, offline=True)
    assert data.train.images.shape == (60000, 1, 28, 28)
    assert data.test.images.shape == (10000, 1, 28, 28)
    assert data.train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert data.test.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert abs(data.train.images.float().mean().item() / 255 - 0.1307) < 1e-4


def test_missing_folder_offline(tmp_path):
    with pytest.raises(NinError, match=r"no IDX files found in .*missing.*train-images-idx3-ubyte\[\.gz\].*--data-dir"):
        load_dataset("mnist", tmp_path / "missing", offline=True)


def test_partial_folder_names_missing_files(tmp_path):
    write_fake_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(NinError, match=r"missing t10k-labels-idx1-ubyte\[\.gz\]"):
        load_dataset("mnist", tmp_path, offline=True)


def test_truncated_gzip(tmp_path):
    write_fake_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(NinError, match=r"train-images-idx3-ubyte\.gz: cannot read.*truncated or corrupt"):
        load_dataset("mnist", tmp_path, offline=True)


def test_truncated_plain_file(tmp_path):
    write_fake_mnist(tmp_path, compress=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(NinError, match=r"bytes, expected 15696 for shape \(20, 28, 28\)"):
        read_idx(path, ndim=3)


def test_wrong_magic(tmp_path):
    write_fake_mnist(tmp_path, compress=False)
    with pytest.raises(NinError, match="magic number 2049, expected 2051"):
        read_idx(tmp_path / "train-labels-idx1-ubyte", ndim=3)


def test_count_mismatch(tmp_path):
    write_fake_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(19, np.uint8), compress=True)
    with pytest.raises(NinError, match="20 images but .* has 19 labels"):
        load_dataset("mnist", tmp_path, offline=True)


def test_label_out_of_range(tmp_path):
    write_fake_mnist(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.full(10, 12, np.uint8), compress=True)
    with pytest.raises(NinError, match="label 12 out of range 0-9"):
        load_dataset("mnist", tmp_path, offline=True)


def test_unknown_dataset():
    with pytest.raises(NinError, match="unknown dataset 'cifar7'"):
        load_dataset("cifar7", offline=True)


def test_iterate_batches_over_part_of_the_data():
    import torch

    from nin.data.batches import iterate_batches
    images, labels = torch.arange(10).view(10, 1, 1, 1), torch.arange(10)
    batches = list(iterate_batches(images, labels, 3, order=torch.tensor([9, 8, 7, 6, 5]), drop_last=True))
    assert [b[1].tolist() for b in batches] == [[9, 8, 7]]


def test_the_data_is_recognised_from_its_pixels_not_its_file_names(cifar10_dir, cifar100_dir, mnist_dir):
    from nin.data import releases
    from nin.data.registry import DATASETS
    from nin.data.datasets import _read_raw

    CIFAR10 = DATASETS["cifar10"]

    assert describe_data("cifar100", cifar100_dir) == "CIFAR-100 (official pixels)"
    assert describe_data("mnist", mnist_dir) == "MNIST (official pixels)"
    raw = _read_raw("cifar10", cifar10_dir, offline=True)
    train, test = raw["train"], raw["test"]
    assert releases.describe(CIFAR10, train, test) == "CIFAR-10 (official pixels)"
    # Any order of the same images is the same data; one changed pixel or label is not.
    order = np.random.default_rng(0).permutation(len(test[1]))
    assert releases.describe(CIFAR10, train, (test[0][order], test[1][order])) == "CIFAR-10 (official pixels)"
    touched = test[0].copy()
    touched[123, 1, 4, 5] ^= 1
    assert releases.describe(CIFAR10, train, (touched, test[1])) == f"CIFAR-10 ({releases.UNKNOWN})"
    relabelled = test[1].copy()
    relabelled[7] = (relabelled[7] + 1) % 10
    assert releases.describe(CIFAR10, train, (test[0], relabelled)) == f"CIFAR-10 ({releases.UNKNOWN})"
