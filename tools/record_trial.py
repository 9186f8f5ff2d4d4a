"""Record a finished study run in results/trials/ and remake the trials table.

    python tools/record_trial.py RUN_DIR NAME --study STUDY --change "WHAT CHANGED" --command "COMMAND" [--note TEXT]
    python tools/record_trial.py --table        # only remake results/trials/README.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nin.reproduce.trials import record_trial, write_table

TRIALS = Path(__file__).resolve().parents[1] / "results" / "trials"

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, nargs="?")
    parser.add_argument("name", nargs="?")
    parser.add_argument("--study")
    parser.add_argument("--change", default="")
    parser.add_argument("--command")
    parser.add_argument("--note", default="")
    parser.add_argument("--table", action="store_true")
    args = parser.parse_args()
    if not args.table:
        if not (args.run_dir and args.name and args.study and args.command):
            parser.error("RUN_DIR, NAME, --study and --command are needed to record a trial")
        print(record_trial(args.run_dir, TRIALS, args.name, args.study, args.change, args.command, args.note))
    print(write_table(TRIALS))
