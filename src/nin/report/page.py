"""Assemble the report: one HTML file with its images embedded as data URIs."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np

from nin.data.datasets import load_raw_test
from nin.errors import NinError
from nin.inference import load_trained
from nin.maps.explain import explain
from nin.maps.figure import render_rows
from nin.pictures import png_bytes
from nin.report.plots import confusion_matrix, training_curves
from nin.files import atomic_write_text
from nin.rundir import CARD_FILE, CONFIG_FILE, METRICS_FILE, REPORT_FILE, metric_columns, read_metrics

MAP_SAMPLES = 8
MAP_CLASSES = 5   # maps drawn per image: six columns stay readable at the page's width without scaling

_STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}
img{max-width:100%}h1{margin-bottom:0}.big{font-size:1.4em}"""


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _table(rows) -> str:
    return "<table>" + "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                               for row in rows) + "</table>"


def format_metric(key: str, value: float) -> str:
    """A metrics.csv value as a person reads it: whole epochs, 4 significant digits of learning rate,
    percentages and losses to a fixed number of decimals."""
    if key == "epoch":
        return f"{value:g}"
    if key == "lr":
        return f"{value:.3g}"
    if key.endswith("_accuracy"):
        return f"{value:.2f}"
    if key.endswith("_loss"):
        return f"{value:.4f}"
    if key == "images_per_second":
        return f"{value:,.0f}"
    if key.endswith("_seconds"):
        return f"{value:,.1f}"
    return f"{value:g}"


def maps_page(run_dir: Path, config: dict, samples: int = MAP_SAMPLES) -> bytes:
    """Confidence maps of the first `samples` test images."""
    trained = load_trained(run_dir)
    test = load_raw_test(config["dataset"], config.get("data_dir"), config.get("offline", False))
    labels = test.labels[:samples].tolist()
    rows = explain(trained, test.images[:samples], labels, top_k=min(MAP_CLASSES, trained.model.config.num_classes))
    return png_bytes(render_rows(rows, trained.class_names))


def build_report(run_dir: Path) -> str:
    """The HTML text of a finished run's report."""
    run_dir = Path(run_dir)
    try:
        config = json.loads((run_dir / CONFIG_FILE).read_text())
        card = json.loads((run_dir / CARD_FILE).read_text())
        history = read_metrics(run_dir / METRICS_FILE)
    except (OSError, ValueError) as e:
        raise NinError(f"{run_dir}: not a finished run folder ({e}); `nin report` needs config.json, "
                       "card.json and metrics.csv from `nin train`") from None
    title = f"{card['preset']} on {card['dataset']}, {card['recipe']} recipe"
    class_names = card.get("class_names") or [str(i) for i in range(len(card.get("per_class_accuracy", [])))]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_STYLE}</style></head><body>",
             f"<h1>{html.escape(title)}</h1><p>run folder <code>{html.escape(str(run_dir))}</code></p>",
             f"<p class='big'>test error <b>{card['test_error']:.2f}%</b> (accuracy {card['test_accuracy']:.2f}%"
             + (f"; with flip TTA {card['test_error_flip']:.2f}%" if "test_error_flip" in card else "") + ") "
             f"after {card['epochs']} epochs, {card['wall_seconds']:.0f} s, {card['parameters']:,} parameters</p>"]
    if history:
        columns = metric_columns(history)
        parts += ["<h2>Training curves</h2>", _img(training_curves(history), "training curves"),
                  "<h2>Per-epoch metrics</h2>",
                  _table([columns] + [[format_metric(k, r[k]) if k in r else "-" for k in columns] for r in history])]
    if "confusion_matrix" in card:
        parts += ["<h2>Confusion matrix (test set)</h2>",
                  _img(confusion_matrix(np.array(card["confusion_matrix"]), class_names), "confusion matrix"),
                  "<h2>Per-class accuracy (test set)</h2>",
                  _table([["class", "accuracy (%)"]] + [[n, f"{a:.2f}"] for n, a in
                                                       zip(class_names, card["per_class_accuracy"])])]
    try:
        parts += ["<h2>Class confidence maps (first test images)</h2>",
                  _img(maps_page(run_dir, config), "class confidence maps")]
    except NinError as e:   # the data may have moved since training: the rest of the report still stands
        parts += [f"<p>confidence maps not drawn: {html.escape(str(e))}</p>"]
    parts += ["<h2>Configuration</h2>", _table(sorted(config.items())),
              "<h2>Model card</h2>", _table(sorted((k, v) for k, v in card.items()
                                                  if k not in ("confusion_matrix", "per_class_accuracy", "class_names"))),
              "</body></html>"]
    return "\n".join(parts)


def write_report(run_dir: Path) -> Path:
    path = Path(run_dir) / REPORT_FILE
    atomic_write_text(path, build_report(run_dir))
    return path
