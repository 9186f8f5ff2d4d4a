import os
from pathlib import Path

import pytest

from nin.data.mnist import DEBIAN_FASHION_MNIST

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MNIST_DIR = SHARED_DATA / "mnist"
# Fixtures that read real data from outside the repository: a test that uses one is marked `real_data`.
REAL_DATA_FIXTURES = {"mnist_dir", "fashion_dir", "cifar10_dir", "cifar100_dir"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if REAL_DATA_FIXTURES & set(item.fixturenames):
            item.add_marker("real_data")


def missing_data(message: str):
    """Data a test needs is not on this machine: a failure in CI, which must have it, else a skip that says why."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    if not (MNIST_DIR / "train-images-idx3-ubyte.gz").is_file():
        missing_data(f"the real MNIST files are expected in {MNIST_DIR} (../shared/data/mnist)")
    return MNIST_DIR


@pytest.fixture(scope="session")
def mnist_test(mnist_dir):
    """The 10,000 MNIST test images (uint8) and labels."""
    from nin.data.datasets import load_raw_test

    return load_raw_test("mnist", mnist_dir, offline=True)


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    if not (DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        missing_data(f"the Fashion-MNIST files are expected in {DEBIAN_FASHION_MNIST} (Debian's dataset-fashion-mnist; "
                    "`make test` installs it)")
    return DEBIAN_FASHION_MNIST


def write_idx(path, array, compress: bool = False):
    """An IDX file of a uint8 array (images N x H x W or labels N), gzipped with `compress`."""
    import gzip

    magic = 2051 if array.ndim == 3 else 2049
    data = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape) + array.tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


# The first training and test images of the real MNIST (or Fashion-MNIST), for tests that check how training
# behaves (resume, seeds, schedules, locks, test-time flips) rather than how well it learns: every epoch evaluates
# the test split, and 1,000 test images take a tenth of the time of 10,000.
SMALL_MNIST = {"train": 12800, "test": 1000}


def _small_idx(tmp_path_factory, source: Path, name: str) -> Path:
    """The first SMALL_MNIST images of each split of the IDX files in `source`, written uncompressed."""
    from nin.data.idx import read_idx
    from nin.data.mnist import IDX_FILES

    folder = tmp_path_factory.mktemp(f"{name}-small")
    for split, count in SMALL_MNIST.items():
        for stem, ndim in zip(IDX_FILES[split], (3, 1)):
            write_idx(folder / stem, read_idx(source / f"{stem}.gz", ndim)[:count])
    return folder


@pytest.fixture(scope="session")
def mnist_small_dir(tmp_path_factory, mnist_dir) -> Path:
    return _small_idx(tmp_path_factory, mnist_dir, "mnist")


@pytest.fixture(scope="session")
def fashion_small_dir(tmp_path_factory, fashion_dir) -> Path:
    return _small_idx(tmp_path_factory, fashion_dir, "fashion-mnist")


def _train_mnist(tmp_path_factory, data_dir: Path, images: int) -> Path:
    """One epoch of the fast recipe on the first `images` training images in `data_dir`, through the CLI."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("run") / "mnist-fast"
    result = subprocess.run([sys.executable, "-m", "nin", "train", "--dataset", "mnist", "--data-dir", str(data_dir),
                             "--offline", "--recipe", "fast", "--epochs", "1", "--train-subset", str(images),
                             "--out", str(out), "--no-progress"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="session")
def mnist_run(tmp_path_factory, mnist_small_dir) -> Path:
    """A finished run folder for the commands that read one (predict, maps, report, export, eval, trials): 100
    steps on SMALL_MNIST, a third of the cost of `mnist_run_300`; how well it learns is not what they test."""
    return _train_mnist(tmp_path_factory, mnist_small_dir, SMALL_MNIST["train"])


@pytest.fixture(scope="session")
def mnist_run_300(tmp_path_factory, mnist_dir) -> Path:
    """300 steps of the fast recipe on the real MNIST (38,400 images, one epoch), for the test that it learns."""
    return _train_mnist(tmp_path_factory, mnist_dir, 38400)


CONVERTER = SHARED_DATA.parent / "tools" / "make_cifar_batches.py"


def _official_cifar(tmp_path_factory, name: str, folder: str) -> Path:
    """CIFAR (official pixels) in the official binary layout, written by ../shared's converter."""
    import subprocess
    import sys

    if not (SHARED_DATA / name / "checks.json").is_file():
        missing_data(f"the lossless {name} pack is expected in {SHARED_DATA / name}")
    root = tmp_path_factory.mktemp(name)
    subprocess.run([sys.executable, str(CONVERTER), name, "--out", str(root / folder)], check=True,
                   capture_output=True)
    return root


@pytest.fixture(scope="session")
def cifar10_dir(tmp_path_factory) -> Path:
    return _official_cifar(tmp_path_factory, "cifar10", "cifar-10-batches-bin")


@pytest.fixture(scope="session")
def cifar100_dir(tmp_path_factory) -> Path:
    return _official_cifar(tmp_path_factory, "cifar100", "cifar-100-binary")
