"""Class maps of a user's own photo: `nin.explain`, and `nin maps MODEL PHOTO` laid over the photo."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import nin
from nin.data.datasets import load_raw_test
from nin.errors import NinError
from nin.inference import load_trained
from nin.maps.photo import explain_photo
from test_inspect import coloured_share


def peak(heat: np.ndarray) -> tuple[float, float]:
    """(row, column) of a map's maximum, as fractions of its height and width."""
    row, col = np.unravel_index(heat.argmax(), heat.shape)
    return (row + 0.5) / heat.shape[0], (col + 0.5) / heat.shape[1]


@pytest.fixture(scope="module")
def cifar_photo(cifar10_dir, tmp_path_factory):
    """A CIFAR-10 test image (a cat) enlarged to a 451 x 300 JPEG, as a user's photo would be bigger."""
    test = load_raw_test("cifar10", cifar10_dir, offline=True)
    path = tmp_path_factory.mktemp("photo") / "cat.jpg"
    Image.fromarray(test.images[0].permute(1, 2, 0).numpy()).resize((451, 300), Image.Resampling.BICUBIC).save(
        path, quality=92)
    assert test.labels[0].item() == 3   # cat
    return path


def test_explain_gives_class_names_probabilities_and_maps_over_the_photo(cifar_photo):
    seen = nin.explain("nin-cifar10", cifar_photo, top_k=3)
    assert seen.names == [load_trained("nin-cifar10").class_names[c] for c in seen.classes]
    assert seen.probabilities == sorted(seen.probabilities, reverse=True) and 0 < sum(seen.probabilities) <= 1
    assert seen.photo.shape == (300, 451, 3) and seen.model_input.shape == (32, 32, 3)
    assert seen.maps_at_input.shape == (3, 32, 32) and seen.maps_at_photo.shape == (3, 300, 451)
    # The map over the photo is the model's map stretched: its peak sits at the same place, relative to the picture,
    # within a model pixel (1/32), for every class drawn.
    for small, large in zip(seen.maps_at_input, seen.maps_at_photo):
        assert np.allclose(peak(small), peak(large), atol=1 / 32), (peak(small), peak(large))
    x0, y0, x1, y1 = seen.box   # on the photo's pixels, not the model's
    assert 0 <= x0 < x1 <= 451 and 0 <= y0 < y1 <= 300 and (x1 - x0 > 32 or y1 - y0 > 32)
    assert "451 x 300 photo resized to 32 x 32" in seen.fitted


def test_the_map_over_a_photo_peaks_where_the_digit_is(mnist_test):
    """A digit at the right of a wide grey photo, the model fed the photo at its own size (GAP allows it)."""
    trained = load_trained("nin-mnist")
    photo = np.zeros((60, 200), dtype=np.uint8)
    photo[16:44, 150:178] = mnist_test.images[1, 0].numpy()   # a 2
    seen = explain_photo(trained, photo, top_k=10, native_size=True)
    assert seen.maps_at_photo.shape == (10, 60, 200) and "own size" in seen.fitted
    # the true class's map (mostly blank photos are read as a 1 by their mean, so not always the prediction)
    row, col = peak(seen.maps_at_photo[seen.names.index("2")])
    assert 150 / 200 <= col <= 178 / 200, col


def test_grey_and_colour_photos_become_the_models_channels(cifar_photo):
    grey = np.array(Image.open(cifar_photo).convert("L"))
    assert explain_photo(load_trained("nin-cifar10"), grey).photo.shape == (300, 451, 3)
    assert explain_photo(load_trained("nin-mnist"), cifar_photo).photo.shape == (300, 451)


def test_a_model_whitened_at_one_size_refuses_native_size(cifar_photo):
    with pytest.raises(NinError, match="ZCA whitening was fitted on 32 x 32 images"):
        explain_photo(load_trained("nin-cifar10"), cifar_photo, native_size=True)


def run_nin(*args):
    return subprocess.run([sys.executable, "-m", "nin", *args], capture_output=True, text=True)


def test_maps_of_a_photo_on_the_command_line(cifar_photo, tmp_path):
    out = tmp_path / "maps.png"
    result = run_nin("maps", "nin-cifar10", str(cifar_photo), "--out", str(out))
    assert result.returncode == 0, result.stderr
    with Image.open(out) as image:
        # one row: the 32 x 32 view and three maps over a 3:2 photo, so far wider than tall
        assert image.width > 2.5 * image.height and coloured_share(image) > 0.2
    for flags, reason in ((["--native-size"], "ZCA whitening"), (["--top-fraction", "0.1"], "--top-fraction: for the "
                                                                                          "grids of test images")):
        refused = run_nin("maps", "nin-cifar10", str(cifar_photo), *flags, "--out", str(tmp_path / "no.png"))
        assert refused.returncode == 2 and reason in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "no.png").exists()
