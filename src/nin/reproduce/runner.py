"""Running experiments: one run folder per (experiment, seed), resumed or reused when already there."""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from pathlib import Path

from nin.config import LOCATION_FIELDS, TrainConfig, resume_changes
from nin.data.datasets import default_data_dir, describe_data, locate
from nin.errors import NinError
from nin.provenance import REPO, machine, machine_kind
from nin.reproduce.experiments import Experiment
from nin.reproduce.results import keep_card, load_records, merge, write_results
from nin.rundir import CARD_FILE, CHECKPOINT_FILE, CONFIG_FILE, WORK_FILES
from nin.train.run import fit


def find_data_dir(dataset: str, given: Path | None) -> tuple[Path | None, str | None]:
    """(folder that holds the data set, None) or (None, why not). Never downloads, reads or extracts.

    Without --data-dir: $NIN_DATA (else ./data), then ../shared/data beside the repository.
    """
    candidates = [Path(given)] if given else [default_data_dir(), REPO.parent / "shared" / "data"]
    reasons = []
    for folder in candidates:
        try:
            locate(dataset, folder, offline=True)
            return folder, None
        except NinError as e:
            reasons.append(str(e))
    return None, f"{dataset} data not found ({reasons[0].split('; ')[0]})"   # what is missing, not the advice


@dataclass(frozen=True)
class Plan:
    """How `nin reproduce` runs the experiments it is given."""
    seeds: int = 1                           # seeds 0 .. seeds - 1 of each
    runs_dir: Path = Path("runs/reproduce")  # RUNS_DIR/EXPERIMENT/seed-S
    data_dir: Path | None = None             # None: $NIN_DATA or ./data, then ../shared/data
    budget_minutes: float | None = None      # stop each run after this many minutes (a short budget)
    progress: bool = False                   # progress bars


def reproduce(experiments: dict[str, Experiment], chosen: list[str], plan: Plan, results_dir: Path,
              log=print) -> str:
    """Run `plan.seeds` seeds of each chosen experiment (finished runs are reused, unfinished ones resumed) and
    record them in results_dir (runs.json, the cards, the tables); returns the table.

    The results are written after each experiment, so an interruption loses nothing finished.
    """
    records, not_run = load_records(results_dir), {}
    readme = Path(results_dir).resolve().parent / "README.md"   # updated only where it has the table's markers
    located: dict[str, tuple] = {}

    def locate_data(dataset: str) -> tuple[Path | None, str | None]:   # one probe per data set
        if dataset not in located:
            located[dataset] = find_data_dir(dataset, plan.data_dir)
        return located[dataset]

    for name in chosen:
        exp = experiments[name]
        found, reason = locate_data(exp.train["dataset"])
        if found is None:
            log(f"{name}: not run: {reason}")
            not_run[name] = reason
            continue
        command = f"nin reproduce {name} --seeds {plan.seeds}" + (
            f" --budget-minutes {plan.budget_minutes:g}" if plan.budget_minutes else "")
        new = [keep_card(results_dir, run_experiment(exp, seed, plan, found, command, log),
                         run_config(exp, seed, plan, found).out)
               for seed in range(plan.seeds)]
        records = merge(records, new)
        write_results(results_dir, experiments, records, not_run, readme)
    for name, exp in experiments.items():   # rows never run say why: the data is missing, or only not run yet
        if name not in not_run and not any(r["experiment"] == name for r in records):
            not_run[name] = locate_data(exp.train["dataset"])[1] or "the data is here; not run yet (see results/notes.md)"
    return write_results(results_dir, experiments, records, not_run, readme)


def run_config(exp: Experiment, seed: int, plan: Plan, data_dir: Path) -> TrainConfig:
    """The settings of one seed of an experiment; `data_dir`: where its data set was found."""
    return TrainConfig.from_dict({**exp.train, "seed": seed, "out": str(plan.runs_dir / exp.name / f"seed-{seed}"),
                                  "data_dir": str(data_dir), "offline": True, "progress": plan.progress,
                                  # a recipe annealed over its own budget keeps it unless one is given
                                  "time_budget_minutes": plan.budget_minutes or exp.train.get("time_budget_minutes")}
                                 ).resolved()


def run_experiment(exp: Experiment, seed: int, plan: Plan, data_dir: Path, command: str, log=print) -> dict:
    """Train (or reuse, or resume) one seed of an experiment; returns its results record."""
    cfg = run_config(exp, seed, plan, data_dir)
    out = Path(cfg.out)
    saved = json.loads((out / CONFIG_FILE).read_text()) if (out / CONFIG_FILE).is_file() else None
    same = saved is not None and _result_fields(saved) is not None and _result_fields(saved) == _result_fields(cfg.to_dict())
    if same and (out / CARD_FILE).is_file():
        log(f"{exp.name} seed {seed}: finished earlier in {out}; reusing it")
        card = json.loads((out / CARD_FILE).read_text())
    else:
        resume = same and (out / CHECKPOINT_FILE).is_file()
        if not same and any((out / name).exists() for name in WORK_FILES):
            changed = ", ".join(resume_changes(_result_fields(saved) or {}, _result_fields(cfg.to_dict()))) \
                if saved else "its config.json is missing"
            raise NinError(f"{out}: holds a run of other settings than the experiment {exp.name} now gives ({changed}); "
                           "move that folder away, or pass another --runs-dir")
        log(f"{exp.name} seed {seed}: {'resuming' if resume else 'training'} in {out}")
        card = fit(cfg, resume=resume, log=log)
    last_epoch = card.get("epochs")
    ran_on = card.get("machine") or machine()
    return {
        # single view, as the paper's errors; flip TTA (cards from before that field held it in test_error) apart
        "experiment": exp.name, "seed": seed, "test_error": card["test_error"],
        **({"test_error_flip": card["test_error_flip"]} if "test_error_flip" in card else {}), "epochs": last_epoch,
        "wall_seconds": card["wall_seconds"],
        # a run annealed over its budget is meant to stop there: that is not a short budget
        "short_budget": bool(card.get("stopped_by_time_budget")) and not cfg.anneal_by_time,
        "budget_minutes": cfg.time_budget_minutes,
        "data": (card.get("data") or describe_data(cfg.dataset, data_dir)) + _data_options(cfg),
        "machine": ran_on, "commit": card.get("commit") or "unknown (not recorded)",
        "command": command,
        "date": _finished_date(card, out / CARD_FILE),
        **({"machine_kind": machine_kind(ran_on)} if exp.per_machine_kind else {}),
    }


def _finished_date(card: dict, card_path: Path) -> str:
    """The day the run finished, so that a reused run keeps its own date; cards before
    the `finished` field fall back to the day the card was written."""
    if card.get("finished"):
        return card["finished"]
    written = datetime.datetime.fromtimestamp(card_path.stat().st_mtime, datetime.timezone.utc)
    return written.date().isoformat()


def _result_fields(config: dict) -> dict | None:
    """The fields that change the result, with defaults filled in for keys older run folders lack."""
    try:
        full = json.loads(json.dumps(TrainConfig.from_dict(config).to_dict()))
    except NinError:
        return None
    return {k: v for k, v in full.items() if k not in LOCATION_FIELDS}


def _data_options(cfg: TrainConfig) -> str:
    options = [cfg.preprocess] if cfg.preprocess not in (None, "none") else []
    if cfg.augment:
        options.append("augmented")
    return f", {' + '.join(options)}" if options else ""
