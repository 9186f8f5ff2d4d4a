"""Peak resident memory of `nin train` with the shipped CIFAR recipes, preprocessing included.

    python benchmarks/train_memory.py --data-dir data [--work DIR] [--out results/memory-cifar.json]

For the experiments `cifar10-aug` and `cifar100` (the recipes of the shipped nin-cifar10 and
nin-cifar100), two runs each, in child processes: the first with an empty cache, so it fits GCN +
ZCA on the 50,000 training images and writes the cache; the second reads that cache. Each run is
the experiment's own settings cut short by a time budget that counts loading too (3 minutes with
an empty cache, 2 with the cache), and must have trained for part of an epoch, so that the figure,
its card's `peak_memory_gb` (the process's VmHWM), covers training. Target (issue 16): under 4 GB.
docs/speed.md's memory table is made from the JSON this writes (`nin.tables.memory_table`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from nin.files import atomic_write_json
from nin.provenance import commit, machine
from nin.reproduce.experiments import load_experiments
from nin.rundir import CARD_FILE

EXPERIMENTS = ("cifar10-aug", "cifar100")
LENGTH_FIELDS = ("epochs", "checkpoint_every")   # replaced by the time budget
BUDGET_MINUTES = {True: 3, False: 2}   # first run (empty cache), second


def run(experiment: str, settings: dict, data_dir: Path, cache: Path, out: Path, minutes: float) -> dict:
    config = out.with_suffix(".json")
    config.write_text(json.dumps({k: v for k, v in settings.items() if k not in LENGTH_FIELDS}))
    subprocess.run([sys.executable, "-m", "nin", "train", "--config", str(config), "--data-dir", str(data_dir),
                    "--offline", "--cache-dir", str(cache), "--out", str(out), "--epochs", "1",
                    "--time-budget-minutes", str(minutes), "--no-progress"], check=True, stdout=subprocess.DEVNULL)
    card = json.loads((out / CARD_FILE).read_text())
    if not card["epochs"]:
        sys.exit(f"{out}: loading took the whole {minutes}-minute budget, so the peak would not include "
                 "training; rerun on a less busy machine")
    return {"experiment": experiment, "peak_memory_gb": card["peak_memory_gb"], "epochs": card["epochs"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=Path("results/memory-cifar.json"))
    args = parser.parse_args()
    experiments = load_experiments()
    work = Path(tempfile.mkdtemp(prefix="nin-memory-", dir=args.work))
    rows = []
    for name in EXPERIMENTS:
        settings, cache = experiments[name].train, work / f"cache-{name}"
        for first in (True, False):
            row = run(name, settings, args.data_dir.resolve(), cache, work / f"{name}-{'first' if first else 'cached'}",
                      BUDGET_MINUTES[first])
            rows.append({**row, "cache": "empty: fits GCN + ZCA, writes the cache" if first else "present"})
            print(f"{name}, cache {rows[-1]['cache']}: peak {row['peak_memory_gb']:.2f} GB "
                  f"({row['epochs']:.2f} epochs trained)")
    atomic_write_json(args.out, {
        "command": "python benchmarks/train_memory.py --data-dir data", "commit": commit(), "machine": machine(),
        "date": datetime.datetime.now(datetime.timezone.utc).date().isoformat(), "target_gb": 4.0, "runs": rows})
    print(f"wrote {args.out}; run folders in {work}")


if __name__ == "__main__":
    main()
