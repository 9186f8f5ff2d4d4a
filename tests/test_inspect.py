"""Predict, maps, report and export on the real MNIST: the shipped nin-mnist where the answer must be right, the
session's short `mnist_run` where a run folder is what is tested."""

import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image



def coloured_share(image: Image.Image) -> float:
    """The share of pixels with a clear colour (channels more than 60 apart): a figure whose maps or curves
    were not drawn is white, black and grey."""
    rgb = np.asarray(image.convert("RGB")).astype(int)
    return float(((rgb.max(axis=2) - rgb.min(axis=2)) > 60).mean())


def run_nin(*args, env=None):
    return subprocess.run([sys.executable, "-m", "nin", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def test_predict_other_size_png_grey_jpeg_and_corrupt_file(mnist_test, tmp_path):
    seven, two = mnist_test.images[0, 0].numpy(), mnist_test.images[1, 0].numpy()
    assert mnist_test.labels[:2].tolist() == [7, 2]
    Image.fromarray(seven).resize((61, 45), Image.Resampling.BILINEAR).convert("RGB").save(tmp_path / "seven.png")
    Image.fromarray(two).save(tmp_path / "two.jpg", quality=95)     # mode L: a grey JPEG
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    result = run_nin("predict", "nin-mnist", str(tmp_path / "seven.png"), str(tmp_path / "broken.png"),
                     str(tmp_path / "two.jpg"), "--top-k", "3", "--json", str(tmp_path / "p.json"))
    assert result.returncode == 1, result.stderr          # one file failed
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and "broken.png" in errors[0] and "not a readable image" in errors[0]
    predictions = json.loads((tmp_path / "p.json").read_text())
    assert predictions["failed"] == [str(tmp_path / "broken.png")]
    top = {Path(p["file"]).name: p["top"] for p in predictions["predictions"]}
    assert top["seven.png"][0]["class"] == "7" and top["two.jpg"][0]["class"] == "2"
    assert all(len(t) == 3 and t[0]["probability"] >= t[1]["probability"] for t in top.values())
    assert "seven.png: 7 " in result.stdout


def test_predict_all_good_exits_0_and_native_size_works(mnist_test, tmp_path):
    # The shipped weights, not the 300-step test run, on 36x36 canvases (4 px of border): far larger
    # canvases are off the training distribution (the GAP head averages over mostly background), and
    # whether a model still gets them right is luck (the 0.44% nin-mnist reads a 48x48 "7" as a 1).
    files = [tmp_path / f"big{i}.png" for i in range(4)]
    for i, file in enumerate(files):
        Image.fromarray(np.pad(mnist_test.images[i, 0].numpy(), 4)).save(file)
    result = run_nin("predict", "nin-mnist", *map(str, files), "--native-size", "--top-k", "1")
    assert result.returncode == 0, result.stderr
    predicted = [line.split(": ")[1].split()[0] for line in result.stdout.splitlines()]
    assert predicted == [str(label) for label in mnist_test.labels[:4].tolist()]   # 7, 2, 1, 0


def test_maps_on_mnist_test_images(mnist_run, mnist_dir, tmp_path):
    out = tmp_path / "maps.png"
    result = run_nin("maps", str(mnist_run), "--data-dir", str(mnist_dir), "--offline", "--samples", "5",
                     "--top-fraction", "0.1", "--boxes", "2", "--out", str(out))
    assert result.returncode == 0, result.stderr
    with Image.open(out) as image:
        assert image.format == "PNG" and image.width > 500 and image.height > 400
        assert coloured_share(image) > 0.02   # the maps are drawn in a colour map; axes and text are grey


def test_maps_of_image_files_with_one_unreadable(mnist_run, mnist_test, tmp_path):
    Image.fromarray(mnist_test.images[3, 0].numpy()).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"not an image")
    result = run_nin("maps", str(mnist_run), str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--top-k", "3",
                     "--out", str(tmp_path / "m.png"))
    assert result.returncode == 1 and "b.png" in result.stderr
    with Image.open(tmp_path / "m.png") as image:   # the readable file's maps were still drawn
        assert coloured_share(image) > 0.02


def test_export_onnx_parity_at_two_sizes(mnist_run, tmp_path):
    result = run_nin("export", str(mnist_run), "--onnx", str(tmp_path / "m.onnx"))
    assert result.returncode == 0, result.stderr
    diffs = re.findall(r"input (\d+x\d+x\d+x\d+): max abs difference ([0-9.e+-]+)", result.stdout)
    assert len(diffs) == 2 and diffs[0][0] != diffs[1][0], result.stdout
    assert all(float(d) < 1e-4 for _, d in diffs), diffs
    import onnx
    model = onnx.load(tmp_path / "m.onnx")
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [bool(d.dim_param) for d in dims] == [True, False, True, True]   # batch, height, width are dynamic
    assert json.loads({p.key: p.value for p in model.metadata_props}["nin"])["dataset"] == "mnist"


CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER) and not os.environ.get("CI"),
                    reason="Debian's chromium and chromium-driver are not installed (`make test` installs them)")
