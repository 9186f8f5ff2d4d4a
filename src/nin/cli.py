"""`nin`: the command line. A thin layer over the library; all checks end in NinError (exit 2)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nin.errors import NinError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (plus exit code 2), not a usage dump."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _input_shape(text: str) -> tuple[int, int, int]:
    try:
        c, h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected CxHxW such as 3x32x32, got {text!r}") from None
    if min(c, h, w) < 1:
        raise argparse.ArgumentTypeError(f"every size must be positive, got {text!r}")
    return c, h, w


# ---------------------------------------------------------------- summary

def cmd_summary(args) -> int:
    from nin.models.registry import build_model
    from nin.models.summary import format_summary, summarize

    model = build_model(args.preset)
    # The size of the data set each preset was made for: 28x28 for MNIST, else 32x32.
    default_size = 28 if model.config.in_channels == 1 else 32
    shape = args.input or (model.config.in_channels, default_size, default_size)
    if shape[0] != model.config.in_channels:
        raise NinError(f"--input {'x'.join(map(str, shape))}: {args.preset} takes {model.config.in_channels} channels")
    print(f"{args.preset}, input {'x'.join(map(str, shape))}")
    print(format_summary(summarize(model, shape), sum(p.numel() for p in model.parameters())))
    return 0


# ---------------------------------------------------------------- train

# Flags that map one-to-one onto TrainConfig fields (flag name = field name with dashes).
_TRAIN_FLAGS = {
    "dataset": (str, "data set: mnist, fashion-mnist, cifar10, cifar100 or svhn"),
    "preset": (str, "model preset (see `nin summary --help`)"),
    "recipe": (str, "paper or fast (see README, Training recipes)"),
    "epochs": (int, "epochs (paper recipe: the most; the plateau rule may stop it earlier)"),
    "batch_size": (int, "mini-batch size"),
    "lr": (float, "learning rate (fast recipe: the peak)"),
    "momentum": (float, "SGD momentum"),
    "weight_decay": (float, "L2 weight decay (not on biases)"),
    "label_smoothing": (float, "label smoothing of the cross-entropy"),
    "clip_grad_norm": (float, "clip the gradients' global L2 norm to this; 0: off"),
    "init": (str, "normal (authors' N(0, 0.05)) or lsuv (data-dependent; see README)"),
    "warmup_epochs": (float, "linear learning-rate warm-up, in epochs"),
    "patience": (int, "paper recipe: epochs without improvement that make a plateau"),
    "min_delta": (float, "paper recipe: accuracy gain (points) that counts as improvement"),
    "seed": (int, "random seed: same seed, same weights on CPU"),
    "precision": (str, "auto (bf16 where native), bf16 or fp32"),
    "device": (str, "auto, cpu, cuda or cuda:N"),
    "data_dir": (str, "folder with the data set files (default $NIN_DATA, else ./data)"),
    "train_subset": (int, "train on the first N training images only"),
    "val_split": (str, "none, or paper: hold out the paper's validation set and evaluate on it each epoch"),
    "preprocess": (str, "none, gcn-zca or lcn (default: what the paper did for the data set)"),
    "cache_dir": (str, "where preprocessed arrays are cached (default $NIN_CACHE, else ~/.cache/nin)"),
    "out": (str, "run folder (default runs/<dataset>-<preset>-<recipe>)"),
}


def _add_train_args(p: argparse.ArgumentParser) -> None:
    for field, (kind, help_text) in _TRAIN_FLAGS.items():
        p.add_argument(f"--{field.replace('_', '-')}", dest=field, type=kind, default=None, help=help_text)
    p.add_argument("--config", type=Path, help="JSON file of config fields; flags override it")
    p.add_argument("--offline", action="store_true", default=None, help="never touch the network")
    p.add_argument("--no-class-map-relu", dest="class_map_relu", action="store_false", default=None,
                   help="drop the ReLU on the class-map layer (a model change; the paper keeps it)")
    p.add_argument("--augment", action="store_true", default=None,
                   help="random translations, plus horizontal flips for CIFAR (never for digits)")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None, help="no progress bars")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")


def train_config_from_args(args) -> "TrainConfig":
    from nin.config import TrainConfig, load_config_file
    from nin.train.run import CONFIG_FILE

    values: dict = {}
    if args.resume is not None:
        values.update(load_config_file(args.resume / CONFIG_FILE))
        values["out"] = str(args.resume)
    if args.config is not None:
        values.update(load_config_file(args.config))
    fields = [*_TRAIN_FLAGS, "offline", "class_map_relu", "progress", "augment"]
    values.update({f: getattr(args, f) for f in fields if getattr(args, f) is not None})
    return TrainConfig.from_dict(values).resolved()


def cmd_train(args) -> int:
    from nin.train.run import fit

    cfg = train_config_from_args(args)
    card = fit(cfg, resume=args.resume is not None)
    print(f"test accuracy {card['test_accuracy']:.2f}% (error {card['test_error']:.2f}%) after {card['epochs']} "
          f"epochs, {card['wall_seconds']:.0f} s; run folder {cfg.out}")
    return 0


# ---------------------------------------------------------------- eval

def cmd_eval(args) -> int:
    from nin.data.batches import make_prepare
    from nin.data.sources import load_dataset
    from nin.inference import load_trained, meta_dataset, to_device
    from nin.train.checkpoint import atomic_write_json
    from nin.train.device import autocast, resolve_device, use_bf16
    from nin.train.loop import evaluate

    model, meta = load_trained(args.checkpoint)
    name = meta_dataset(meta, args.dataset)
    # The same splits and preprocessing as in training (ZCA is fitted on the training split).
    data = load_dataset(name, args.data_dir, args.offline, meta.get("val_split", "none"), meta.get("preprocess"),
                        meta.get("seed", 0), args.cache_dir)
    device = resolve_device(args.device)
    model = to_device(model, device)
    prepare = make_prepare(tuple(meta["mean"]), tuple(meta["std"]), device, channels_last=True)
    amp = autocast(device, use_bf16(device, args.precision))
    result = evaluate(model, data.test.images, data.test.labels, args.batch_size, prepare, amp, device,
                      data.info.num_classes)
    names = data.info.class_names
    print(f"{name} test set, {len(data.test.labels)} images: error {result.error:.2f}% (accuracy {result.accuracy:.2f}%)")
    print("per-class accuracy:")
    for cls, acc in zip(names, result.per_class_accuracy()):
        print(f"  {cls:<12} {acc:6.2f}%")
    print("confusion matrix (rows: true class, columns: predicted):")
    for row in result.confusion.tolist():
        print("  " + " ".join(f"{v:5d}" for v in row))
    if args.json:
        atomic_write_json(args.json, {
            "dataset": name, "checkpoint": str(args.checkpoint), "images": len(data.test.labels),
            "test_error": round(result.error, 4), "test_accuracy": round(result.accuracy, 4),
            "test_loss": round(result.loss, 6), "class_names": list(names),
            "per_class_accuracy": [round(a, 4) for a in result.per_class_accuracy()],
            "confusion_matrix": result.confusion.tolist(),
        })
    return 0


# ---------------------------------------------------------------- main

def build_parser() -> argparse.ArgumentParser:
    from nin.models.registry import PRESETS

    parser = _Parser(prog="nin", description="Network In Network (Lin, Chen & Yan, 2013): train, evaluate, inspect.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("summary", help="layer-by-layer shapes, parameters and multiply-accumulates")
    p.add_argument("preset", help=f"one of {', '.join(PRESETS)}")
    p.add_argument("--input", type=_input_shape, help="input CxHxW (default 3x32x32, or 1x28x28 for nin-mnist)")
    p.set_defaults(run=cmd_summary)

    p = sub.add_parser("train", help="train a model; writes a run folder")
    _add_train_args(p)
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("eval", help="test error, per-class accuracy and confusion matrix of a trained model")
    p.add_argument("checkpoint", type=Path, help="a run folder or a weights.safetensors file")
    p.add_argument("--dataset", help="data set to evaluate on (default: the one it was trained on)")
    p.add_argument("--data-dir", type=Path, default=None, help="folder with the data set files")
    p.add_argument("--offline", action="store_true", help="never touch the network")
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    p.add_argument("--cache-dir", type=Path, default=None, help="preprocessed arrays (default $NIN_CACHE, else ~/.cache/nin)")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    p.add_argument("--device", default="auto")
    p.set_defaults(run=cmd_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:
        print(f"nin {args.command}: error: unrecognized arguments: {' '.join(unknown)} "
              f"(see 'nin {args.command} --help')", file=sys.stderr)
        return 2
    try:
        return args.run(args)
    except NinError as e:
        print(f"nin {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"nin {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
