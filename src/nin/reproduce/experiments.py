"""Experiment files (src/nin/experiments/*.json): a description, the paper's row and number, and TrainConfig fields."""

from __future__ import annotations

import json
from importlib import resources
from dataclasses import dataclass
from pathlib import Path

from nin.config import TrainConfig
from nin.errors import NinError

GROUPS = ("paper", "ours", "comparison")


@dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    group: str                 # paper: a row of the paper's tables; ours: this project's best; comparison: reduced budget
    paper_row: str
    paper_error: float | None  # the paper's test error (%) for the row, None if the paper has none
    train: dict                # TrainConfig fields
    # One record per machine kind instead of one for all: a run whose result is mostly the machine's speed
    # (make run's: a few epochs, as many as fit in its minutes)
    per_machine_kind: bool = False


def default_experiments_dir() -> Path:
    """The experiment files shipped in the package (src/nin/experiments/, installed with it)."""
    return Path(str(resources.files("nin") / "experiments"))


def load_experiment(path: Path) -> Experiment:
    try:
        d = json.loads(Path(path).read_text())
        experiment = Experiment(Path(path).stem, d["description"], d["group"], d["paper"]["row"],
                                d["paper"]["test_error"], d["train"],
                                bool(d.get("per_machine_kind", False)))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise NinError(f"{path}: not an experiment file ({type(e).__name__}: {e}); expected description, group, "
                       "paper.row, paper.test_error and train") from None
    if experiment.group not in GROUPS:
        raise NinError(f"{path}: group {experiment.group!r}: expected one of {', '.join(GROUPS)}")
    TrainConfig.from_dict(experiment.train, source=str(path))   # unknown keys are refused here
    return experiment


def load_experiments(folder: Path | None = None) -> dict[str, Experiment]:
    folder = Path(folder or default_experiments_dir())
    files = sorted(folder.glob("*.json"))
    if not files:
        raise NinError(f"{folder}: no experiment files (*.json) there")
    return {p.stem: load_experiment(p) for p in files}
