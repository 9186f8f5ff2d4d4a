"""Copy a finished run's weights into src/nin/weights/ with a card, so `nin eval NAME` and friends load them.

    python tools/ship_weights.py RUN_DIR NAME "COMMAND THAT TRAINED IT"

The card records the data set, recipe, epochs, test error, the training command and the sha256
that `nin` checks before loading the file.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

from nin.config import LOCATION_FIELDS   # the fields that say where things were, not what was done

REPO = Path(__file__).resolve().parents[1]


def ship(run_dir: Path, name: str, command: str) -> dict:
    card = json.loads((run_dir / "card.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    target = REPO / "src" / "nin" / "weights" / f"{name}.safetensors"
    target.parent.mkdir(exist_ok=True)
    shutil.copyfile(run_dir / "weights.safetensors", target)
    shipped = {
        "name": name, "weights": target.name, "sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
        "bytes": target.stat().st_size, "dataset": card["dataset"], "preset": card["preset"],
        "recipe": card["recipe"], "epochs": card["epochs"], "augment": card["augment"],
        "test_error": card["test_error"], "test_accuracy": card["test_accuracy"], "precision": card["precision"],
        "parameters": card["parameters"], "train_wall_seconds": card["wall_seconds"], "command": command,
        "config": {k: v for k, v in config.items() if k not in LOCATION_FIELDS},
    }
    (target.parent / f"{name}.json").write_text(json.dumps(shipped, indent=2) + "\n")
    return shipped


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    print(json.dumps(ship(Path(sys.argv[1]), sys.argv[2], sys.argv[3]), indent=2))
