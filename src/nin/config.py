"""The resolved configuration of a training run: defaults, then a config file, then flags."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from nin.errors import NinError

RECIPES = ("paper", "fast")
# TrainConfig fields that say where things are or how progress is shown, not what is computed.
LOCATION_FIELDS = ("out", "data_dir", "offline", "cache_dir", "progress")
INITS = ("normal", "lsuv")
# The paper's model for each data set: what `--preset` defaults to.
DEFAULT_PRESETS = {"mnist": "nin-mnist", "fashion-mnist": "nin-mnist", "cifar10": "nin-cifar10",
                   "cifar100": "nin-cifar100", "svhn": "nin-svhn"}
PRECISIONS = ("auto", "bf16", "fp32")


@dataclass
class RecipeDefaults:
    lr: float
    weight_decay: float
    epochs: int
    label_smoothing: float
    clip_grad_norm: float          # 0: no clipping
    init: str                      # "normal" (authors' N(0, 0.05)) or "lsuv" (see train/recipes.py)


# What each recipe does is documented in README.md ("Training recipes") and train/recipes.py.
RECIPE_DEFAULTS = {
    # Authors' files: momentum 0.9, weight decay 1e-5 (cuda-convnet), N(0, 0.05) weights.
    # `epochs` is only a cap: the plateau rule ends the run.
    "paper": RecipeDefaults(lr=0.1, weight_decay=1e-5, epochs=200, label_smoothing=0.0, clip_grad_norm=0.0,
                            init="normal"),
    "fast": RecipeDefaults(lr=0.2, weight_decay=5e-4, epochs=8, label_smoothing=0.1, clip_grad_norm=1.0,
                           init="lsuv"),
}


@dataclass
class TrainConfig:
    dataset: str = "fashion-mnist"
    preset: str | None = None            # None: the paper's model for the data set (DEFAULT_PRESETS)
    recipe: str = "fast"
    epochs: int | None = None            # None: the recipe's default
    batch_size: int = 128
    lr: float | None = None              # None: the recipe's default
    momentum: float = 0.9
    weight_decay: float | None = None    # None: the recipe's default
    label_smoothing: float | None = None
    clip_grad_norm: float | None = None  # clip the gradients' global L2 norm; 0: off
    init: str | None = None              # None: the recipe's default
    warmup_epochs: float = 1.0           # linear warm-up of the learning rate (both recipes)
    patience: int = 3                    # paper recipe: epochs without a new best training accuracy
    min_delta: float = 0.05              # paper recipe: percentage points that count as improving
    class_map_relu: bool = True          # the paper's ReLU on the class-map layer
    dropout: float | None = None         # None: the preset's rates; else every dropout layer at this rate
    seed: int = 0
    precision: str = "auto"
    device: str = "auto"
    data_dir: str | None = None          # None: $NIN_DATA, else ./data
    offline: bool = False
    train_subset: int | None = None      # train on the first N training images only
    val_split: str = "none"              # "paper": hold out the paper's validation set, evaluate on it per epoch
    preprocess: str | None = None        # None: what the paper did (gcn-zca for CIFAR, lcn for SVHN, none else)
    augment: bool = False                # random translations (and flips for CIFAR), on whole batches
    cache_dir: str | None = None         # preprocessed arrays; None: $NIN_CACHE, else ~/.cache/nin
    out: str | None = None               # None: runs/<dataset>-<preset>-<recipe>
    progress: bool = True
    time_budget_minutes: float | None = None   # stop training after this long (then evaluate and save)
    checkpoint_every: int = 0            # also checkpoint every N steps within an epoch; 0: at epoch ends only
    compile: bool = False                # torch.compile the model (pays off on GPUs; slower on this CPU)

    def resolved(self) -> "TrainConfig":
        """A copy with the recipe's defaults filled in and every value checked."""
        if self.recipe not in RECIPES:
            raise NinError(f"unknown recipe {self.recipe!r}: expected one of {', '.join(RECIPES)}")
        if self.precision not in PRECISIONS:
            raise NinError(f"unknown precision {self.precision!r}: expected one of {', '.join(PRECISIONS)}")
        defaults = RECIPE_DEFAULTS[self.recipe]
        preset = self.preset or DEFAULT_PRESETS.get(self.dataset)
        if preset is None:
            raise NinError(f"no default model for data set {self.dataset!r}: pass --preset, or use one of "
                           f"{', '.join(DEFAULT_PRESETS)}")
        cfg = dataclasses.replace(
            self,
            preset=preset,
            lr=defaults.lr if self.lr is None else self.lr,
            weight_decay=defaults.weight_decay if self.weight_decay is None else self.weight_decay,
            epochs=defaults.epochs if self.epochs is None else self.epochs,
            label_smoothing=defaults.label_smoothing if self.label_smoothing is None else self.label_smoothing,
            clip_grad_norm=defaults.clip_grad_norm if self.clip_grad_norm is None else self.clip_grad_norm,
            init=defaults.init if self.init is None else self.init,
            out=self.out or f"runs/{self.dataset}-{preset}-{self.recipe}",
        )
        if cfg.init not in INITS:
            raise NinError(f"unknown init {cfg.init!r}: expected one of {', '.join(INITS)}")
        for name in ("epochs", "batch_size"):
            if getattr(cfg, name) < 1:
                raise NinError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(cfg, name)}")
        if cfg.time_budget_minutes is not None and cfg.time_budget_minutes <= 0:
            raise NinError(f"--time-budget-minutes must be positive, got {cfg.time_budget_minutes}")
        if cfg.dropout is not None and not 0.0 <= cfg.dropout < 1.0:
            raise NinError(f"--dropout must be in [0, 1), got {cfg.dropout}")
        if cfg.lr <= 0:
            raise NinError(f"--lr must be positive, got {cfg.lr}")
        return cfg

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise NinError(f"{source}: unknown keys {', '.join(unknown)}; expected some of {', '.join(sorted(known))}")
        return cls(**d)


def load_config_file(path: Path) -> dict:
    """The keys of a JSON config file (TrainConfig field names)."""
    try:
        d = json.loads(Path(path).read_text())
    except OSError as e:
        raise NinError(f"{path}: cannot read the config file ({e.strerror})") from None
    except json.JSONDecodeError as e:
        raise NinError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}); expected an object of TrainConfig fields") from None
    if not isinstance(d, dict):
        raise NinError(f"{path}: expected a JSON object of TrainConfig fields")
    TrainConfig.from_dict(d, source=str(path))   # reject unknown keys early
    return d
