"""results/: runs.json (every finished run's record, kept across sessions) and README.md (the table)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from nin.reproduce.experiments import Experiment
from nin.files import atomic_write_json, atomic_write_text
from nin.rundir import read_metrics
from nin.tables import RESULTS, curves_table, results_table

RECORDS_FILE, TABLE_FILE, NOTES_FILE = "runs.json", "README.md", "notes.md"   # notes.md: written by hand
# Each record's run card and per-epoch metrics, kept beside the records (the run folders are not).
CARDS_DIR = "cards"
CARDS_SINCE = "2026-12-02"   # records of runs finished from this day on must have their card here

INTRO = """# Measured results beside the paper's

Written by `nin reproduce` from `runs.json` (one record per finished run: experiment, seed, test
error, epochs, wall time, machine, command and commit). Test error in percent; "n" is the number of
seeds, "±" the sample standard deviation. Paper numbers: Lin, Chen & Yan (2013), Tables 1-5 and
section 4.6 (the "paper row" column says which; the Fashion-MNIST comparison rows show the
paper's CIFAR-10 numbers for the same model variants, for the ordering only). Rows marked
"short budget" were stopped by `--budget-minutes` and say nothing about the paper's claims.
"""


def load_records(folder: Path) -> list[dict]:
    path = Path(folder) / RECORDS_FILE
    return json.loads(path.read_text()) if path.is_file() else []


def keep_card(folder: Path, record: dict, run_dir: Path) -> dict:
    """Copy the run's card.json and metrics.csv to folder/cards/EXPERIMENT/seed-N/ (seed-N-KIND/ for a record
    kept per machine kind); returns the record with the card's path (relative to folder) and sha256, which
    tests/test_reproduce.py checks."""
    kind = f"-{record['machine_kind']}" if record.get("machine_kind") else ""
    target = Path(folder) / CARDS_DIR / record["experiment"] / f"seed-{record['seed']}{kind}"
    target.mkdir(parents=True, exist_ok=True)
    for name in ("card.json", "metrics.csv"):
        shutil.copyfile(Path(run_dir) / name, target / name)
    card = target / "card.json"
    return {**record, "card": card.relative_to(folder).as_posix(),
            "card_sha256": hashlib.sha256(card.read_bytes()).hexdigest()}


CURVES_INTRO = """## Learning curves of the comparison runs

Training / test accuracy in percent by epoch, from the metrics.csv kept with each run's card in
cards/ (training accuracy is measured during the epoch, with dropout and the recipe's label
smoothing on). A run whose training accuracy is far above its test accuracy overfits.
"""


def kept_histories(folder: Path, records: list[dict]) -> dict[tuple[str, int], list[dict]]:
    """(experiment, seed) -> the per-epoch rows of the metrics.csv kept beside each record's card."""
    histories = {}
    for r in records:
        metrics = (Path(folder) / r["card"]).with_name("metrics.csv") if "card" in r else None
        if metrics is not None and metrics.is_file():
            histories[(r["experiment"], r["seed"])] = read_metrics(metrics)
    return histories


def record_key(record: dict) -> tuple[str, int, str]:
    """What a record is of: its experiment and seed, and its machine kind where the experiment keeps one record
    per kind (Experiment.per_machine_kind: make run's, whose result depends on how fast the machine is)."""
    return record["experiment"], record["seed"], record.get("machine_kind", "")


def merge(records: list[dict], new: list[dict]) -> list[dict]:
    """New records replace old ones of the same experiment, seed and (where kept per kind) machine kind."""
    keys = {record_key(r) for r in new}
    return sorted([r for r in records if record_key(r) not in keys] + new, key=record_key)


def write_results(folder: Path, experiments: dict[str, Experiment], records: list[dict],
                  not_run: dict[str, str], readme: Path | None = None) -> str:
    """Write runs.json and README.md (the table, then notes.md if there is one); returns the table.

    readme: a file whose RESULTS block gets the same table (the repository README); left alone if unmarked.
    """
    folder = Path(folder)
    table = results_table(experiments, records, not_run)
    curves = curves_table(experiments, records, kept_histories(folder, records))
    notes = (folder / NOTES_FILE).read_text() if (folder / NOTES_FILE).is_file() else ""
    atomic_write_json(folder / RECORDS_FILE, records)
    curves_section = f"{CURVES_INTRO}\n{curves}\n\n" if curves else ""
    atomic_write_text(folder / TABLE_FILE, f"{INTRO}\n{table}\n\n{curves_section}{notes}")
    spliced = RESULTS.splice(readme.read_text(), table) if readme is not None and readme.is_file() else None
    if spliced is not None:
        atomic_write_text(readme, spliced)
    return table
