"""The trial log of a study: each trial's run card, config and curve kept in results/trials/, and its table.

A trial is one training run of a study (proxy runs that choose a recipe, one change at a time).
`record_trial` copies what the run folder says into results/trials/NAME/ with the command that ran
it; `render_table` makes results/trials/README.md from those records alone, so the table cannot
drift from them (tests/test_trials.py checks the committed table).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from nin.errors import NinError
from nin.files import atomic_write_json, atomic_write_text
from nin.provenance import short_commit
from nin.rundir import CARD_FILE, CONFIG_FILE, METRICS_FILE, read_metrics

TRIAL_FILE = "trial.json"
# `nin eval RUN --split val [--no-test-flip] --json RUN/eval-val-flip.json` (or eval-val-single.json):
# evaluation-time choices measured on the trial's weights, kept with it.
EVAL_FLIP, EVAL_SINGLE = "eval-val-flip.json", "eval-val-single.json"


def record_trial(run_dir: Path, trials_dir: Path, name: str, study: str, change: str, command: str,
                 note: str = "") -> Path:
    """Copy a finished run's card, config and metrics into trials_dir/name with what the trial changed."""
    run_dir = Path(run_dir)
    missing = [f for f in (CARD_FILE, CONFIG_FILE, METRICS_FILE) if not (run_dir / f).is_file()]
    if missing:
        raise NinError(f"{run_dir}: missing {', '.join(missing)}; record a finished run")
    target = Path(trials_dir) / name
    target.mkdir(parents=True, exist_ok=True)
    for f in (CARD_FILE, CONFIG_FILE, METRICS_FILE, EVAL_FLIP, EVAL_SINGLE):
        if (run_dir / f).is_file():
            shutil.copyfile(run_dir / f, target / f)
    atomic_write_json(target / TRIAL_FILE, {"name": name, "study": study, "change": change, "command": command,
                                            "note": note})
    return target


def load_trials(trials_dir: Path) -> list[dict]:
    """Every trial record: its trial.json, card and metrics rows."""
    trials = []
    for folder in sorted(p for p in Path(trials_dir).iterdir() if (p / TRIAL_FILE).is_file()):
        evals = {f: json.loads((folder / f).read_text()) for f in (EVAL_FLIP, EVAL_SINGLE) if (folder / f).is_file()}
        trials.append({**json.loads((folder / TRIAL_FILE).read_text()),
                       "card": json.loads((folder / CARD_FILE).read_text()),
                       "metrics": read_metrics(folder / METRICS_FILE), "evals": evals})
    return trials


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _curve(rows: list[dict], key: str) -> str:
    return " ".join(f"{r[key]:.1f}" for r in rows if key in r)


def _flip_column(evals: dict) -> str:
    """Validation accuracy with flip TTA, and in brackets the single view, both measured by `nin eval`."""
    flip, single = evals.get(EVAL_FLIP), evals.get(EVAL_SINGLE)
    if flip is None:
        return "-"
    return f"{flip['test_accuracy']:.2f}" + (f" ({single['test_accuracy']:.2f})" if single else "")


def render_table(trials_dir: Path) -> str:
    """results/trials/README.md: one row per trial, grouped by study, from the records alone.

    Trials choose settings on the validation split, so the table shows no test error (the cards keep it).
    """
    lines = ["# Trials", "", "Made by `python tools/record_trial.py` from the records in this folder; do not edit.",
             ""]
    trials = load_trials(trials_dir)
    for study in sorted({t["study"] for t in trials}):
        lines += [f"## {study}", "",
                  "| trial | change | epochs | validation accuracy by epoch (%) | last train acc. | last val. acc. | "
                  "val. acc., flip TTA (single view) | minutes | commit | note |",
                  "|---|---|---:|---|---:|---:|---:|---:|---|---|"]
        for t in (t for t in trials if t["study"] == study):
            card, rows = t["card"], t["metrics"]
            last = rows[-1]
            lines.append(
                f"| {t['name']} | {t['change']} | {card['epochs']} | {_curve(rows, 'val_accuracy')} | "
                f"{last['train_accuracy']:.2f} | {_number(last.get('val_accuracy'))} | {_flip_column(t['evals'])} | "
                f"{card['wall_seconds'] / 60:.0f} | {short_commit(card['commit'])} | "
                f"{t['note']} |")
        lines.append("")
        lines += [f"- {t['name']}: `{t['command']}`" for t in trials if t["study"] == study]
        if any(t["evals"] for t in trials if t["study"] == study):
            lines.append(f"- flip TTA column: `nin eval RUN --split val --test-flip --json RUN/{EVAL_FLIP}`, and "
                         f"`--no-test-flip --json RUN/{EVAL_SINGLE}` for the single view (the weights' ZCA on the "
                         "raw images, so it may differ by a few images from the training log's last val. acc.)")
        lines.append("")
    return "\n".join(lines)


def write_table(trials_dir: Path) -> Path:
    path = Path(trials_dir) / "README.md"
    atomic_write_text(path, render_table(trials_dir))
    return path
