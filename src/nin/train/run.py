"""A whole training run: data, model, the epoch loop, and the run folder's files."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from nin.config import LOCATION_FIELDS, TrainConfig, check_resume
from nin.data.augment import make_augment
from nin.data.batches import iterate_batches, make_prepare, shuffle_order
from nin.data.datasets import LoadedDataset, Split, load_dataset
from nin.errors import NinError
from nin.fast import optimize
from nin.files import atomic_write_json, load_checkpoint, save_checkpoint
from nin.models.nin import NIN
from nin.models.registry import preset_config, with_dropout
from nin.provenance import commit, machine
from nin.recipe import RECIPES
from nin.rundir import CARD_FILE, CHECKPOINT_FILE, CONFIG_FILE, DATA_FILE, METRICS_FILE, claim, write_metrics
from nin.train.allocator import keep_freed_memory
from nin.train.card import finish
from nin.train.device import autocast, resolve_device, use_bf16
from nin.train.distributed import Ranks
from nin.train.loop import EpochControl, EpochProgress, StepOptions, train_one_epoch
from nin.train.recipes import initialize_, make_optimizer
from nin.train.rng import restore_rng_states, rng_states
from nin.train.schedule import (one_cycle_lr, paper_lr, paper_should_stop, plateau_count, step_lr, time_cycle_lr,
                                warmup_factor)
from nin.train.signals import StopRequest, TrainingInterrupted, graceful_stop

INIT_SAMPLE = 256   # training images that the fast recipe's data-dependent init looks at


def build_for_dataset(cfg: TrainConfig, data: LoadedDataset) -> NIN:
    info = data.info
    config = preset_config(cfg.preset, in_channels=info.in_channels, num_classes=info.num_classes,
                           class_map_relu=cfg.class_map_relu, input_size=info.image_size)
    # the CPU fast path (fused conv + ReLU, bit-mask dropout): the plain model's numbers, faster
    return optimize(NIN(config if cfg.dropout is None else with_dropout(config, cfg.dropout)))


def lr_schedule(cfg: TrainConfig, steps_per_epoch: int, train_accuracies: list[float],
                time_fraction=lambda: 0.0):
    """The function step -> learning rate for the next epoch (before per-group scaling).

    `train_accuracies`: one per finished epoch. `time_fraction()`: the share of the time budget used so far (read by --anneal-by-time only)."""
    warmup_steps = round(cfg.warmup_epochs * steps_per_epoch)
    if RECIPES[cfg.recipe].schedule == "cosine":
        total = cfg.epochs * steps_per_epoch
        # Short runs still get most of their steps after the warm-up.
        warmup_steps = min(warmup_steps, total // 4)
        if cfg.anneal_by_time:
            return lambda step: time_cycle_lr(step, time_fraction(), cfg.lr, warmup_steps)
        return lambda step: one_cycle_lr(step, total, cfg.lr, warmup_steps)
    if cfg.lr_drop_epochs:   # fixed epochs, as the authors' README gives them, instead of the plateau rule
        base = step_lr(cfg.lr, len(train_accuracies), cfg.lr_drop_epochs)
    else:
        base = paper_lr(cfg.lr, plateau_count(train_accuracies, cfg.patience, cfg.min_delta))
    return lambda step: base * warmup_factor(step, warmup_steps)


def subset(split: Split, n: int | None) -> Split:
    if n is None:
        return split
    if not 0 < n <= len(split.labels):
        raise NinError(f"--train-subset {n}: expected 1 to {len(split.labels)}")
    return Split(split.images[:n], split.labels[:n])


def remove_stale_temporaries(run_dir: Path) -> None:
    for tmp in run_dir.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def fit(cfg: TrainConfig, resume: bool = False, log=print, on_epoch_end=None, overwrite: bool = False) -> dict:
    """Train as `cfg` says (already resolved), writing the run folder; returns the model card.

    The folder must not hold another run (see nin.rundir.claim) unless `overwrite`, and is
    locked against other processes while this one trains.
    Ctrl-C or SIGTERM saves a checkpoint after the current step and raises TrainingInterrupted.
    `on_epoch_end(epoch)` is called after each epoch's checkpoint is written.
    Under torchrun every rank runs this; only rank 0 writes files and logs.
    """
    ranks = Ranks.from_env(resolve_device(cfg.device))
    commit()   # read now, while the tree is the code that runs; the card is written hours later
    lock = None
    try:
        if ranks.is_main:
            lock = claim(Path(cfg.out), resume, overwrite)
        with graceful_stop() as stop:
            return _fit(cfg, resume, log if ranks.is_main else (lambda *_: None), on_epoch_end or (lambda _: None),
                        stop, ranks)
    except KeyboardInterrupt:
        checkpoint = Path(cfg.out) / CHECKPOINT_FILE
        kept = (f"the last checkpoint is in {checkpoint}; continue with `nin train --resume {cfg.out}`"
                if checkpoint.is_file() else "no checkpoint had been written yet, so nothing was saved")
        raise TrainingInterrupted(f"interrupted; {kept}") from None
    finally:
        if lock is not None:
            lock.release()
        ranks.shutdown()


@dataclass
class Trainer:
    """What a run trains with, built once from its config: data, model, optimizer, step options."""
    data: LoadedDataset
    train: Split
    model: NIN                 # the parameters, which are saved
    forward_model: object      # `model`, compiled when asked for
    train_model: object        # `forward_model`, wrapped in DDP under torchrun
    optimizer: torch.optim.Optimizer
    step: StepOptions          # the normal epochs' step
    small_crop_step: StepOptions   # the first --small-crop-epochs' step
    bf16: bool
    ema: AveragedModel | None = None   # --ema-decay: the moving average of `model`'s weights

    @property
    def result_model(self):
        """What is evaluated and saved: the weights' moving average with --ema-decay, else the model."""
        return self.ema.module if self.ema is not None else self.model

    @property
    def eval_model(self):
        return self.ema.module if self.ema is not None else self.forward_model


