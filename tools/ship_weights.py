"""Copy a finished run's weights into src/nin/weights/ with a card, so `nin eval NAME` and friends load them.

    python tools/ship_weights.py RUN_DIR NAME "COMMAND THAT TRAINED IT" [--data-dir DIR]

The card records the data set, recipe, epochs, test errors (single view, and flip TTA for models
trained with flips: `test_error_flip`), the training command and the sha256 that `nin` checks
before loading the file. `--remeasure NAME --data-dir DIR` measures a shipped model's errors again.

For GCN + ZCA models (CIFAR) the shipped file stores the run's float32 ZCA matrix, from the run's
preprocessing cache, packed losslessly (nin.data.preprocess.PackedSymmetric; files from runs before
that packing held a float16 copy, which is replaced here). The shipped file is then evaluated on the
test set in `--data-dir` exactly as `nin eval NAME` does, and once more with the cache's matrix: the
card records the shipped file's error (what users get), the error measured in training, how many test
predictions the packing changed on this machine (none, when it is lossless) and the sha256 of the
run's matrix, which tests/test_shipped_weights.py requires of the shipped file's unpacked matrix.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import torch

from nin.config import LOCATION_FIELDS   # the fields that say where things were, not what was done
from nin.data.preprocess import ZcaParams, matrix_sha256, zca_tensors
from nin.data.datasets import load_raw_test
from nin.evaluate import evaluate_on_test, pack_peak_flags, true_class_peak_flags
from nin.files import PREPROCESS_PREFIX, load_weights, save_weights
from nin.inference import Trained, load_trained, shipped_weights_dir
from nin.provenance import commit, machine
from nin.rundir import CARD_FILE, CONFIG_FILE, DATA_FILE, WEIGHTS_FILE
from nin.tables import PRETRAINED, pretrained_table
from nin.train.device import resolve_device, use_bf16

REPO = Path(__file__).resolve().parents[1]
PREDICTIONS_DIR = REPO / "tests" / "data"


def peak_flags_file(name: str) -> Path:
    """Per test image, one byte (nin.evaluate.pack_peak_flags): correct, and the true class's map peaks highest."""
    return PREDICTIONS_DIR / f"{name}-true-class-peaks.npy"


def run_zca(run_dir: Path) -> ZcaParams:
    """The float32 ZCA the run fitted, from its preprocessing cache (its weights file may hold a lossy copy)."""
    cache = Path(json.loads((run_dir / DATA_FILE).read_text())["cache"])
    return ZcaParams(np.load(cache / "zca_mean.npy"), np.load(cache / "zca_matrix.npy"))


def write_shipped_weights(run_dir: Path, target: Path, gcn_zca: bool) -> None:
    """The run's weights file, with the ZCA tensors rewritten from the exact matrix where there is one."""
    if not gcn_zca:
        shutil.copyfile(run_dir / WEIGHTS_FILE, target)
        return
    tensors, meta = load_weights(run_dir / WEIGHTS_FILE)
    tensors = {k: v for k, v in tensors.items() if not k.startswith(PREPROCESS_PREFIX)}
    packed = zca_tensors(run_zca(run_dir))
    tensors.update({PREPROCESS_PREFIX + k: torch.from_numpy(np.array(v)) for k, v in packed.items()})
    save_weights(target, tensors, meta)


def check_packed_zca(run_dir: Path, packed: Trained, name: str, data_dir: Path) -> dict:
    """Evaluate the shipped file and the same weights with the run's exact ZCA; returns the card fields."""
    exact = dataclasses.replace(packed, zca=run_zca(run_dir))
    # Runs before fit_zca symmetrised its product hold a matrix off by an ulp in a few entries below the
    # diagonal; the packing keeps the upper triangle, which must come back bit for bit.
    upper = np.triu(exact.zca.matrix)
    run_matrix = upper + np.triu(upper, 1).T
    if not np.array_equal(packed.zca.matrix, run_matrix):
        raise SystemExit(f"{name}: the shipped ZCA matrix differs from the run's ({run_dir})")
    shipped_eval = evaluate_on_test(packed, data_dir=data_dir, offline=True, flip=False)
    exact_eval = evaluate_on_test(exact, data_dir=data_dir, offline=True, flip=False)
    return {
        "zca_packing": {"test_images": len(exact_eval.predicted),
                        "predictions_changed": int((shipped_eval.predicted != exact_eval.predicted).sum()),
                        "test_error_with_exact_zca": round(exact_eval.result.error, 2),
                        "matrix_sha256": matrix_sha256(run_matrix)},
    }


