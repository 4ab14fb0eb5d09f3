"""The training engine: ``FitConfig``, ``fit``, ``evaluate``, the run ``History`` and exact checkpoints.

``FitConfig`` is the one list of a training run's settings: ``fit`` takes them as keywords, recipes,
the CLI's flags and ``tuning.search`` are built from it, and a checkpoint stores it. ``fit`` is
meant to be read: one screen of plain PyTorch (forward, loss, backward, optimizer step, scheduler
step), with everything around it (optimizer and schedule construction, checkpoints) factored into
small helpers below it; batching and augmentation live in ``tutorial_lib.data``.

Four promises, the first three tested in ``tests/test_train.py``, the fourth in ``tests/test_distributed.py``:

* **Reproducible.** Shuffling and augmentation draw from ``torch.Generator`` objects seeded from
  ``(seed, stream, epoch)`` and ``(seed, stream, epoch, step)`` (``derive_seed`` and the ``STREAM_*``
  constants), never from hidden global state, so the same seed gives the same run, bit for bit, on
  the same machine.
* **Resumable.** At each epoch end ``fit`` writes ``checkpoint.pt`` atomically (write a temporary file,
  then ``os.replace``) holding the model, optimizer, scheduler, RNG states, history and settings, and
  only tensors and plain containers, so ``torch.load(weights_only=True)`` reads it. A run stopped with
  Ctrl-C and resumed with ``resume=True`` ends with exactly the weights and metrics of an uninterrupted
  run.
* **Loud.** A NaN or infinite loss stops training at once with a ``FloatingPointError`` that says what
  to try, instead of silently producing a useless model.
* **Distributed, with the same result.** Called inside an initialized ``torch.distributed`` process
  group (``torchrun --nproc_per_node=N``, one process per device: the command line sets it up), ``fit``
  trains with PyTorch's ``DistributedDataParallel``, which averages the gradients; nothing here
  communicates gradients by hand. ``batch_size`` stays the *global* batch: every epoch's order is the
  permutation one process would use, each global batch is cut into ``world_size`` contiguous slices
  of ``batch_size / world_size`` images (``tutorial_lib.data.batches(shard=...)``), and augmentation
  draws its parameters for the whole global batch and applies this process's slice of them
  (``Augment(rows=...)``), so the processes' slices together are exactly the one-process batch, and
  optimizer steps match one for one. With ``sync_bn=True`` BatchNorm normalizes over the whole
  global batch as well, and N processes compute what one computes, up to float rounding (sums in
  another order; ``tests/test_distributed.py`` measures it). Only rank 0 writes the checkpoint and
  shows progress; epoch metrics are sums over all processes; a resume must use the same world size.
  Without a process group nothing of this runs, and ``fit`` computes bit for bit what it always did.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from tutorial_lib._validate import check_bool, check_choice, check_int, check_number, suggest
from tutorial_lib.data import Augment, as_augment, batches, check_dataset, to_float_images
from tutorial_lib.env import choose_device
from tutorial_lib.multiscale import (
    PerScaleBatchNorm2d,
    ProgressiveResolution,
    RandomResolution,
    Resized,
    check_sizes,
    resize_batch,
)
from tutorial_lib.norm import synchronize_batch_norm
from tutorial_lib.speed import COMPILE_MODES, checkpoint_stages, compile_network

__all__ = [
    "BREAKDOWNS", "CHECKPOINT_NAME", "DEFAULT_WARMUP", "OPTIMIZERS", "PRECISIONS", "SCHEDULES", "STEP_MILESTONES",
    "STREAM_AUGMENT", "STREAM_RANGE_TEST", "STREAM_SHUFFLE", "STREAM_TORCH", "FitConfig", "History", "checkpoint_record",
    "derive_seed", "evaluate", "fit", "gradient_norms", "load_checkpoint", "make_optimizer", "param_groups", "run_record",
    "schedule_factor", "uses_channels_last", "validation_size",
]

#: Optimizers ``fit`` knows, by name.
OPTIMIZERS = ("adamw", "sgd")
#: Learning-rate schedules ``fit`` knows, by name.
SCHEDULES = ("onecycle", "cosine", "step", "constant")
#: Default warm-up of each schedule, as a fraction of all steps (``fit``'s ``warmup_epochs=None``).
DEFAULT_WARMUP = {"onecycle": 0.3, "cosine": 0.05, "step": 0.0, "constant": 0.0}
#: Where the ``"step"`` schedule divides the learning rate by 10, as fractions of all steps: the
#: CIFAR-10 schedule of He et al. 2016 (sec 4.2: divided by 10 at 32k and 48k of 64k iterations).
STEP_MILESTONES = (0.5, 0.75)
#: Breakdowns ``evaluate`` can add to its result.
BREAKDOWNS = ("class", "size")
#: File name of the checkpoint inside a run folder.
CHECKPOINT_NAME = "checkpoint.pt"


# --------------------------------------------------------------------------------------------------
# History
# --------------------------------------------------------------------------------------------------


@dataclass
class History:
    """What a ``fit`` run measured: one record per epoch, plus the loss and learning rate of every step.

    Attributes:
        epochs: one dict per finished epoch with keys ``epoch`` (1-based), ``lr`` (learning rate of
            the epoch's last step), ``train_loss``, ``train_acc``, ``val_loss``, ``val_acc`` (``None``
            without validation data) and ``seconds`` (training time of the epoch, validation excluded).
        step_loss: training loss of every optimizer step, in order.
        step_lr: learning rate used by every optimizer step, in order.
        interrupted: ``True`` when Ctrl-C stopped the run before its last epoch.
        precision: the arithmetic of the training steps, ``"fp32"``, ``"bf16"`` or ``"fp16"`` (mixed precision).
    """

    epochs: list[dict[str, Any]] = field(default_factory=list)
    step_loss: list[float] = field(default_factory=list)
    step_lr: list[float] = field(default_factory=list)
    interrupted: bool = False
    precision: str = "fp32"

    def __len__(self) -> int:
        return len(self.epochs)

    @property
    def train_seconds(self) -> float:
        """Total training time over all finished epochs (validation and checkpointing excluded)."""
        return float(sum(record["seconds"] for record in self.epochs))

    @property
    def last(self) -> dict[str, Any] | None:
        """The last epoch's record, or ``None`` before the first epoch ends."""
        return self.epochs[-1] if self.epochs else None

    def column(self, key: str) -> list[Any]:
        """One value per epoch for ``key`` (e.g. ``"val_acc"``).

        Raises:
            KeyError: if ``key`` is not a record key; the message lists the valid ones.
        """
        keys = list(self.epochs[0]) if self.epochs else list(_EPOCH_KEYS)
        if key not in keys:
            raise KeyError(f"unknown history column {key!r}; valid columns: {', '.join(keys)}")
        return [record[key] for record in self.epochs]

    def to_dict(self) -> dict[str, Any]:
        """A plain-dict copy (JSON- and ``weights_only``-safe)."""
        return {
            "epochs": [dict(record) for record in self.epochs],
            "step_loss": list(self.step_loss),
            "step_lr": list(self.step_lr),
            "interrupted": self.interrupted,
            "precision": self.precision,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        """Rebuild a history from ``to_dict()`` output (e.g. read back from ``metrics.json``)."""
        if not isinstance(data, dict) or "epochs" not in data:
            raise TypeError("History.from_dict expects the dict that History.to_dict() returns")
        return cls(
            epochs=[dict(record) for record in data["epochs"]],
            step_loss=[float(v) for v in data.get("step_loss", [])],
            step_lr=[float(v) for v in data.get("step_lr", [])],
            interrupted=bool(data.get("interrupted", False)),
            precision=str(data.get("precision", "fp32")),
        )

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """Serialize to JSON; also write it to ``path`` when one is given."""
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            Path(path).write_text(text)
        return text

    def plot(self, **kwargs: Any):
        """Plot loss and accuracy curves (see ``tutorial_lib.viz.plot_history``); returns the figure."""
        from tutorial_lib.viz import plot_history

        return plot_history(self, **kwargs)

    def __repr__(self) -> str:
        state = ", interrupted" if self.interrupted else ""
        last = self.last
        if last is None:
            return f"History(0 epochs{state})"
        val = "" if last["val_acc"] is None else f", val_acc={last['val_acc']:.4f}"
        return (
            f"History({len(self)} epochs, train_loss={last['train_loss']:.4f}, "
            f"train_acc={last['train_acc']:.4f}{val}, train_seconds={self.train_seconds:.1f}{state})"
        )


_EPOCH_KEYS = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds")


# --------------------------------------------------------------------------------------------------
# The settings of a run
# --------------------------------------------------------------------------------------------------

#: Values of ``FitConfig.precision``.
PRECISIONS = ("fp32", "bf16", "fp16", "auto")

# Random streams derived from a run's seed with ``derive_seed(seed, STREAM, ...)``. Each source of
# randomness draws from its own stream, so switching one on (augmentation, say) leaves the draws of
# the others unchanged, and a resumed run can recompute any epoch's or step's draws from scratch.
#: The order of each epoch's images: ``derive_seed(seed, STREAM_SHUFFLE, epoch)``.
STREAM_SHUFFLE = 1
#: Each step's augmentation: ``derive_seed(seed, STREAM_AUGMENT, epoch, step)``.
STREAM_AUGMENT = 2
#: torch's global generator at the start of a run (dropout-like layers draw from it).
STREAM_TORCH = 3
#: The batch order of each pass of ``tutorial_lib.tuning.lr_range_test``.
STREAM_RANGE_TEST = 4


def _setting(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    """A ``FitConfig`` field with its one-line help and valid names (the CLI's flags are built from them)."""
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class FitConfig:
    """Every setting that defines what ``fit`` computes: the one list of a training run's settings.

    ``fit`` takes these as keyword arguments (or a whole ``FitConfig``); a recipe's ``fit`` section
    holds them; the CLI's ``train`` flags are generated from them; ``tuning.search`` searches some of
    them and fixes the rest; a checkpoint stores them, and ``resume`` refuses to continue with any
    that differ. What does not change the result (where to train, whether to show a progress bar,
    where to write the checkpoint) stays an argument of ``fit`` alone.

    Values are checked on construction (``TypeError`` for a wrong type, ``ValueError`` for a bad
    value) and normalised: ``augment`` becomes an ``Augment`` or ``None``, ``train_sizes`` a tuple.

    Attributes:
        epochs: number of passes over the training data. The last incomplete batch of each epoch is
            dropped (BatchNorm needs more than one sample).
        batch_size: images per optimizer step: the *global* batch. Under ``torch.distributed`` each of
            the ``world_size`` processes takes ``batch_size / world_size`` of them (it must divide), so
            a run's optimizer steps, learning rate and schedule are the same with any number of
            processes. The linear scaling rule (Goyal et al. 2017, section 2.1: multiply the learning
            rate by k when the batch grows k times) applies when the global batch grows; here it does not.
        optimizer: ``"adamw"`` (Loshchilov & Hutter, 2019) or ``"sgd"`` (Nesterov momentum).
        lr: peak learning rate.
        weight_decay: decoupled weight decay, applied to weights only, not to biases and
            normalization parameters (the "no bias decay" of He et al. 2019, "Bag of Tricks", sec 3.1).
        momentum: SGD momentum (ignored by AdamW).
        schedule: ``"onecycle"``, ``"cosine"`` (with linear warm-up), ``"step"`` (divided by 10 at
            50% and 75% of training) or ``"constant"``; see ``schedule_factor``. Stepped after every batch.
        warmup_epochs: warm-up length in epochs (may be fractional). ``None``: 30% of training for
            one-cycle, 5% for cosine, none for step and constant (``DEFAULT_WARMUP``).
        warmup_steps: warm-up length in steps; overrides ``warmup_epochs``.
        label_smoothing: target smoothing (Szegedy et al. 2016, sec 7), 0 to switch off.
        grad_clip: clip the global gradient norm to this value; ``None`` switches clipping off.
        augment: ``None``/``False`` for none, ``True`` for ``Augment()``, a dict of its options, or an
            ``Augment`` (``tutorial_lib.data.Augment``).
        train_sizes: input resolutions to train at (notebook 07). ``None`` trains at the data's own
            size; one size resizes every batch to it; several sizes resize each batch to one drawn
            per step by ``tutorial_lib.multiscale.RandomResolution`` (a function of (seed, step), so
            resumes and distributed replicas agree without communicating). The batch is resized
            before ``augment`` runs, so shifts and zooms resample the resized pixels.
        progressive: with several ``train_sizes``, go through them from small to large in equal
            phases instead (``tutorial_lib.multiscale.ProgressiveResolution``).
        channels_last: store the model's weights and the batches in the NHWC ("channels last")
            layout, which oneDNN's CPU convolutions and GPUs' tensor cores are written for: a
            ``cpu-baseline`` training step took 0.8-0.85 of its NCHW time on the series' 2-core CPU
            (``benchmarks/bench_scaling.py``, notebook 10); a model that reshapes feature maps with
            ``.view`` may need ``.reshape`` instead.
        precision: ``"fp32"``; ``"bf16"``: mixed precision, the forward pass and loss under
            ``torch.autocast`` with bfloat16 (convolutions and matrix products in bfloat16; weights,
            optimizer state and BatchNorm statistics in float32; bfloat16 keeps float32's exponent
            range, so unlike float16 no loss scaling is needed); ``"fp16"``: the same with float16,
            whose small range (smallest normal 6e-5) would flush small gradients to zero, so the loss
            is multiplied by a scale before backward and the gradients divided by it before the
            step, the scale lowered whenever a step overflows (``torch.amp.GradScaler``; Micikevicius
            et al. 2018, "Mixed Precision Training", sec 3.2): for GPUs without bfloat16 (before
            NVIDIA's Ampere); ``"auto"``: ``"bf16"`` where the device runs it natively
            (``tutorial_lib.env.supports_bf16``), else ``"fp32"`` (``benchmarks/bench_scaling.py --only precision``
            measures the step times).
        sync_bn: under ``torch.distributed``, synchronize BatchNorm across the processes: each BatchNorm
            layer normalizes with the statistics of the whole global batch, as in one process, instead
            of its own process's ``batch_size / world_size`` images (Peng et al. 2018, "MegDet", sec 3.3;
            ``tutorial_lib.norm.synchronize_batch_norm``, undone when ``fit`` returns). Without a
            process group it has no effect, and is not an error: one process's BatchNorm already sees
            the whole batch, which is what synchronization reproduces, so one setting serves both
            (the checkpoint still records it, and a resume must repeat it).
        seed: seeds shuffling, augmentation and torch's global generator, each from its own stream
            (``STREAM_*``). Initialise the model before calling ``fit`` (e.g. after ``seed_everything``).
            Every process of a distributed run uses the same seed.
    """

    epochs: int = field(metadata={"help": "training epochs"})
    batch_size: int = _setting(128, "images per optimizer step: the global batch, split evenly over the processes of a torchrun")
    optimizer: str = _setting("adamw", "optimizer", OPTIMIZERS)
    lr: float = _setting(3e-3, "peak learning rate")
    weight_decay: float = _setting(5e-4, "weight decay (weights only, not biases and norm parameters)")
    momentum: float = _setting(0.9, "SGD momentum (ignored by AdamW)")
    schedule: str = _setting("onecycle", "learning-rate schedule", SCHEDULES)
    warmup_epochs: float | None = _setting(None, "warm-up in epochs (default: the schedule's own)")
    warmup_steps: int | None = _setting(None, "warm-up in steps (overrides --warmup-epochs)")
    label_smoothing: float = _setting(0.0, "label smoothing, 0 to switch off")
    grad_clip: float | None = _setting(None, "clip the gradient norm to this value (default: no clipping)")
    augment: Augment | None = _setting(None, "batch augmentation (see --augment-scale and --flip)")
    train_sizes: tuple[int, ...] | None = _setting(None, "train at these input sizes, e.g. 32,48,64 (one drawn per step)")
    progressive: bool = _setting(False, "go through the train sizes from small to large instead of drawing")
    channels_last: bool = _setting(False, "NHWC memory layout for weights and batches")
    precision: str = _setting("fp32", "training arithmetic: bf16 and fp16 (with loss scaling) are mixed precision, auto is bf16 "
                              "where the hardware runs it natively", PRECISIONS)
    sync_bn: bool = _setting(False, "under torchrun, BatchNorm statistics over the whole global batch (SyncBatchNorm); "
                             "no effect in one process")
    seed: int = _setting(0, "random seed")

    def __post_init__(self) -> None:
        check_int("epochs", self.epochs, minimum=1)
        check_int("batch_size", self.batch_size, minimum=1)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_number("lr", self.lr, minimum=0.0, min_inclusive=False)
        check_number("weight_decay", self.weight_decay, minimum=0.0)
        check_number("momentum", self.momentum, minimum=0.0, maximum=1.0, max_inclusive=False)
        check_choice("schedule", self.schedule, SCHEDULES)
        if self.warmup_epochs is not None:
            check_number("warmup_epochs", self.warmup_epochs, minimum=0.0)
        if self.warmup_steps is not None:
            check_int("warmup_steps", self.warmup_steps, minimum=0)
        check_number("label_smoothing", self.label_smoothing, minimum=0.0, maximum=1.0, max_inclusive=False)
        if self.grad_clip is not None:
            check_number("grad_clip", self.grad_clip, minimum=0.0, min_inclusive=False)
        object.__setattr__(self, "augment", as_augment(self.augment))
        if self.train_sizes is not None:
            object.__setattr__(self, "train_sizes", tuple(check_sizes(self.train_sizes, "train_sizes")))
        check_bool("progressive", self.progressive)
        if self.progressive and (self.train_sizes is None or len(self.train_sizes) < 2):
            raise ValueError("progressive=True needs at least two train_sizes, e.g. train_sizes=(32, 48, 64)")
        check_bool("channels_last", self.channels_last)
        check_choice("precision", self.precision, PRECISIONS)
        check_bool("sync_bn", self.sync_bn)
        check_int("seed", self.seed, minimum=0)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The settings' names, in declaration order."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_settings(cls, config: FitConfig | None = None, **settings: Any) -> FitConfig:
        """``config`` (or the defaults) with ``settings`` replacing some of its values.

        Raises:
            TypeError: for a name that is not a setting; the message suggests the closest one.
        """
        unknown = sorted(set(settings) - set(cls.names()))
        if unknown:
            hint = suggest(unknown[0], cls.names())
            raise TypeError(f"unknown fit setting(s) {unknown}.{hint} Valid settings: {', '.join(cls.names())}")
        if config is None:
            if "epochs" not in settings:
                raise TypeError("fit needs the number of epochs, e.g. fit(model, data, epochs=4)")
            return cls(**settings)
        if not isinstance(config, cls):
            raise TypeError(f"config must be a FitConfig, got {type(config).__name__}")
        return replace(config, **settings)

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain values (JSON- and ``weights_only``-safe): what a checkpoint stores."""
        values = {name: getattr(self, name) for name in self.names()}
        values["augment"] = None if self.augment is None else self.augment.to_dict()
        values["train_sizes"] = None if self.train_sizes is None else list(self.train_sizes)
        return values


@dataclass(frozen=True)
class _Plan:
    """What a ``FitConfig`` means for one dataset and one device (``_plan``)."""

    train_size: int
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    precision: str  # "fp32", "bf16" or "fp16", "auto" resolved
    world_size: int  # processes of torch.distributed (1 without a process group)


def _plan(config: FitConfig, num_items: int, device: torch.device, world_size: int = 1) -> _Plan:
    if world_size > 1:
        if num_items < world_size:
            raise ValueError(f"the world size {world_size} is larger than the dataset ({num_items} images): every process "
                             "needs images of its own in every step; start fewer processes or use more data")
        if config.batch_size % world_size:
            multiple = -(-config.batch_size // world_size) * world_size
            raise ValueError(f"batch_size {config.batch_size} is not divisible by the world size {world_size}: batch_size is "
                             f"the global batch, split evenly over the processes; use a multiple of {world_size}, e.g. "
                             f"batch_size={multiple}")
        if num_items < config.batch_size:
            raise ValueError(f"the dataset has {num_items} images, fewer than one global batch (batch_size="
                             f"{config.batch_size}) to split over {world_size} processes; lower batch_size")
    steps_per_epoch = max(1, num_items // config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    if config.warmup_steps is not None:
        warmup_steps = config.warmup_steps
    elif config.warmup_epochs is not None:
        warmup_steps = round(config.warmup_epochs * steps_per_epoch)
    else:
        warmup_steps = round(DEFAULT_WARMUP[config.schedule] * total_steps)
    if warmup_steps >= total_steps:
        raise ValueError(
            f"warm-up ({warmup_steps} steps) must be shorter than training ({total_steps} steps); "
            "lower warmup_epochs/warmup_steps or raise epochs"
        )
    return _Plan(num_items, steps_per_epoch, total_steps, warmup_steps, _resolve_precision(config.precision, device), world_size)


# --------------------------------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------------------------------


def fit(
    model: nn.Module,
    train_data: Dataset,
    config: FitConfig | None = None,
    *,
    val_data: Dataset | None = None,
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    device: str | torch.device | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
    compile: str = "off",
    activation_checkpointing: bool = False,
    workers: int = 0,
    **settings: Any,
) -> History:
    """Train ``model`` on ``train_data`` and return the measured ``History``.

    Example: ``fit(model, train, epochs=4, lr=4e-3, batch_size=64)``, or with a recipe's settings,
    ``fit(model, train, **recipe["fit"], seed=recipe["seed"])``.

    Args:
        model: a classifier returning logits ``(N, num_classes)``; trained in place.
        train_data: a dataset of ``(image, label)``. One exposing ``.images`` and ``.labels`` tensors
            (like ``load_dataset("multiscale-digits", ...)``) is batched by tensor indexing, which is
            much faster on a CPU than a per-item ``DataLoader`` (``tutorial_lib.data.batches``).
        config: a ``FitConfig``; ``None`` starts from its defaults.
        val_data: evaluated at every epoch end (its time is not counted in ``seconds``). With
            ``train_sizes``, its images are resized like the training batches, to the size
            ``validation_size`` gives, not evaluated at their stored size.
        out_dir: run folder; when given, ``checkpoint.pt`` is written there at every epoch end.
        resume: continue from ``out_dir/checkpoint.pt``; every setting must match the run that
            wrote it, so the result equals an uninterrupted run.
        device: where to train; ``None`` picks cuda > mps > cpu (see ``tutorial_lib.env.choose_device``).
            Inside a ``torch.distributed`` process group, ``"cuda"`` (or ``None`` on a GPU machine)
            means this process's GPU, ``cuda:$LOCAL_RANK`` (torchrun sets it), else the current one.
        progress: show a ``tqdm.auto`` progress bar with the running loss and accuracy (on rank 0
            only, for its slice of the batches, in a distributed run; the epoch lines are global).
        on_epoch_end: called with each finished epoch's record (after validation and the checkpoint),
            on every process of a distributed run. An exception it raises stops training and
            propagates (``tutorial_lib.tuning.search`` raises ``optuna.TrialPruned`` this way to stop a
            bad trial early); ``KeyboardInterrupt`` stops it as Ctrl-C does.
        compile: ``"off"``, ``"static"`` or ``"dynamic"``: train through ``torch.compile`` (one graph
            per input shape, or one with symbolic height and width for several ``train_sizes``;
            ``tutorial_lib.speed.compile_network``). Validation runs the model uncompiled.
        activation_checkpointing: keep only each residual stage's input during the forward pass and
            recompute the rest during backward (``tutorial_lib.speed.checkpoint_stages``): less memory,
            about one more forward pass of time, the same result.
        workers: ``DataLoader`` worker processes that read and decode the images of a dataset that is
            not held in tensors (Imagenette's JPEGs); 0 reads them in this process. No effect on the result.
        **settings: any ``FitConfig`` field (``epochs``, ``lr``, ``batch_size``, ...), replacing the
            value in ``config``. ``FitConfig``'s docstring describes each one.

    Returns:
        The ``History``; ``history.interrupted`` is ``True`` if Ctrl-C stopped the run (the last
        complete checkpoint is kept, the model keeps its mid-epoch weights). In a distributed run
        every process returns the same history and, at each epoch end, holds the same model: rank
        0's, the one its checkpoint stores (plain, without ``DistributedDataParallel``'s
        ``module.`` prefix, so it loads into the model alone).

    Raises:
        ValueError / TypeError: for invalid settings (the message says which and what to use); in a
            distributed run also for a ``batch_size`` the world size does not divide, a dataset smaller
            than one global batch, a world size larger than the dataset, an nccl process group with
            a device that is not CUDA, or a resume with another world size than the checkpoint's.
        FileNotFoundError: if ``resume=True`` and there is no checkpoint to resume from.
        FloatingPointError: if the loss becomes NaN or infinite.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (e.g. tutorial_lib.models.resnet18()), got {type(model).__name__}")
    check_dataset("train_data", train_data)
    if val_data is not None:
        check_dataset("val_data", val_data)
    config = FitConfig.from_settings(config, **settings)
    check_bool("resume", resume)
    if resume and out_dir is None:
        raise ValueError("resume=True needs out_dir, the run folder that holds checkpoint.pt")
    check_choice("compile", compile, COMPILE_MODES)
    check_bool("activation_checkpointing", activation_checkpointing)
    check_int("workers", workers, minimum=0)
    if compile != "off" and activation_checkpointing:
        # Dynamo cannot trace checkpoint's context_fn, which restores BatchNorm statistics after the
        # recomputation (tutorial_lib.speed.checkpoint_stages); without it they would update twice.
        raise ValueError("compile and activation_checkpointing cannot be combined here: torch.compile cannot trace the "
                         "recomputation that keeps BatchNorm statistics exact; use one of them (compile for speed, "
                         "checkpointing for memory)")
    rank, world_size = _rank_and_world_size()
    device = _training_device(device)
    plan = _plan(config, len(train_data), device, world_size)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(plan.precision)
    # float16 gradients underflow without loss scaling; for fp32 and bf16 the scaler is a no-op.
    scaler = torch.amp.GradScaler(device.type, enabled=plan.precision == "fp16")
    model.to(device, memory_format=torch.channels_last if config.channels_last else torch.preserve_format)
    opt = make_optimizer(model, config.optimizer, lr=config.lr, weight_decay=config.weight_decay, momentum=config.momentum)
    sched = _make_scheduler(opt, config.schedule, total_steps=plan.total_steps, warmup_steps=plan.warmup_steps)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    ckpt_path = None if out_dir is None else Path(out_dir) / CHECKPOINT_NAME
    history, start_epoch = History(precision=plan.precision), 0
    if resume:
        if world_size > 1:
            torch.distributed.barrier()  # rank 0 may still be writing the checkpoint of a fit just ended
        history, start_epoch = _load_checkpoint(ckpt_path, model, opt, sched, _run_record(config, plan), device, scaler)
    else:
        torch.manual_seed(derive_seed(config.seed, STREAM_TORCH))
    resolution = _resolution_schedule(config, plan)
    # Validate at a size the network trains at: a 32-px network shown 64-px images sees objects
    # twice as large as any it has learned (notebook 07's scale gap), and scores near chance.
    val_model = model if resolution is None else Resized(model, validation_size(config.train_sizes, config.progressive))
    was_training, steps, epochs, seed = model.training, plan.steps_per_epoch, config.epochs, config.seed
    # One process trains `net`, the model itself. Several: `net` is the model wrapped in DDP, and
    # each process takes its slice of every global batch (`shard`), whose augmentation parameters
    # are the slice `rows` of the whole batch's draws.
    net = ddp = model
    shard, rows, undo_sync_bn, undo_checkpointing = None, None, None, None
    # Redraw the bar at most twice a second: in Jupyter every redraw is a widget message, and a
    # cell that floods the output channel with thousands of them can lose its last messages.
    bar = tqdm(total=epochs * steps, initial=start_epoch * steps, desc="fit", unit="step", disable=not progress or rank != 0,
               mininterval=0.5)
    try:
        if world_size > 1:
            # SyncBN goes in before DDP wraps the model, as PyTorch's SyncBatchNorm documentation says.
            undo_sync_bn = synchronize_batch_norm(model, device) if config.sync_bn else None
            ddp, shard, rows = _data_parallel(model, device), (rank, world_size), (rank * config.batch_size // world_size,
                                                                                  config.batch_size)
        undo_checkpointing = checkpoint_stages(model) if activation_checkpointing else None
        net = compile_network(ddp, compile)
        for epoch in range(start_epoch, epochs):
            model.train()
            start, loss_sum, correct, seen = time.perf_counter(), 0.0, 0, 0
            order_seed = derive_seed(seed, STREAM_SHUFFLE, epoch)
            for step, (images, labels) in enumerate(batches(train_data, config.batch_size, device, shuffle_seed=order_seed,
                                                            channels_last=config.channels_last, shard=shard,
                                                            workers=workers)):
                # Resize first, then augment at the resolution the network sees: a 64-px batch
                # shrunk to 32 px has 4x fewer pixels to resample.
                if resolution is not None:
                    images = resize_batch(images, resolution(epoch * steps + step))
                if config.augment is not None:
                    images = config.augment(images, torch.Generator().manual_seed(derive_seed(seed, STREAM_AUGMENT, epoch, step)),
                                            rows=rows)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    logits = net(images)
                    loss = loss_fn(logits, labels)
                # .item() waits for the device; the NaN check and the running mean need the value.
                loss_value = loss.item()
                if not math.isfinite(loss_value):
                    raise FloatingPointError(_nonfinite_message(loss_value, epoch, step, config.lr, config.grad_clip))
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()  # under DDP, this also averages the gradients over the processes
                if config.grad_clip is not None:
                    scaler.unscale_(opt)  # clip the true gradients, not the scaled ones
                    nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                history.step_lr.append(opt.param_groups[0]["lr"])
                scaler.step(opt)  # skipped (and the scale halved) if a float16 gradient overflowed
                scaler.update()
                sched.step()
                history.step_loss.append(loss_value)
                loss_sum += loss_value * len(labels)
                correct += (logits.argmax(dim=1) == labels).sum().item()
                seen += len(labels)
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}", refresh=False)
                bar.update()
            if world_size > 1:
                # Global metrics: one all-reduce per epoch of this process's sums and of its step
                # losses (each the mean over an equal slice, so their mean is the global batch's).
                totals = _sum_over_processes([loss_sum, correct, seen, *history.step_loss[-steps:]], device)
                loss_sum, correct, seen = totals[:3]
                history.step_loss[-steps:] = [value / world_size for value in totals[3:]]
                _broadcast_buffers(model)
            record = _epoch_record(epoch, history.step_lr[-1], loss_sum / seen, correct / seen, time.perf_counter() - start)
            if val_data is not None:  # in every process, the same model on all of val_data: the same record
                val = evaluate(val_model, val_data, batch_size=max(config.batch_size, 256))
                record.update(val_loss=val["loss"], val_acc=val["accuracy"])
            history.epochs.append(record)
            if ckpt_path is not None and rank == 0:
                _save_checkpoint(ckpt_path, model, opt, sched, history, _run_record(config, plan), scaler)
            if progress and rank == 0:
                bar.write(_format_record(record, epochs))
            if on_epoch_end is not None:
                on_epoch_end(dict(record))
    except KeyboardInterrupt:
        history.interrupted = True
        if rank == 0:
            bar.write(f"interrupted during epoch {len(history) + 1}; the checkpoint keeps epoch {len(history)}")
    finally:
        bar.close()
        if undo_checkpointing is not None:
            undo_checkpointing()
        if ddp is not model:
            # DDP's gradient hooks would stay on the parameters until the wrapper is garbage-collected
            # (pytorch/pytorch#96490): a later fit of the same model must not reach them.
            # The method is private; where a PyTorch lacks it, dropping the wrapper below has to do.
            remove = getattr(ddp, "_remove_autograd_hooks", None)
            if remove is not None:
                remove()
        if undo_sync_bn is not None:
            undo_sync_bn()
        model.train(was_training)
    return history


# --------------------------------------------------------------------------------------------------
# fit's helpers
# --------------------------------------------------------------------------------------------------


def derive_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed derived from ``seed`` and integer ``keys`` (NumPy's SeedSequence hashing).

    Deriving rather than adding (``seed + epoch``) keeps the streams of neighbouring seeds and
    epochs unrelated. The first key names the stream (``STREAM_*``).
    """
    state = np.random.SeedSequence([seed, *keys]).generate_state(1, dtype=np.uint64)[0]
    return int(state) >> 1


# --------------------------------------------------------------------------------------------------
# Distributed training: what fit adds inside a torch.distributed process group
# --------------------------------------------------------------------------------------------------


def _rank_and_world_size() -> tuple[int, int]:
    """``(rank, world_size)`` of this process; ``(0, 1)`` outside an initialized process group."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _training_device(device: str | torch.device | None) -> torch.device:
    """``choose_device``, and inside a process group the device this process owns.

    Raises:
        ValueError: for an nccl process group with a device that is not CUDA (nccl communicates
            between CUDA GPUs only), or MPS in a group (no collective backend runs on it).
    """
    device = choose_device(device)
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return device
    backend = torch.distributed.get_backend()
    if backend == "nccl" and device.type != "cuda":
        raise ValueError(f"the process group uses the nccl backend, which communicates between CUDA GPUs only, but fit "
                         f"trains on {device}; train on a GPU (device='cuda'), or initialize the process group with "
                         "backend='gloo' to train on the CPU")
    if device.type == "mps":
        raise ValueError("distributed training runs on CUDA GPUs (nccl) or the CPU (gloo), not on MPS; use device='cpu'")
    if device.type == "cuda" and device.index is None:
        # One process per GPU: torchrun numbers the processes of a machine with $LOCAL_RANK.
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", torch.cuda.current_device())))
    return device


def _data_parallel(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` wrapped in ``DistributedDataParallel``, which averages the gradients during backward.

    DDP copies rank 0's parameters and buffers to every process when it is built, and rank 0's
    buffers (BatchNorm statistics) again before every forward pass (``broadcast_buffers=True``).
    Per-scale BatchNorm uses one of its layers per step; DDP must be told that some parameters may
    get no gradient (``find_unused_parameters``), or it stops with an error at the next step.
    """
    from torch.nn.parallel import DistributedDataParallel

    unused = any(isinstance(m, PerScaleBatchNorm2d) for m in model.modules())
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                   find_unused_parameters=unused)


def _sum_over_processes(values: Sequence[float], device: torch.device) -> list[float]:
    """Each value summed over the processes (one all-reduce, in float64 so counts stay exact)."""
    totals = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(totals)
    return totals.tolist()


def _broadcast_buffers(model: nn.Module) -> None:
    """Give every process rank 0's buffers, so that each holds the model rank 0 checkpoints.

    Without SyncBN every process updates BatchNorm's running statistics from its own slice, and DDP
    copies rank 0's to the others only at the start of the next forward pass; after an epoch's last
    step they differ. Copied now, validation gives the same result in every process, and the model
    ``fit`` returns is the same everywhere (DDP would have copied them at the next step anyway).
    """
    for buffer in model.buffers():
        torch.distributed.broadcast(buffer, src=0)


# A checkpoint records the settings of its run; one written before a setting existed ran with the
# setting's neutral value, listed here so that it can still be resumed.
_RECORD_DEFAULTS = {"sync_bn": False, "world_size": 1}


def _run_record(config: FitConfig, plan: _Plan) -> dict[str, Any]:
    """What a checkpoint stores about its run, and what ``resume`` requires to be equal: every
    setting, plus the dataset size, the precision actually used and the number of processes."""
    return {**config.to_dict(), "train_size": plan.train_size, "precision": plan.precision,
            "warmup_steps": plan.warmup_steps, "world_size": plan.world_size}


def checkpoint_record(state: dict[str, Any]) -> dict[str, Any]:
    """The run record a checkpoint holds (``load_checkpoint(...)``), as ``run_record`` gives it now.

    A checkpoint written before a setting existed (``sync_bn``, ``world_size``) gets the value its
    run used, so it can be resumed.

    Raises:
        TypeError: if ``state`` is not a checkpoint dict.
    """
    if not isinstance(state, dict) or not isinstance(state.get("config"), dict):
        raise TypeError("state must be the dict load_checkpoint returns")
    return {**_RECORD_DEFAULTS, **state["config"]}


def run_record(config: FitConfig, train_size: int, device: torch.device | str, world_size: int = 1) -> dict[str, Any]:
    """What ``fit`` will store in the checkpoint about this run, and what ``resume`` compares.

    Lets a caller (the command line) refuse a resume with other settings, or a warm-up longer than
    training, before it loads a model or creates a run folder.

    Args:
        config: the run's settings.
        train_size: the number of training images.
        device: where the run trains (``"auto"`` precision resolves differently on each).
        world_size: the number of processes that will train together (``torchrun --nproc_per_node``).

    Raises:
        ValueError: what ``fit`` would raise for this config on this dataset size, device and world size.
    """
    if not isinstance(config, FitConfig):
        raise TypeError(f"config must be a FitConfig, got {type(config).__name__}")
    check_int("train_size", train_size, minimum=1)
    world_size = check_int("world_size", world_size, minimum=1)
    device = torch.device(device)
    return _run_record(config, _plan(config, train_size, device, world_size))


def _resolve_precision(precision: str, device: torch.device) -> str:
    """``"fp32"``, ``"bf16"`` or ``"fp16"``: what ``precision`` means on ``device`` (``"auto"`` asks the hardware)."""
    from tutorial_lib.env import supports_bf16

    if precision == "auto":
        return "bf16" if supports_bf16(device) else "fp32"
    if precision in ("bf16", "fp16") and device.type == "mps":
        raise ValueError(f"precision={precision!r} is not supported on MPS here; use 'fp32' or 'auto'")
    return precision


def _resolution_schedule(config: FitConfig, plan: _Plan) -> Callable[[int], int] | None:
    """The training resolution as a function of the global step, or ``None`` for the data's own size."""
    if config.train_sizes is None:
        return None
    if config.progressive:
        return ProgressiveResolution(config.train_sizes, plan.total_steps)
    return RandomResolution(config.train_sizes, config.seed)


def validation_size(train_sizes: Sequence[int], progressive: bool = False) -> int:
    """The resolution at which ``fit`` evaluates ``val_data`` when it trains at ``train_sizes``.

    One size: that size. Progressive resizing: the last (largest) size, the one the network ends
    training at. Several sizes drawn at random: the middle one (the lower middle for an even
    count), the size the network's training objects are centred on, as in notebook 07's
    "multi-resolution at 32 px" for sizes (24, 32, 48).

    Args:
        train_sizes: the training resolutions, as given to ``fit``.
        progressive: whether ``fit`` goes through them in order (``progressive=True``).

    Raises:
        ValueError / TypeError: for an empty or invalid list of sizes.
    """
    ordered = sorted(check_sizes(train_sizes, "train_sizes"))
    if progressive:
        return ordered[-1]
    return ordered[(len(ordered) - 1) // 2]


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Split the trainable parameters into exactly two optimizer groups: decayed and undecayed.

    Decaying BatchNorm's scale and the biases only pulls them towards zero without any
    regularising benefit; leaving them out is the "no bias decay" of He et al. 2019 ("Bag of
    Tricks for Image Classification", sec 3.1). The rule is by shape: every one-dimensional tensor
    (biases and the weights and biases of normalization layers: 209 tensors in ResNet-101) goes to
    the undecayed group, every other tensor (convolution and linear weights) to the decayed one.

    Args:
        model: the model whose trainable parameters (``requires_grad=True``) to split.
        weight_decay: decay for the weights group (>= 0).

    Returns:
        ``[{"params": weights, "weight_decay": weight_decay}, {"params": one_d, "weight_decay": 0.0}]``,
        in ``model.parameters()`` order (either list may be empty); each trainable parameter is in
        exactly one group.

    Raises:
        TypeError: if ``model`` is not an ``nn.Module`` or ``weight_decay`` is not a number.
        ValueError: if ``weight_decay`` is negative.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_number("weight_decay", weight_decay, minimum=0.0)
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim > 1 else no_decay).append(param)
    return [{"params": decay, "weight_decay": float(weight_decay)}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, name: str, *, lr: float, weight_decay: float = 0.0, momentum: float = 0.9) -> torch.optim.Optimizer:
    """The optimizer ``fit`` builds: ``"adamw"`` or ``"sgd"`` (Nesterov momentum) over ``param_groups``.

    Raises:
        ValueError: for an unknown name or a model with no trainable parameters.
    """
    check_choice("optimizer", name, OPTIMIZERS)
    groups = param_groups(model, weight_decay)
    if not any(group["params"] for group in groups):
        raise ValueError("the model has no trainable parameters (all have requires_grad=False)")
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    # Nesterov momentum: the gradient is taken at the look-ahead point (Sutskever et al. 2013).
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=momentum > 0)


def _cosine_between(start: float, end: float, t: float) -> float:
    """Cosine interpolation from ``start`` (t=0) to ``end`` (t=1)."""
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * min(max(t, 0.0), 1.0)))


def schedule_factor(name: str, step: int, *, warmup_steps: int, total_steps: int) -> float:
    """The learning rate at ``step`` as a fraction of the peak ``lr``, for schedule ``name``.

    * ``"onecycle"`` (Smith & Topin 2019): cosine warm-up from ``lr / 25`` to ``lr`` over
      ``warmup_steps``, then cosine annealing to ``lr / 25e4`` at the last step (the shape and
      defaults of ``torch.optim.lr_scheduler.OneCycleLR``, without its momentum cycling, and valid
      for any number of steps).
    * ``"cosine"``: linear warm-up to ``lr`` (Goyal et al. 2017, sec 2.2), then half a cosine down to
      zero (Loshchilov & Hutter 2017, "SGDR", eq. 5 with one cycle).
    * ``"step"``: linear warm-up (none by default), then ``lr``, divided by 10 at each of
      ``STEP_MILESTONES`` (50% and 75% of the run, the CIFAR schedule of He et al. 2016, sec 4.2).
    * ``"constant"``: linear warm-up (none by default), then ``lr`` to the end.

    Args:
        name: one of ``SCHEDULES``.
        step: the optimizer step, from 0 to ``total_steps - 1``.
        warmup_steps: length of the warm-up.
        total_steps: length of the whole run.

    Raises:
        ValueError: for an unknown name (the message lists the valid ones), ``total_steps < 1`` or a
            warm-up outside ``[0, total_steps)``.
    """
    check_choice("schedule", name, SCHEDULES)
    if total_steps < 1 or not 0 <= warmup_steps < total_steps:
        raise ValueError(
            f"need total_steps >= 1 and 0 <= warmup_steps < total_steps, got warmup_steps={warmup_steps}, "
            f"total_steps={total_steps}"
        )
    if name in ("step", "constant"):
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        if name == "constant":
            return 1.0
        passed = sum(step >= round(fraction * total_steps) for fraction in STEP_MILESTONES)
        return 10.0**-passed
    if name == "onecycle":
        if step < warmup_steps:
            return _cosine_between(1 / 25, 1.0, step / warmup_steps)
        # Reaches the final value exactly at the last step.
        return _cosine_between(1.0, 1 / 25e4, (step - warmup_steps) / max(1, total_steps - 1 - warmup_steps))
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    # Stops one step short of zero, so the last step still learns something.
    return _cosine_between(1.0, 0.0, (step - warmup_steps) / (total_steps - warmup_steps))


def _make_scheduler(optimizer: torch.optim.Optimizer, name: str, *, total_steps: int, warmup_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    # A lambda's state is not saved by LambdaLR.state_dict (only last_epoch & co. are), which keeps
    # the checkpoint loadable with weights_only=True; the function is rebuilt from the settings.
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: schedule_factor(name, step, warmup_steps=warmup_steps, total_steps=total_steps)
    )


def _nonfinite_message(value: float, epoch: int, step: int, lr: float, grad_clip: float | None) -> str:
    clip = "" if grad_clip is None else f" (now {grad_clip})"
    return (
        f"the training loss became {value} at epoch {epoch + 1}, step {step + 1}. Try: a lower learning "
        f"rate (now lr={lr}, e.g. lr={lr / 10:g}); gradient clipping, e.g. grad_clip=1.0{clip}; and check "
        "the data for NaN/inf values (torch.isfinite(images).all())."
    )


def _epoch_record(epoch: int, lr: float, loss: float, acc: float, seconds: float) -> dict[str, Any]:
    return {
        "epoch": epoch + 1,
        "lr": float(lr),
        "train_loss": float(loss),
        "train_acc": float(acc),
        "val_loss": None,
        "val_acc": None,
        "seconds": float(seconds),
    }


def _format_record(record: dict[str, Any], epochs: int) -> str:
    text = f"epoch {record['epoch']}/{epochs}: train loss {record['train_loss']:.4f} acc {record['train_acc']:.4f}"
    if record["val_acc"] is not None:
        text += f" | val loss {record['val_loss']:.4f} acc {record['val_acc']:.4f}"
    return text + f" | {record['seconds']:.1f} s"


def _rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _save_checkpoint(path: Path, model: nn.Module, opt: torch.optim.Optimizer, sched: Any, history: History, config: dict[str, Any],
                     scaler: torch.amp.GradScaler | None = None) -> None:
    """Write the checkpoint atomically: a crash mid-write leaves the previous one intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    device = next(model.parameters()).device
    state = {
        "format": 2,
        "epoch": len(history),
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "rng": _rng_state(device),
        "history": history.to_dict(),
        "config": config,
    }
    if scaler is not None and scaler.is_enabled():
        state["scaler"] = scaler.state_dict()  # the loss scale a float16 run has reached
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a ``checkpoint.pt`` written by ``fit`` (safely: ``weights_only=True``).

    Args:
        path: the checkpoint file, or the run folder that holds it.
        map_location: where to put the tensors.

    Returns:
        The checkpoint dict: ``epoch``, ``model`` (a state_dict), ``optimizer``, ``scheduler``, ``rng``,
        ``history`` (a plain dict; ``History.from_dict`` rebuilds it) and ``config``.

    Raises:
        FileNotFoundError: if there is no checkpoint there.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; start without resume (a run writes one at every epoch end)")
    return torch.load(path, map_location=map_location, weights_only=True)


def _load_checkpoint(path: Path | None, model: nn.Module, opt: torch.optim.Optimizer, sched: Any, config: dict[str, Any], device: torch.device,
                     scaler: torch.amp.GradScaler | None = None) -> tuple[History, int]:
    state = load_checkpoint(path, map_location=device)
    if state.get("format") != 2:
        raise ValueError(f"{path} was written by an older version of fit (format {state.get('format')}); "
                         "start a new run folder without resume")
    saved = checkpoint_record(state)
    diff = [f"{k}: checkpoint {saved.get(k)!r} vs now {config[k]!r}" for k in config if saved.get(k) != config[k]]
    if diff:
        processes = " (world_size is the number of processes: resume with as many)" if saved.get("world_size") != config["world_size"] else ""
        raise ValueError(
            "cannot resume exactly: settings differ from the run that wrote the checkpoint ("
            + "; ".join(diff) + f"){processes}. Pass the same settings, or start a new run folder without resume."
        )
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:  # other layers or shapes: the run was started with another model
        first = str(err).strip().splitlines()[1].strip() if len(str(err).strip().splitlines()) > 1 else str(err)
        raise ValueError(f"the checkpoint at {path} holds another model's weights ({first}); resume with the "
                         "model the run was started with") from None
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    if scaler is not None and "scaler" in state:
        scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["rng"]["torch"].cpu())
    if "cuda" in state["rng"] and device.type == "cuda":
        torch.cuda.set_rng_state_all([s.cpu() for s in state["rng"]["cuda"]])
    return History.from_dict(state["history"]), int(state["epoch"])


# --------------------------------------------------------------------------------------------------
# evaluate
# --------------------------------------------------------------------------------------------------


def evaluate(
    model: nn.Module,
    data: Dataset,
    *,
    batch_size: int = 256,
    by: str | Sequence[str] | None = None,
    size_bins: int | Sequence[float] = 6,
    return_predictions: bool = False,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """Accuracy and mean cross-entropy of ``model`` on ``data``, optionally broken down.

    The model is put in ``eval()`` mode (BatchNorm uses its running statistics) and its previous
    mode is restored afterwards.

    Args:
        model: a classifier returning logits.
        data: a dataset of ``(image, label)``.
        batch_size: images per forward pass (no effect on the result).
        by: ``None``, ``"class"``, ``"size"`` or both as a tuple. ``"size"`` needs the dataset's
            ``object_sizes`` (one size per item, in pixels).
        size_bins: number of equal-width object-size bins between the smallest and largest size in
            ``data``, or explicit bin edges (increasing; sizes outside them are left out), so that
            several splits can share bins.
        return_predictions: also return every item's predicted class, for error analyses the
            breakdowns do not cover (which items, which wrong answers).
        device: where to run; default: the device of the model's parameters.

    Returns:
        ``{"accuracy": float in [0, 1], "loss": float, "count": int}``, plus ``"by_class"``:
        ``{class_name: {"accuracy", "count"}}`` and/or ``"by_size"``: a list of
        ``{"size_min", "size_max", "accuracy", "count"}`` (non-empty bins only), and with
        ``return_predictions`` ``"predictions"``: an (N,) int64 tensor in the dataset's order.

    Raises:
        ValueError: for an empty dataset, an unknown breakdown, or ``"size"`` without object sizes.
    """
    wanted = () if by is None else ((by,) if isinstance(by, str) else tuple(by))
    unknown = [b for b in wanted if b not in BREAKDOWNS]
    if unknown:
        raise ValueError(f"unknown breakdown {unknown}; valid values for by: {', '.join(BREAKDOWNS)} (or a tuple of them)")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_int("batch_size", batch_size, minimum=1)
    check_dataset("data", data)
    check_bool("return_predictions", return_predictions)
    sizes = getattr(data, "object_sizes", None)
    if "size" in wanted and sizes is None:
        raise ValueError(f"by='size' needs a dataset with object_sizes; {type(data).__name__} has none")
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    device = torch.device(device)
    was_training = model.training
    model.eval()
    loss_sum, preds, targets = 0.0, [], []
    try:
        with torch.inference_mode():
            for images, labels in batches(data, batch_size, device, channels_last=uses_channels_last(model)):
                logits = model(images)
                loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
                preds.append(logits.argmax(dim=1).cpu())
                targets.append(labels.cpu())
    finally:
        model.train(was_training)
    pred, target = torch.cat(preds), torch.cat(targets)
    hit = pred == target
    result: dict[str, Any] = {"accuracy": hit.float().mean().item(), "loss": loss_sum / len(target), "count": len(target)}
    if "class" in wanted:
        names = list(getattr(data, "classes", None) or [str(c) for c in range(int(target.max()) + 1)])
        result["by_class"] = {
            str(names[c]): {"accuracy": hit[target == c].float().mean().item(), "count": int((target == c).sum())}
            for c in range(len(names))
            if (target == c).any()
        }
    if "size" in wanted:
        result["by_size"] = _accuracy_by_size(hit, torch.as_tensor(np.asarray(sizes), dtype=torch.float64), size_bins)
    if return_predictions:
        result["predictions"] = pred
    return result


def uses_channels_last(model: nn.Module) -> bool:
    """Whether the model's first spatial convolution weight is stored channels-last (set by ``fit``)."""
    for param in model.parameters():
        if param.ndim == 4 and param.shape[2] * param.shape[3] > 1:
            return not param.is_contiguous() and param.is_contiguous(memory_format=torch.channels_last)
    return False


def _accuracy_by_size(hit: torch.Tensor, sizes: torch.Tensor, size_bins: int | Sequence[float]) -> list[dict[str, Any]]:
    if len(sizes) != len(hit):
        raise ValueError(f"object_sizes has {len(sizes)} entries but the dataset has {len(hit)} items")
    if isinstance(size_bins, int) and not isinstance(size_bins, bool):
        if size_bins < 1:
            raise ValueError(f"size_bins must be >= 1 or a sequence of edges, got {size_bins}")
        lo, hi = sizes.min().item(), sizes.max().item()
        edges = torch.linspace(lo, hi if hi > lo else lo + 1, size_bins + 1, dtype=torch.float64)
    else:
        edges = torch.as_tensor(list(size_bins), dtype=torch.float64)
        if edges.ndim != 1 or len(edges) < 2 or not bool((edges[1:] > edges[:-1]).all()):
            raise ValueError(f"size_bins edges must be an increasing sequence of at least 2 numbers, got {list(size_bins)}")
    # Bins are [edge_i, edge_i+1), the last one closed so the largest size is counted.
    index = torch.bucketize(sizes, edges, right=True) - 1
    index[sizes == edges[-1]] = len(edges) - 2
    rows = []
    for b in range(len(edges) - 1):
        mask = index == b
        if mask.any():
            rows.append({
                "size_min": float(edges[b]),
                "size_max": float(edges[b + 1]),
                "accuracy": hit[mask].float().mean().item(),
                "count": int(mask.sum()),
            })
    return rows


# --------------------------------------------------------------------------------------------------
# Measurements used by the notebooks
# --------------------------------------------------------------------------------------------------


def gradient_norms(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, layer_types: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.Linear)
) -> dict[str, float]:
    """L2 norm of the loss gradient for the weight of every conv and linear layer, in forward order.

    One forward/backward pass in training mode (BatchNorm on batch statistics, as in training) on a
    deep copy of ``model``, so the model's ``.grad`` fields and BatchNorm running statistics are left
    untouched.

    Args:
        model: the model to measure (typically freshly initialised).
        images: a batch ``(N, C, H, W)``; uint8 images are scaled to [0, 1].
        labels: class indices ``(N,)``.
        layer_types: which module types to report.

    Returns:
        ``{module_name: gradient_norm}`` ordered from input to output.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(f"images must be a (N, C, H, W) tensor, got {getattr(images, 'shape', type(images).__name__)}")
    if not isinstance(labels, torch.Tensor) or labels.shape != images.shape[:1]:
        raise ValueError("labels must be a tensor of shape (N,) matching images")
    probe = copy.deepcopy(model)
    probe.train()
    device = next(probe.parameters()).device
    images = to_float_images(images.to(device))
    layers = [(name, m) for name, m in probe.named_modules() if isinstance(m, layer_types)]
    if not layers:
        raise ValueError(f"the model has no layers of type {[t.__name__ for t in layer_types]}")
    order: list[str] = []
    hooks = [m.register_forward_hook(lambda mod, inp, out, name=name: order.append(name)) for name, m in layers]
    try:
        loss = F.cross_entropy(probe(images), labels.to(device).long())
    finally:
        for hook in hooks:
            hook.remove()
    by_name = dict(layers)
    used = [name for name in dict.fromkeys(order)]  # forward order, each layer once
    grads = torch.autograd.grad(loss, [by_name[name].weight for name in used])
    return {name: grad.norm().item() for name, grad in zip(used, grads)}
