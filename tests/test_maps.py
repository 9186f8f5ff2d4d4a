"""The maths of confidence maps and localisation: pure functions on small arrays."""

import numpy as np
import pytest
import torch

from nin.localization.boxes import centred_box, gradient_saliency, iou
from nin.maps.locate import box_from_heatmap
from nin.localization.canvas import make_canvases, tight_box
from nin.maps.confidence import class_maps, map_peaks, strongest_map, top_fraction, upsample
from nin.models import build_model
from nin.train.recipes import init_lsuv_


def test_class_maps_means_are_the_logits():
    model = build_model("nin-mnist").eval()
    x = torch.randn(3, 1, 37, 29)   # any size: GAP takes the mean whatever the map size
    maps, logits = class_maps(model, x)
    assert maps.shape[:2] == (3, 10)
    torch.testing.assert_close(logits, model(x), rtol=1e-5, atol=1e-6)


def test_upsample_keeps_a_constant_map_constant():
    maps = torch.full((1, 2, 7, 7), 3.0)
    up = upsample(maps, (28, 30))
    assert up.shape == (1, 2, 28, 30)
    torch.testing.assert_close(up, torch.full_like(up, 3.0))


def test_top_fraction_keeps_the_top_tenth():
    maps = torch.arange(100.0).view(1, 1, 10, 10)
    kept = top_fraction(maps, 0.1)
    assert torch.equal(kept.flatten()[90:], maps.flatten()[90:])
    assert kept.flatten()[:90].abs().sum() == 0
    with pytest.raises(ValueError):
        top_fraction(maps, 0.0)


def test_strongest_map_is_by_peak_not_mean():
    maps = torch.zeros(1, 2, 4, 4)
    maps[0, 0] = 1.0            # mean 1, peak 1
    maps[0, 1, 0, 0] = 5.0      # mean 0.31, peak 5
    assert map_peaks(maps).tolist() == [[1.0, 5.0]]
    assert strongest_map(maps).item() == 1
    assert maps.mean(dim=(2, 3)).argmax().item() == 0


def test_box_from_heatmap_takes_the_largest_region():
    heat = np.zeros((20, 30))
    heat[2:4, 2:4] = 1.0        # small, brightest
    heat[10:16, 5:25] = 0.5     # large, above 20% of the max
    heat[18, 28] = 0.1          # below the threshold
    assert box_from_heatmap(heat, 0.2) == (5, 10, 25, 16)
    assert box_from_heatmap(heat, 0.6) == (2, 2, 4, 4)
    assert box_from_heatmap(np.zeros((5, 6))) == (0, 0, 6, 5)


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (10, 10, 20, 20)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)


def test_centred_box():
    assert centred_box(64, 64, 20, 10) == (27, 22, 37, 42)


def test_canvases_place_the_digit_inside_its_box():
    digits = np.zeros((3, 28, 28), np.uint8)
    digits[:, 5:20, 8:16] = 200
    canvases = make_canvases(digits, np.array([4, 5, 6]), count=50, size=64, clutter=0, seed=1)
    assert canvases.images.shape == (50, 1, 64, 64)
    for image, (x0, y0, x1, y1) in zip(canvases.images[:, 0], canvases.boxes):
        assert (x1 - x0, y1 - y0) == (8, 15)
        assert image[y0:y1, x0:x1].min() == 200 and image.sum() == 200 * 8 * 15
    again = make_canvases(digits, np.array([4, 5, 6]), count=50, size=64, clutter=0, seed=1)
    assert np.array_equal(again.images, canvases.images) and np.array_equal(again.boxes, canvases.boxes)
    # Positions vary: the digit is not always in the same place.
    assert len({tuple(b) for b in canvases.boxes}) > 10


def test_canvas_clutter_adds_fragments_outside_the_true_box():
    digits = np.zeros((2, 28, 28), np.uint8)
    digits[:, 4:24, 4:24] = 255
    canvases = make_canvases(digits, np.array([0, 1]), count=20, size=64, clutter=4, seed=0)
    outside = 0
    for image, (x0, y0, x1, y1) in zip(canvases.images[:, 0], canvases.boxes):
        mask = np.ones_like(image, bool)
        mask[y0:y1, x0:x1] = False
        outside += int(image[mask].sum() > 0)
    assert outside >= 15


def test_tight_box():
    digit = np.zeros((28, 28), np.uint8)
    digit[3, 7] = digit[10, 2] = 1
    assert tight_box(digit) == (2, 3, 8, 11)


def test_gradient_saliency_shape_and_sign():
    # LSUV starts every class map positive: with PyTorch's default init the maps of classes 3 and 4 can be
    # dead under the class-map ReLU for some random weights, and the gradient then is zero everywhere.
    torch.manual_seed(0)
    model, x = build_model("nin-mnist"), torch.randn(2, 1, 28, 28)
    init_lsuv_(model, x)
    model.eval()
    s = gradient_saliency(model, x, torch.tensor([3, 4]))
    assert s.shape == (2, 28, 28) and (s >= 0).all() and s.sum() > 0