def ship(run_dir: Path, name: str, command: str, data_dir: Path | None = None) -> dict:
    card = json.loads((run_dir / CARD_FILE).read_text())
    config = json.loads((run_dir / CONFIG_FILE).read_text())
    target = REPO / "src" / "nin" / "weights" / f"{name}.safetensors"
    target.parent.mkdir(exist_ok=True)
    write_shipped_weights(run_dir, target, card.get("preprocess") == "gcn-zca")
    shipped = {
        "name": name, "weights": target.name, "sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
        "bytes": target.stat().st_size, "dataset": card["dataset"], "data": card.get("data"),
        "preset": card["preset"], "recipe": card["recipe"], "epochs": card["epochs"], "augment": card["augment"],
        "precision": card["precision"], "test_flip": card.get("test_flip", False),
        "parameters": card["parameters"], "train_wall_seconds": card["wall_seconds"],
        "stopped_by_time_budget": card.get("stopped_by_time_budget"), "commit": card.get("commit"),
        "machine": card.get("machine"), "command": command,
        "config": {k: v for k, v in config.items() if k not in LOCATION_FIELDS},
    }
    trained = load_trained(target)   # the shipped file, as users load it
    if data_dir is not None and trained.model.has_class_maps:
        test = load_raw_test(card["dataset"], data_dir, offline=True)
        correct, strongest = true_class_peak_flags(trained, test.images, test.labels)
        np.save(peak_flags_file(name), pack_peak_flags(correct, strongest))
        right, peaks = int(correct.sum()), int(strongest.sum())
        shipped["true_class_peak"] = {"correct": right, "true_class_map_has_highest_peak": peaks,
                                      "percent": round(100 * peaks / right, 2)}
    if card.get("preprocess") == "gcn-zca":
        if data_dir is None:
            raise SystemExit(f"{name} is a GCN + ZCA model: pass --data-dir with its data set, to check the packed ZCA")
        shipped["test_error_in_training"] = card["test_error"]   # on float16 cached inputs with the exact ZCA
        shipped.update(check_packed_zca(run_dir, trained, name, data_dir))
    shipped.update(measured_errors(trained, data_dir) if data_dir is not None else
                   {"test_error": card["test_error"], "test_accuracy": card["test_accuracy"],
                    **{k: card[k] for k in ("test_error_flip", "test_accuracy_flip") if k in card}})
    write_card(shipped)
    return shipped


def measured_errors(trained: Trained, data_dir: Path) -> dict:
    """The shipped file's test errors as `nin eval` gives them: single view (`test_error`, the paper's kind of
    number) and, for models trained with flips, flip TTA in fields of its own; with where they were measured,
    since bf16 and fp32 (CPUs without bf16) move a few near-ties."""
    single = evaluate_on_test(trained, data_dir=data_dir, offline=True, flip=False).result
    fields = {"test_error": round(single.error, 2), "test_accuracy": round(single.accuracy, 2)}
    if trained.test_flip:
        flipped = evaluate_on_test(trained, data_dir=data_dir, offline=True, flip=True).result
        fields.update(test_error_flip=round(flipped.error, 2), test_accuracy_flip=round(flipped.accuracy, 2))
    precision = "bf16" if use_bf16(resolve_device("auto"), "auto") else "fp32"
    return {**fields, "errors_measured_on": {"machine": machine(), "precision": precision, "commit": commit()}}


def remeasure(name: str, data_dir: Path) -> dict:
    """Measure a shipped model's errors again (single view and flip TTA) and rewrite its card and the table."""
    path = shipped_weights_dir() / f"{name}.json"
    card = json.loads(path.read_text())
    if card.get("test_flip") and "test_error_flip" not in card:
        # a card from before single view had its own fields: its errors in training and with the exact ZCA were flip TTA
        if "test_error_in_training" in card:
            card["test_error_flip_in_training"] = card.pop("test_error_in_training")
        if "test_error_with_exact_zca" in card.get("zca_packing", {}):
            card["zca_packing"]["test_error_flip_with_exact_zca"] = card["zca_packing"].pop("test_error_with_exact_zca")
    card.update(measured_errors(load_trained(name), data_dir))
    write_card(card)
    return card


def write_card(card: dict) -> None:
    (shipped_weights_dir() / f"{card['name']}.json").write_text(json.dumps(card, indent=2) + "\n")
    write_readme_table()


def write_readme_table() -> None:
    """The README's table of shipped models, from every card in src/nin/weights/."""
    cards = [json.loads(p.read_text()) for p in sorted(shipped_weights_dir().glob("*.json"))]
    readme = REPO / "README.md"
    readme.write_text(PRETRAINED.splice(readme.read_text(), pretrained_table(cards)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, nargs="?", help="omit it (and NAME, COMMAND) to only rewrite the README's table")
    parser.add_argument("name", nargs="?")
    parser.add_argument("command", nargs="?", help="the command that trained it, as the card should show it")
    parser.add_argument("--data-dir", type=Path, help="the data set's folder (needed for GCN + ZCA models)")
    parser.add_argument("--remeasure", metavar="NAME", help="measure shipped model NAME's test errors again "
                        "(with --data-dir) and rewrite its card")
    args = parser.parse_args()
    if args.remeasure:
        if args.data_dir is None:
            parser.error("--remeasure needs --data-dir")
        print(json.dumps(remeasure(args.remeasure, args.data_dir), indent=2))
    elif args.run_dir is None:
        write_readme_table()
    else:
        print(json.dumps(ship(args.run_dir, args.name, args.command, args.data_dir), indent=2))
