"""The resolved configuration of a training run: defaults, then a config file, then flags."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from nin.data.registry import DATASETS, PREPROCESSINGS, VAL_SPLITS
from nin.errors import NinError
from nin.recipe import RECIPES

# TrainConfig fields that say where things are or how progress is shown, not what is computed.
LOCATION_FIELDS = ("out", "data_dir", "offline", "cache_dir", "progress")
INITS = ("normal", "lsuv")
# TrainConfig fields a resume may change: how long to train, and where and how things are shown.
# Everything else changes the result, so a resume that changes it is refused.
RESUMABLE_FIELDS = ("epochs", "time_budget_minutes", "checkpoint_every", *LOCATION_FIELDS)
PRECISIONS = ("auto", "bf16", "fp32")


DATASET_NAMES = tuple(DATASETS)
# TrainConfig fields that default to the chosen recipe's value (nin.recipe.Recipe has each)
RECIPE_FIELDS = ("lr", "momentum", "weight_decay", "label_smoothing", "clip_grad_norm", "init", "warmup_epochs",
                 "patience", "min_delta", "epochs")


def _preset_names() -> tuple[str, ...]:
    from nin.models.registry import PRESETS   # only when checked: reading a config needs no model code
    return tuple(PRESETS)


def _field(default, help: str, *, choices=None, minimum: float | None = None,
           above: float | None = None, below: float | None = None, flag: str | None = None):
    """A TrainConfig field with what its flag and its checks need: help text, allowed values, range.

    `choices`: a tuple, or a function that returns one (when the list lives elsewhere).
    `minimum` is allowed, `above` and `below` are not (open bounds). `flag`: for booleans, the
    flag that sets the non-default value (--augment, --no-progress).
    """
    return dataclasses.field(default=default, metadata={
        "help": help, "choices": choices, "minimum": minimum, "above": above, "below": below, "flag": flag})


@dataclass
class TrainConfig:
    dataset: str = _field("fashion-mnist", "data set", choices=DATASET_NAMES)
    preset: str | None = _field(None, "model preset (see `nin summary --help`; default: the paper's model for the "
                                "data set)", choices=_preset_names)
    recipe: str = _field("fast", "training recipe (see docs, Training recipes); the flags below that say "
                         "'default: the recipe's' override one of its fields", choices=tuple(RECIPES))
    epochs: int | None = _field(None, "epochs (paper recipe: the most; the plateau rule may stop it earlier)",
                                minimum=1)
    batch_size: int = _field(128, "mini-batch size", minimum=1)
    lr: float | None = _field(None, "learning rate (fast recipe: the peak; default: the recipe's)", above=0)
    momentum: float | None = _field(None, "SGD momentum (default: the recipe's)", minimum=0, below=1)
    weight_decay: float | None = _field(None, "L2 weight decay, not on biases (default: the recipe's)", minimum=0)
    label_smoothing: float | None = _field(None, "label smoothing of the cross-entropy (default: the recipe's)",
                                           minimum=0, below=1)
    clip_grad_norm: float | None = _field(None, "clip the gradients' global L2 norm to this; 0: off (default: the "
                                          "recipe's)", minimum=0)
    init: str | None = _field(None, "normal (authors' N(0, 0.05)) or lsuv (data-dependent; see docs; default: the "
                              "recipe's)", choices=INITS)
    warmup_epochs: float | None = _field(None, "linear learning-rate warm-up, in epochs (default: the recipe's)",
                                         minimum=0)
    patience: int | None = _field(None, "paper recipe: epochs without improvement that make a plateau (default: "
                                  "the recipe's)", minimum=1)
    min_delta: float | None = _field(None, "paper recipe: accuracy gain (points) that counts as improvement "
                                     "(default: the recipe's)", minimum=0)
    lr_drop_epochs: list[int] | None = _field(None, "paper recipe: divide the learning rate by 10 after these epochs "
                                              "(comma-separated, e.g. 200,230: the authors' CIFAR-10 schedule) "
                                              "instead of at training-accuracy plateaus; --epochs then ends the run",
                                              minimum=1)
    class_map_relu: bool = _field(True, "drop the ReLU on the class-map layer (a model change; the paper keeps it)",
                                  flag="--no-class-map-relu")
    dropout: float | None = _field(None, "rate of every dropout layer the preset has (default: the preset's, 0.5); "
                                   "0 turns them off", minimum=0, below=1)
    seed: int = _field(0, "random seed: same seed, same weights on CPU", minimum=0)
    precision: str = _field("auto", "auto (bf16 where native), bf16 or fp32", choices=PRECISIONS)
    device: str = _field("auto", "auto, cpu, cuda or cuda:N")
    data_dir: str | None = _field(None, "folder with the data set files (default $NIN_DATA, else ./data)")
    offline: bool = _field(False, "never touch the network", flag="--offline")
    train_subset: int | None = _field(None, "train on the first N training images only", minimum=1)
    val_split: str = _field("none", "none, or paper: hold out the paper's validation set and evaluate on it each "
                            "epoch", choices=VAL_SPLITS)
    preprocess: str | None = _field(None, "none, gcn-zca or lcn (default: what the paper did for the data set)",
                                    choices=PREPROCESSINGS)
    augment: bool = _field(False, "random translations, plus horizontal flips for CIFAR and Fashion-MNIST (never "
                           "for digits)", flag="--augment")
    cutout: int = _field(0, "with --augment, zero a random N x N square of each training image (Cutout; scaled "
                         "with the image on --small-crop-epochs); 0: off", minimum=0)
    test_flip: bool = _field(False, "evaluate each image and its mirror image and average the logits (flip "
                             "test-time augmentation), in training and wherever the weights are used; for data sets "
                             "trained with flips", flag="--test-flip")
    ema_decay: float = _field(0.0, "keep an exponential moving average of the weights with this decay per step "
                              "(0.999: about the last 1,000 steps) and evaluate and save it instead of the last "
                              "weights; 0: off", minimum=0, below=1)
    small_crop_epochs: int = _field(0, "train the first N epochs on random crops of --small-crop-size pixels "
                                      "(and flips where --augment flips), which cost less; 0: off", minimum=0)
    small_crop_size: int = _field(24, "side of the crops of --small-crop-epochs", minimum=8)
    cache_dir: str | None = _field(None, "where preprocessed arrays are cached (default $NIN_CACHE, else "
                                   "~/.cache/nin)")
    out: str | None = _field(None, "run folder (default runs/<dataset>-<preset>-<recipe>)")
    progress: bool = _field(True, "no progress bars", flag="--no-progress")
    time_budget_minutes: float | None = _field(None, "stop training after this many minutes of this process (with "
                                               "--anneal-by-time: of training), then evaluate and save", above=0)
    anneal_by_time: bool = _field(False, "fast recipe: the learning rate's cosine runs out after --time-budget-minutes "
                                  "of training (loading not counted, as on the card) rather than at --epochs (then "
                                  "only the most), so the run anneals fully within its budget on a machine of any "
                                  "speed; the steps' rates then depend on timing",
                                  flag="--anneal-by-time")
    checkpoint_every: int = _field(0, "also write the checkpoint every N training steps (default: at each epoch's "
                                   "end only)", minimum=0)
    compile: bool = _field(False, "torch.compile the model (faster on GPUs; measured slower on a 2-core CPU)",
                           flag="--compile")

    def resolved(self) -> "TrainConfig":
        """A copy with the recipe's defaults filled in and every value checked."""
        check_values(dataclasses.asdict(self), "")
        if self.test_flip and not DATASETS[self.dataset].augment_flip:
            raise NinError(f"--test-flip: {self.dataset} is not trained with mirror images (digits are not symmetric); "
                           "leave it off")
        if self.cutout and not self.augment:
            raise NinError("--cutout: needs --augment (it is one more augmentation of the training images)")
        recipe = RECIPES[self.recipe]
        if self.lr_drop_epochs and recipe.schedule != "plateau":
            raise NinError("--lr-drop-epochs: the fast recipe anneals by cosine; use it with --recipe paper")
        if self.anneal_by_time and (recipe.schedule != "cosine" or not self.time_budget_minutes):
            raise NinError("--anneal-by-time: needs --recipe fast and --time-budget-minutes (the minutes the "
                           "learning rate anneals over)")
        preset = self.preset or DATASETS[self.dataset].default_preset
        # every field left unset takes the recipe's value
        from_recipe = {name: getattr(recipe, name) for name in RECIPE_FIELDS if getattr(self, name) is None}
        return dataclasses.replace(self, preset=preset, out=self.out or f"runs/{self.dataset}-{preset}-{self.recipe}",
                                   **from_recipe)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> "TrainConfig":
        """A config from field values, each checked: unknown keys, wrong types and values out of range are refused."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        prefix = f"{source}: " if source else ""
        if unknown:
            raise NinError(f"{prefix}unknown keys {', '.join(unknown)}; expected some of {', '.join(sorted(known))}")
        check_values(d, prefix)
        return cls(**d)


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_KINDS = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,), "list[int]": (list,)}


def field_kind(name: str) -> str:
    """'str', 'int', 'float' or 'bool': the type of a field, without its `| None`."""
    return str(FIELDS[name].type).split(" | ")[0]


def check_values(values: dict, prefix: str) -> None:
    """One line naming the first field whose value has the wrong type or is out of its range."""
    for name, value in values.items():
        field = FIELDS[name]
        meta, kind = field.metadata, field_kind(name)
        key = f"{prefix}{name} (--{name.replace('_', '-')})"
        a_kind = "a list of whole numbers" if kind == "list[int]" else f"{'an' if kind == 'int' else 'a'} {kind}"
        if value is None:
            if "None" in str(field.type):
                continue
            raise NinError(f"{key}: must be {a_kind}, got null")
        if isinstance(value, bool) and kind != "bool" or not isinstance(value, _KINDS[kind]):
            raise NinError(f"{key}: must be {a_kind}, got {value!r} ({type(value).__name__})")
        if kind == "list[int]":
            whole = all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            if not value or not whole or value != sorted(set(value)):
                raise NinError(f"{key}: must be a rising list of whole numbers, got {value!r}")
            value = value[0]   # the range checks below apply to every element; the smallest is the first
        choices = meta["choices"]() if callable(meta["choices"]) else meta["choices"]
        if choices and value not in choices:
            raise NinError(f"{key}: {value!r} is not one of {', '.join(choices)}")
        bounds = [(meta["minimum"], lambda v, b: v >= b, "at least"), (meta["above"], lambda v, b: v > b, "above"),
                  (meta["below"], lambda v, b: v < b, "below")]
        for bound, ok, words in bounds:
            if bound is not None and not ok(value, bound):
                raise NinError(f"{key}: must be {words} {bound:g}, got {value!r}")


def load_config_file(path: Path) -> dict:
    """The keys of a JSON config file (TrainConfig field names), checked."""
    try:
        d = json.loads(Path(path).read_text())
    except OSError as e:
        raise NinError(f"{path}: cannot read the config file ({e.strerror})") from None
    except json.JSONDecodeError as e:
        raise NinError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}); expected an object of TrainConfig fields") from None
    if not isinstance(d, dict):
        raise NinError(f"{path}: expected a JSON object of TrainConfig fields")
    TrainConfig.from_dict(d, source=str(path))   # reject bad keys and values early
    return d


def resume_changes(saved: dict, new: dict) -> dict[str, tuple]:
    """{field: (saved, new)} for the fields that differ between two TrainConfig dicts."""
    return {k: (saved.get(k), new.get(k)) for k in sorted(set(saved) | set(new)) if saved.get(k) != new.get(k)}


def check_resume(saved: dict, new: dict, run_dir: Path) -> dict[str, tuple]:
    """The changes a resume makes; refused (one line, every difference) if any would change the result."""
    changes = resume_changes(saved, new)
    refused = {k: v for k, v in changes.items() if k not in RESUMABLE_FIELDS}
    if refused:
        listed = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in refused.items())
        raise NinError(f"{run_dir}: --resume would change settings that change the result ({listed}); resume with "
                       f"the run's own settings (only {', '.join(RESUMABLE_FIELDS[:3])} may change), or start a "
                       "new --out")
    return changes