@dataclass
class RunState:
    """How far a run has got: restored from the checkpoint by --resume, saved in it after every epoch."""
    history: list[dict] = dataclasses.field(default_factory=list)   # metrics.csv's rows
    resumes: list[dict] = dataclasses.field(default_factory=list)   # each resume that changed a setting or the machine
    epochs_done: int = 0
    wall_before: float = 0.0              # training seconds of this run's earlier processes
    partial: EpochProgress | None = None  # how far an unfinished epoch got


def build_trainer(cfg: TrainConfig, ranks: Ranks) -> Trainer:
    device = ranks.device
    bf16 = use_bf16(device, cfg.precision)
    data = load_dataset(cfg.dataset, cfg.data_dir, cfg.offline, cfg.val_split, cfg.preprocess, cfg.seed, cfg.cache_dir)
    keep_freed_memory()   # only now: what loading freed goes back to the kernel (see allocator.py)
    train = subset(data.train, cfg.train_subset)
    model = build_for_dataset(cfg, data)
    prepare = make_prepare(data.info.mean, data.info.std, device, channels_last=True)
    # channels-last lets oneDNN / cuDNN run the convolutions without layout changes.
    model.to(device, memory_format=torch.channels_last)
    initialize_(model, cfg.init, sample=prepare(train.images[:INIT_SAMPLE].to(device)))
    optimizer = make_optimizer(model, RECIPES[cfg.recipe], cfg.lr, cfg.weight_decay, cfg.momentum)
    # Compiled or not, it shares the parameters of `model`, which is what gets saved.
    forward_model = torch.compile(model) if cfg.compile else model
    train_model = forward_model
    if ranks.enabled:
        # DDP starts every rank from rank 0's weights and averages the gradients of each step.
        train_model = DistributedDataParallel(
            forward_model, device_ids=[device.index] if device.type == "cuda" else None)
        torch.manual_seed(cfg.seed + 7919 * ranks.rank)   # each rank its own dropout and augmentation
    # torch's own EMA: a copy of the weights, moved towards them after every step (the first step copies them).
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay)) if cfg.ema_decay else None
    step = StepOptions(prepare, autocast(device, bf16), device,
                       make_augment(data.info.augment_shift, data.info.augment_flip, cutout=cfg.cutout)
                       if cfg.augment else None,
                       cfg.label_smoothing, cfg.clip_grad_norm,
                       after_step=(lambda: ema.update_parameters(model)) if ema is not None else None)
    # The first --small-crop-epochs train on smaller random crops: fewer pixels, a cheaper step.
    # A cutout hole covers the same share of a small crop as of a whole image.
    small_crops = make_augment(0, cfg.augment and data.info.augment_flip, crop=cfg.small_crop_size,
                               cutout=round(cfg.cutout * cfg.small_crop_size / data.info.image_size))
    return Trainer(data, train, model, forward_model, train_model, optimizer, step,
                   dataclasses.replace(step, augment=small_crops), bf16, ema)


