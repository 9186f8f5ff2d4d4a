"""The study's trial log: records copied from run folders, and a table made from them alone."""

import json
import shutil
from pathlib import Path

import pytest

from nin.errors import NinError
from nin.reproduce.trials import load_trials, record_trial, render_table

TRIALS = Path(__file__).resolve().parents[1] / "results" / "trials"


def test_a_recorded_trial_keeps_the_run_card_and_curve_and_shows_in_the_table(mnist_run, tmp_path):
    record_trial(mnist_run, tmp_path, "t1", "mnist-proxy", "--lr 0.2", "nin train --dataset mnist", "a note")
    (trial,) = load_trials(tmp_path)
    card = json.loads((mnist_run / "card.json").read_text())
    assert trial["card"] == card and trial["change"] == "--lr 0.2" and len(trial["metrics"]) == 1
    table = render_table(tmp_path)
    assert "## mnist-proxy" in table and "| t1 | --lr 0.2 | 1 |" in table and card["commit"][:8] in table
    assert "`nin train --dataset mnist`" in table
    with pytest.raises(NinError, match="missing"):
        record_trial(tmp_path, tmp_path, "t2", "s", "", "c")


def test_a_trials_flip_evaluations_travel_with_it_into_the_table(mnist_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(mnist_run, run)
    (run / "eval-val-flip.json").write_text(json.dumps({"split": "val", "test_accuracy": 81.234, "test_flip": True}))
    (run / "eval-val-single.json").write_text(json.dumps({"split": "val", "test_accuracy": 80.5, "test_flip": False}))
    record_trial(run, tmp_path / "trials", "t3", "proxy", "--small-crop-epochs 4", "nin train")
    assert (tmp_path / "trials" / "t3" / "eval-val-flip.json").is_file()
    table = render_table(tmp_path / "trials")
    assert "| 81.23 (80.50) |" in table and "--split val --test-flip" in table


@pytest.mark.skipif(not (TRIALS / "README.md").is_file(), reason="no trials recorded yet")
def test_the_committed_trials_table_is_made_from_the_committed_records():
    assert (TRIALS / "README.md").read_text() == render_table(TRIALS)
