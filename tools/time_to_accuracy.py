"""results/time-to-accuracy.json and .png: test accuracy against training minutes, from kept cards.

    python tools/time_to_accuracy.py EXPERIMENT [EXPERIMENT ...] --targets cifar10 cifar10-aug [--name NAME]

Each EXPERIMENT's seed-0 record in results/runs.json names its card in results/cards/, and the
metrics.csv beside the card gives the curve. --targets: experiments whose paper error is drawn as a
line (as accuracy). --name: the files' name in results/ (default time-to-accuracy; one figure a data
set). tests/test_reproduce.py recomputes every results/time-to-accuracy*.json from the cards. Each
curve says its view: single view (the paper's kind of number), or flip TTA for runs whose cards
predate single-view evaluation each epoch.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nin.files import atomic_write_bytes, atomic_write_json
from nin.report.plots import accuracy_against_minutes
from nin.reproduce.curves import minutes_axis, minutes_to_reach, time_to_accuracy
from nin.reproduce.experiments import load_experiments
from nin.reproduce.results import load_records
from nin.rundir import METRICS_FILE, read_metrics

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results"
NAME = "time-to-accuracy"


def build(experiments: list[str], targets: list[str], budget_minutes: float) -> dict:
    known = load_experiments()
    records = {(r["experiment"], r["seed"]): r for r in load_records(RESULTS)}
    paper = {f"paper, {known[t].paper_row}: {100 - known[t].paper_error:.2f}%": round(100 - known[t].paper_error, 2)
             for t in targets}
    chosen = {name: records[(name, 0)] for name in experiments}
    curves = {name: time_to_accuracy(read_metrics((RESULTS / record["card"]).parent / METRICS_FILE))
              for name, record in chosen.items()}
    axis = minutes_axis(list(curves.values()))
    runs = []
    for name, record in chosen.items():
        points = curves[name]
        card = json.loads((RESULTS / record["card"]).read_text())
        # Runs evaluate single view each epoch; cards from before test_error_flip evaluated with flip TTA.
        view = "flip TTA" if card.get("test_flip") and "test_error_flip" not in card else "single view"
        runs.append({"experiment": name, "seed": 0, "description": known[name].description, "view": view,
                     "command": record["command"], "commit": record["commit"], "data": record["data"],
                     "machine": record["machine"],
                     "card": record["card"], "card_sha256": record["card_sha256"], "points": points,
                     "minutes_to_paper_accuracy": {label: minutes_to_reach(points, acc, axis) for label, acc in paper.items()}})
    return {"budget_minutes": budget_minutes, "minutes_axis": axis, "target_experiments": targets, "targets": paper,
            "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiments", nargs="+")
    parser.add_argument("--targets", nargs="*", default=[])
    parser.add_argument("--budget-minutes", type=float, default=150)
    parser.add_argument("--name", default=NAME, help=f"the files' name in results/ (default {NAME})")
    args = parser.parse_args()
    data = build(args.experiments, args.targets, args.budget_minutes)
    atomic_write_json(RESULTS / f"{args.name}.json", data)
    # The machine in the legend: curves from different machines differ in speed as well as in recipe.
    # The view too: the paper's numbers are single view, and older runs' curves were recorded with flip TTA only.
    curves = {f"{run['experiment']} (seed {run['seed']}, {run['machine']}, {run['view']})": run["points"]
              for run in data["runs"]}
    atomic_write_bytes(RESULTS / f"{args.name}.png",
                       accuracy_against_minutes(curves, data["targets"], data["budget_minutes"], data["minutes_axis"]))
    print(f"written: {RESULTS / args.name}.json, .png")


if __name__ == "__main__":
    main()