def test_report_renders_in_headless_chromium(mnist_run):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    report = mnist_run / "report.html"
    assert report.is_file()   # written by `nin train` at the end
    html = report.read_text()
    for section in ("Training curves", "Confusion matrix", "Per-class accuracy", "Class confidence maps", "test error"):
        assert section in html
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(report.resolve().as_uri())
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight])")
        console = driver.get_log("browser")
    finally:
        driver.quit()
    assert {alt for alt, *_ in images} == {"training curves", "confusion matrix", "class confidence maps"}
    assert all(complete and width > 100 and height > 100 for _, complete, width, height in images), images
    assert [entry for entry in console if entry["level"] in ("SEVERE", "WARNING")] == []
    # The maps are drawn at the page's width (1,100 px), so their captions are not scaled down, and the
    # per-epoch table holds numbers for people, not raw floats.
    (maps_width,) = [width for alt, _, width, _ in images if alt == "class confidence maps"]
    assert maps_width <= 1100, maps_width
    metrics = html[html.index("Per-epoch metrics"):html.index("Confusion matrix")]
    assert not re.search(r"\d\.\d{5,}|\d\.\d{3,}e[-+]", metrics), metrics[:400]


def test_metrics_are_formatted_for_people():
    from nin.report.page import format_metric

    assert [format_metric(k, v) for k, v in [("epoch", 1.0), ("epoch", 4.5), ("lr", 4.5981e-08), ("lr", 0.19013845),
                                              ("val_accuracy", 79.5812), ("train_loss", 0.19013845359684026),
                                              ("images_per_second", 1234.56), ("epoch_seconds", 206.44)]] == \
        ["1", "4.5", "4.6e-08", "0.19", "79.58", "0.1901", "1,235", "206.4"]


def test_report_command_rewrites_the_page(mnist_run):
    (mnist_run / "report.html").unlink()
    result = run_nin("report", str(mnist_run))
    assert result.returncode == 0, result.stderr
    page = (mnist_run / "report.html").read_text()
    card = json.loads((mnist_run / "card.json").read_text())
    assert f"{card['test_error']:.2f}%" in page
    pictures = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(pictures) >= 2   # the training curves and the confusion matrix
    for encoded in pictures:
        with Image.open(io.BytesIO(base64.b64decode(encoded))) as image:
            assert image.width > 200 and coloured_share(image) > 0.001   # curves and cells are drawn in colour


def test_report_of_a_folder_that_is_not_a_run(tmp_path):
    result = run_nin("report", str(tmp_path))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "not a finished run folder" in result.stderr


def test_training_curves_draw_a_rate_annealed_to_zero_without_warnings():
    """A time budget shorter than one epoch ends with a rate of 0 only: no log axis, no matplotlib warning."""
    import warnings

    from nin.report.plots import training_curves
    row = {"epoch": 0.4, "lr": 0.0, "train_loss": 2.0, "train_accuracy": 20.0, "test_loss": 1.9, "test_accuracy": 25.0}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        png = training_curves([row])
    assert png.startswith(b"\x89PNG")