def test_thresholds_are_chosen_by_validation_hit_rate_ties_to_the_lower():
    from nin.localization.benchmark import Heatmaps, choose_thresholds
    from nin.localization.canvas import Canvases

    heat = np.zeros((2, 20, 20), dtype=np.float32)
    heat[:, 5:10, 5:10] = 1.0     # the object: a plateau at the maximum
    heat[:, 0:20, 0:12] += 0.3    # a broad glow around it, which low thresholds take in
    truth = np.array([[5, 5, 10, 10]] * 2)
    canvases = Canvases(np.zeros((2, 1, 20, 20), np.uint8), np.zeros(2, np.int64), truth)
    maps = Heatmaps(np.zeros(2), heat, heat, heat[:, ::-1].copy(), (5, 5))
    best, sweep = choose_thresholds(maps, canvases, (0.2, 0.5, 0.9))
    assert sweep["cam"] == {0.2: 0.0, 0.5: 1.0, 0.9: 1.0} and best["cam"] == 0.5
    assert best["saliency"] == 0.2 and set(sweep["saliency"].values()) == {0.0}


def test_localize_from_nin_mnist_beats_the_centred_box(mnist_dir, tmp_path):
    """`nin localize` end to end on a few hundred canvases: thresholds from validation, all three locators."""
    import json
    import subprocess
    import sys

    out = tmp_path / "loc.json"
    result = subprocess.run([sys.executable, "-m", "nin", "localize", "--data-dir", str(mnist_dir), "--offline",
                             "--train-count", "256", "--val-count", "100",
                             "--test-count", "100", "--epochs", "1", "--thresholds", "0.2", "0.4", "--no-progress",
                             "--json", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    results = json.loads(out.read_text())
    assert set(results["locators"]) == {"cam", "saliency", "centred"} and results["map_size"] == [16, 16]
    assert results["chosen_thresholds"]["cam"] in (0.2, 0.4)
    hits = {name: r["all"]["hit_rate"] for name, r in results["locators"].items()}
    assert hits["cam"] > hits["centred"] + 0.2, hits   # digits found, not guessed at the centre
    assert results["config"]["init_weights"] == "nin-mnist"   # the default: start from the shipped digits model
    bad = subprocess.run([sys.executable, "-m", "nin", "localize", "--thresholds", "1.5"], capture_output=True, text=True)
    assert bad.returncode == 2 and "expected fractions in (0, 1]" in bad.stderr
    wrong = subprocess.run([sys.executable, "-m", "nin", "localize", "--data-dir", str(mnist_dir), "--offline",
                            "--init-weights", "nin-cifar10", "--train-count", "8", "--val-count", "8",
                            "--test-count", "8"], capture_output=True, text=True)
    assert wrong.returncode == 2 and "expected a GAP model of 1-channel images" in wrong.stderr, wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1


def test_the_localisation_tables_in_the_docs_are_made_from_the_record():
    import json

    from nin.tables import LOCALISATION, localisation_table
    from nin.provenance import REPO

    results = json.loads((REPO / "results" / "localization.json").read_text())
    for doc in (REPO / "README.md", REPO / "docs" / "maps.md"):
        text = doc.read_text()
        assert LOCALISATION.read(text) == localisation_table(results)
    # The bar, on the recorded run: a classifier of >= 95% first, then >= 50% of boxes at IoU >= 0.5.
    assert results["test_accuracy"] >= 95 and results["locators"]["cam"]["all"]["hit_rate"] >= 0.5


@pytest.mark.parametrize("corner", [(0, 0), (0, 36), (36, 0), (36, 36)])
def test_the_true_class_map_peaks_where_the_digit_was_placed(mnist_test, corner):
    """Real MNIST digits, each put at one corner of a blank 64 x 64 canvas, through the shipped nin-mnist: the
    true class's map peaks inside the digit's quarter of the map. A map that ignored where the digit is (or one
    flipped or transposed on the way) fails for three of the four corners."""
    from nin.inference import load_trained, model_inputs

    trained = load_trained("nin-mnist")
    digits, labels = mnist_test.images[:8], mnist_test.labels[:8]
    canvases = torch.zeros(len(digits), 1, 64, 64, dtype=torch.uint8)
    top, left = corner
    canvases[:, :, top:top + 28, left:left + 28] = digits
    maps, _ = class_maps(trained.model, model_inputs(trained, canvases))
    true_maps = maps[torch.arange(len(labels)), labels]
    h, w = true_maps.shape[-2:]
    rows, cols = np.unravel_index(true_maps.flatten(1).argmax(dim=1).numpy(), (h, w))
    in_row_half = rows < h / 2 if top == 0 else rows >= h / 2
    in_col_half = cols < w / 2 if left == 0 else cols >= w / 2
    assert (in_row_half & in_col_half).all(), list(zip(rows.tolist(), cols.tolist()))