def checkpoint_state(trainer: Trainer, state: RunState, epochs_done: int, wall_seconds: float,
                     progress: EpochProgress | None, rank_rngs: list[dict] | None = None) -> dict:
    """Everything needed to continue exactly: tensors, numbers, strings, lists and dicts only
    (loadable with torch.load(weights_only=True)). `progress`: how far the unfinished epoch got;
    `rank_rngs`: every rank's random-number states (default: this process's)."""
    rank_rngs = rank_rngs or [rng_states()]
    return {
        "model": trainer.model.state_dict(), "optimizer": trainer.optimizer.state_dict(), "epoch": epochs_done,
        "epoch_progress": progress.to_state() if progress is not None else None,
        "history": [dict(row) for row in state.history], "wall_seconds": wall_seconds, "rng_ranks": rank_rngs,
        "resumes": [dict(r) for r in state.resumes],
        "ema": trainer.ema.state_dict() if trainer.ema is not None else None, "machine": machine(),
    }


def restore(cfg: TrainConfig, trainer: Trainer, ranks: Ranks, log) -> RunState:
    """The state of the run in cfg.out, its model and optimizer loaded into `trainer` (for --resume)."""
    run_dir = Path(cfg.out)
    saved = TrainConfig.from_dict(json.loads((run_dir / CONFIG_FILE).read_text())).to_dict() \
        if (run_dir / CONFIG_FILE).is_file() else cfg.to_dict()
    changes = check_resume(saved, cfg.to_dict(), run_dir)
    checkpoint = load_checkpoint(run_dir / CHECKPOINT_FILE)
    try:
        trainer.model.load_state_dict(checkpoint["model"])
        trainer.optimizer.load_state_dict(checkpoint["optimizer"])
        if trainer.ema is not None:
            trainer.ema.load_state_dict(checkpoint["ema"])
        state = RunState(checkpoint["history"], [dict(r) for r in checkpoint.get("resumes", [])],
                         checkpoint["epoch"], checkpoint["wall_seconds"])
        restore_rng_states(checkpoint, ranks.rank)
        if checkpoint.get("epoch_progress"):
            state.partial = EpochProgress(**checkpoint["epoch_progress"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise NinError(f"{run_dir / CHECKPOINT_FILE}: does not fit this run's model and settings "
                       f"({str(e).splitlines()[0][:160]}); start a new --out instead") from None
    where = f"epoch {state.epochs_done + 1}" + (f", step {state.partial.batches_done + 1}" if state.partial else "")
    changed = {k: v for k, v in changes.items() if k not in LOCATION_FIELDS}
    # The card names one machine: a run continued on another one (or another thread count) says so here, since
    # its minutes are then a sum of two speeds. Checkpoints before this field name none.
    here = machine()
    if checkpoint.get("machine") not in (None, here):
        changed["machine"] = (checkpoint["machine"], here)
    if changed:
        state.resumes.append({"at": where, "changed": {k: list(v) for k, v in changed.items()}})
    log(f"resuming {run_dir} at {where}" + "".join(f"; {k} {a} -> {b}" for k, (a, b) in changed.items()))
    return state


class RunClock:
    """The run's time as its card counts it (earlier processes' included) and its budget's deadline."""

    def __init__(self, cfg: TrainConfig, wall_before: float, process_start: float):
        self.start, self.wall_before = time.perf_counter(), wall_before
        self.budget_seconds = 60 * cfg.time_budget_minutes if cfg.time_budget_minutes else None
        self.deadline = process_start + self.budget_seconds if self.budget_seconds else None   # loading counts
        if cfg.anneal_by_time:
            # The budget is the run's training time as its card counts it: earlier processes' included, loading not.
            self.deadline = self.start + self.budget_seconds - wall_before

    def elapsed(self) -> float:
        return self.wall_before + time.perf_counter() - self.start

    def fraction(self) -> float:
        """The share of the time budget used so far (read by --anneal-by-time only)."""
        return self.elapsed() / self.budget_seconds

    def past_deadline(self) -> bool:
        return self.deadline is not None and time.perf_counter() > self.deadline


def steps_in_an_epoch(cfg: TrainConfig, train: Split) -> int:
    steps = len(train.labels) // cfg.batch_size
    if steps == 0:
        raise NinError(f"--batch-size {cfg.batch_size} is larger than the {len(train.labels)} training images")
    return steps


def epoch_batches(cfg: TrainConfig, train: Split, ranks: Ranks, steps: int, epoch: int,
                  partial: EpochProgress | None):
    """This rank's batches of the epoch, in the seed's order; after a mid-epoch checkpoint only those left."""
    per_rank_batch = ranks.per_rank_batch(cfg.batch_size)
    order = ranks.my_slice(shuffle_order(len(train.labels), cfg.seed, epoch), steps, cfg.batch_size)
    if partial is not None:
        order = order[partial.batches_done * per_rank_batch:]
    return iterate_batches(train.images, train.labels, per_rank_batch, order, drop_last=True)


def plateau_rule_ends(cfg: TrainConfig, train_accuracies: list[float]) -> bool:
    """The paper recipe's third plateau of training accuracy (not with fixed --lr-drop-epochs)."""
    plateau_rule = RECIPES[cfg.recipe].schedule == "plateau" and not cfg.lr_drop_epochs
    return plateau_rule and paper_should_stop(plateau_count(train_accuracies, cfg.patience, cfg.min_delta))


def held_out(data: LoadedDataset) -> tuple[str, Split]:
    """What each epoch is evaluated on: the validation split when there is one, else the test set."""
    return ("val", data.val) if data.val is not None else ("test", data.test)


def start_run_folder(run_dir: Path, cfg: TrainConfig, data_record: dict) -> None:
    remove_stale_temporaries(run_dir)   # left by a run killed while writing
    atomic_write_json(run_dir / CONFIG_FILE, cfg.to_dict())
    atomic_write_json(run_dir / DATA_FILE, data_record)


def epoch_summary(stats, eval_name: str, result) -> str:
    return (f"train loss {stats.loss:.4f} acc {stats.accuracy:.2f}% | {eval_name} loss {result.loss:.4f} acc "
            f"{result.accuracy:.2f}% | {stats.images_per_second:.0f} img/s, {stats.seconds:.1f} s")


def history_row(epoch: int, lr: float, stats, eval_name: str, result, elapsed: float) -> dict:
    """metrics.csv's row of an epoch."""
    return {
        "epoch": epoch + 1, "lr": lr,
        "train_loss": round(stats.loss, 6), "train_accuracy": round(stats.accuracy, 4),
        f"{eval_name}_loss": round(result.loss, 6), f"{eval_name}_accuracy": round(result.accuracy, 4),
        "images_per_second": round(stats.images_per_second, 1), "epoch_seconds": round(stats.seconds, 2),
        # the run's time so far as its card counts it: training steps and every evaluation until now
        "elapsed_seconds": round(elapsed, 1),
    }


def _fit(cfg: TrainConfig, resume: bool, log, on_epoch_end, stop: StopRequest | None = None,
         ranks: Ranks = Ranks()) -> dict:
    process_start = time.perf_counter()   # the time budget counts data loading too
    run_dir = Path(cfg.out)
    torch.manual_seed(cfg.seed)
    if ranks.enabled and cfg.time_budget_minutes:
        raise NinError("--time-budget-minutes is for single-process runs; under torchrun use --epochs")
    trainer = build_trainer(cfg, ranks)
    data = trainer.data
    eval_name, eval_split = held_out(data)
    state = restore(cfg, trainer, ranks, log) if resume else RunState()
    if ranks.is_main:
        start_run_folder(run_dir, cfg, data.record)
    steps = steps_in_an_epoch(cfg, trainer.train)
    clock = RunClock(cfg, state.wall_before, process_start)

    def save(epochs_done: int, progress: EpochProgress | None):
        rng = ranks.gather(rng_states())   # every rank takes part; rank 0 writes
        if ranks.is_main:
            save_checkpoint(run_dir / CHECKPOINT_FILE,
                            checkpoint_state(trainer, state, epochs_done, clock.elapsed(), progress, rng))

    def should_stop() -> bool:
        return ranks.should_stop(stop is not None and stop.requested)

    result, budget_hit = None, False
    for epoch in range(state.epochs_done, cfg.epochs):
        train_accuracies = [row["train_accuracy"] for row in state.history]
        if plateau_rule_ends(cfg, train_accuracies):
            log(f"training accuracy stopped improving a third time: stopping after epoch {epoch}")
            break
        lr_at = lr_schedule(cfg, steps, train_accuracies, clock.fraction)
        control = EpochControl(cfg.progress and ranks.is_main, clock.deadline, state.partial, cfg.checkpoint_every,
                               lambda progress, epoch=epoch: save(epoch, progress), should_stop)
        stats = ranks.epoch_stats(train_one_epoch(
            trainer.train_model, epoch_batches(cfg, trainer.train, ranks, steps, epoch, state.partial), steps,
            trainer.optimizer, lambda i, first=epoch * steps: lr_at(first + i),
            trainer.small_crop_step if epoch < cfg.small_crop_epochs else trainer.step, epoch, control))
        state.partial = None
        # Single view each epoch, as the paper's numbers are: the curves compare with them (flip TTA only at the end).
        result = ranks.evaluate(trainer.eval_model, eval_split.images, eval_split.labels, trainer.step,
                                data.info.num_classes)
        state.history.append(history_row(epoch, lr_at((epoch + 1) * steps - 1), stats, eval_name, result,
                                         clock.elapsed()))
        if stats.stopped_early:   # a fractional epoch: how far the budget got
            state.history[-1]["epoch"] = round(epoch + stats.images / (steps * cfg.batch_size), 3)
            budget_hit = True
        log(f"epoch {epoch + 1}/{cfg.epochs}: {epoch_summary(stats, eval_name, result)}")
        if ranks.is_main:
            write_metrics(run_dir / METRICS_FILE, state.history)
        save(epoch + 1, None)
        on_epoch_end(epoch)
        if should_stop():
            raise KeyboardInterrupt
        if clock.past_deadline() and epoch + 1 < cfg.epochs:
            budget_hit = True
            log(f"time budget of {cfg.time_budget_minutes:g} minutes used up: stopping after "
                f"{state.history[-1]['epoch']} epochs")
            break
    return finish_run(cfg, trainer, state, ranks, result if eval_name == "test" else None, clock.elapsed, budget_hit)


def finish_run(cfg: TrainConfig, trainer: Trainer, state: RunState, ranks: Ranks, result, elapsed,
               budget_hit: bool) -> dict:
    """The test set once, single view (unless the last epoch's evaluation was it) and with flip TTA if asked for;
    then the weights and the card (on rank 0; other ranks return {})."""
    data = trainer.data

    def test_result(flip: bool):
        return ranks.evaluate(trainer.result_model, data.test.images, data.test.labels, trainer.step,
                              data.info.num_classes, flip)

    result = result if result is not None else test_result(flip=False)
    flipped = test_result(flip=True) if cfg.test_flip else None
    identical = ranks.parameters_identical(trainer.model) if ranks.enabled else None
    if not ranks.is_main:
        return {}
    card = finish(Path(cfg.out), cfg, trainer, state, (result, flipped), elapsed(), budget_hit)
    if ranks.enabled:
        card.update(processes=ranks.world, ranks_identical=identical)
        atomic_write_json(Path(cfg.out) / CARD_FILE, card)
    return card
