"""The training engine: ``fit``, ``evaluate``, the run ``History`` and exact checkpoints.

``fit`` is meant to be read: one screen of plain PyTorch (forward, loss, backward, optimizer step,
scheduler step), with everything around it (argument checks, optimizer and schedule construction,
batching, augmentation, checkpoints) factored into small helpers below it.

Three promises, each tested in ``tests/test_train.py``:

* **Reproducible.** Shuffling and augmentation draw from ``torch.Generator`` objects seeded from
  ``(seed, epoch)`` and ``(seed, epoch, step)``, never from hidden global state, so the same seed gives
  the same run, bit for bit, on the same machine.
* **Resumable.** At each epoch end ``fit`` writes ``checkpoint.pt`` atomically (write a temporary file,
  then ``os.replace``) holding the model, optimizer, scheduler, RNG states, history and settings, and
  only tensors and plain containers, so ``torch.load(weights_only=True)`` reads it. A run stopped with
  Ctrl-C and resumed with ``resume=True`` ends with exactly the weights and metrics of an uninterrupted
  run.
* **Loud.** A NaN or infinite loss stops training at once with a ``FloatingPointError`` that says what
  to try, instead of silently producing a useless model.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm.auto import tqdm

from tutorial_lib.env import choose_device
from tutorial_lib.multiscale import ProgressiveResolution, RandomResolution, Resized, check_sizes, resize_batch

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
        precision: the arithmetic of the training steps, ``"fp32"`` or ``"bf16"`` (mixed precision).
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
# Augmentation
# --------------------------------------------------------------------------------------------------


# Control points per side of Augment's elastic displacement field.
_ELASTIC_GRID = 8


@dataclass(frozen=True)
class Augment:
    """Random translation and zoom applied to whole batches on the training device.

    Each image gets its own shift and zoom, drawn from a generator seeded by ``fit`` from
    ``(seed, epoch, step)``, and is resampled once with ``F.affine_grid`` + ``F.grid_sample``
    (bilinear, reflection padding, so the photo background continues past the edge instead of a
    black border the network could learn to exploit).

    Horizontal flips are off by default, on purpose: a mirrored digit is not the same digit (a
    flipped 2, 3, 4, 5, 7 or 9 is a glyph no one writes), so a flip would teach the network to accept
    shapes that never occur and blur the difference between classes. Flips suit natural photos
    (ImageNet, CIFAR-10), not characters; ``flip=True`` turns them on.

    Args:
        max_shift: largest translation, as a fraction of the image side (0.1 = up to 10% each way).
        scale: ``(low, high)`` range of the zoom factor, drawn log-uniformly; ``(1.0, 1.0)`` keeps the
            object size. A zoom above 1 enlarges the object. Scale augmentation is one of the
            multi-scale training tools of notebook 07, so the CPU baseline leaves it off. This is
            the scale range of a random-resized crop expressed as a zoom: a crop covering a
            fraction ``a`` of the image area, resized back to full size, is a zoom of ``1/sqrt(a)``
            (zooms below 1 show more than the image, the border filled by reflection).
        rotate: largest rotation in degrees, each way (square images). Handwriting slants from
            writer to writer, so a few degrees of rotation are a plausible variation of a digit
            (the classic elastic/affine distortions of Simard et al. 2003, sec 2); large angles are
            not (a 6 turned by 180 degrees is a 9).
        flip: mirror each image left-right with probability 1/2 (off by default; see above).
        elastic: largest displacement of a smooth random warp, as a fraction of the image side
            (0 switches it off). Each image gets its own displacement field: uniform random
            vectors on an 8 x 8 grid of control points, interpolated bicubically to every pixel.
            A cheap variant of the elastic distortion of Simard et al. (2003, sec 2), which made
            new "handwriting" out of MNIST's training digits by smoothing a per-pixel random field
            with a Gaussian; here the coarse control grid does the smoothing, so strokes bend
            without tearing. ``0.03`` moves a pixel of a 32-px image by up to about 1 pixel. On
            ``cpu-tuned`` it did not help (validation 0.9739 at 0.03, 0.9244 at 0.05, against 0.9755).
    """

    max_shift: float = 0.1
    scale: tuple[float, float] = (1.0, 1.0)
    rotate: float = 0.0
    flip: bool = False
    elastic: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.flip, bool):
            raise TypeError(f"flip must be True or False, got {self.flip!r}")
        if not 0.0 <= self.max_shift < 1.0:
            raise ValueError(f"max_shift must be in [0, 1), got {self.max_shift}")
        if len(self.scale) != 2 or not 0.0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"scale must be a (low, high) pair with 0 < low <= high, got {self.scale}")
        if not 0.0 <= self.rotate <= 45.0:
            raise ValueError(f"rotate must be in [0, 45] degrees, got {self.rotate}")
        if not 0.0 <= self.elastic <= 0.25:
            raise ValueError(f"elastic must be in [0, 0.25] (a fraction of the image side; 0.03 is about 1 px at 32 px), got {self.elastic}")
        object.__setattr__(self, "scale", (float(self.scale[0]), float(self.scale[1])))

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment a batch ``(N, C, H, W)``; parameters come from the CPU ``generator``."""
        n = images.shape[0]
        shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * self.max_shift * 2  # grid spans [-1, 1]
        low, high = math.log(self.scale[0]), math.log(self.scale[1])
        zoom = torch.exp(low + (high - low) * torch.rand(n, generator=generator))
        angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(self.rotate)
        # affine_grid maps output coordinates to input ones: sampling a window 1/zoom as wide enlarges.
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0] = cos
        theta[:, 0, 1] = -sin
        theta[:, 1, 0] = sin
        theta[:, 1, 1] = cos
        theta[:, :, 2] = shift
        if self.flip:  # drawn last, so that flip=False leaves the other draws unchanged
            mirrored = torch.rand(n, generator=generator) < 0.5
            theta[mirrored, :, 0] *= -1  # output x -> input -x: a left-right mirror
        theta = theta.to(device=images.device, dtype=images.dtype)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        if self.elastic > 0:  # drawn after the flips, so elastic=0 leaves the other draws unchanged
            control = (torch.rand(n, 2, _ELASTIC_GRID, _ELASTIC_GRID, generator=generator) * 2 - 1) * self.elastic * 2
            field = F.interpolate(control.to(device=images.device, dtype=images.dtype), size=images.shape[-2:],
                                  mode="bicubic", align_corners=True)
            field = field.clamp(-2 * self.elastic, 2 * self.elastic)  # bicubic can overshoot its control values
            grid = grid + field.permute(0, 2, 3, 1)  # (N, H, W, 2) offsets in grid units (the side spans 2)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    def to_dict(self) -> dict[str, Any]:
        return {"max_shift": self.max_shift, "scale": list(self.scale), "rotate": self.rotate, "flip": self.flip,
                "elastic": self.elastic}


def _as_augment(augment: Augment | dict | bool | None) -> Augment | None:
    if augment is None or augment is False:
        return None
    if augment is True:
        return Augment()
    if isinstance(augment, Augment):
        return augment
    if isinstance(augment, dict):
        valid = ("max_shift", "scale", "rotate", "flip", "elastic")
        unknown = sorted(set(augment) - set(valid))
        if unknown:
            raise ValueError(f"unknown augment option(s) {unknown}; valid options: {', '.join(valid)}")
        return Augment(**{k: tuple(v) if k == "scale" else v for k, v in augment.items()})
    raise TypeError(f"augment must be None, a bool, a dict or an Augment, got {type(augment).__name__}")


# --------------------------------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------------------------------


def fit(
    model: nn.Module,
    train_data: Dataset,
    *,
    epochs: int,
    batch_size: int = 128,
    optimizer: str = "adamw",
    lr: float = 3e-3,
    weight_decay: float = 5e-4,
    momentum: float = 0.9,
    schedule: str = "onecycle",
    warmup_epochs: float | None = None,
    warmup_steps: int | None = None,
    label_smoothing: float = 0.0,
    grad_clip: float | None = None,
    augment: Augment | dict | bool | None = None,
    train_sizes: Sequence[int] | None = None,
    progressive: bool = False,
    channels_last: bool = False,
    precision: str = "fp32",
    val_data: Dataset | None = None,
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
) -> History:
    """Train ``model`` on ``train_data`` and return the measured ``History``.

    Args:
        model: a classifier returning logits ``(N, num_classes)``; trained in place.
        train_data: a dataset of ``(image, label)``. One exposing ``.images`` and ``.labels`` tensors
            (like ``load_dataset("multiscale-digits", ...)``) is batched by tensor indexing, which is
            much faster on a CPU than a per-item ``DataLoader``.
        epochs: number of passes over ``train_data``. The last incomplete batch of each epoch is
            dropped (BatchNorm needs more than one sample).
        batch_size: images per optimizer step.
        optimizer: ``"adamw"`` (Loshchilov & Hutter, 2019) or ``"sgd"`` (Nesterov momentum).
        lr: peak learning rate.
        weight_decay: decoupled weight decay, applied to weights only, not to biases and
            normalization parameters (the "no bias decay" of He et al. 2019, "Bag of Tricks", sec 3.1).
        momentum: SGD momentum (ignored by AdamW).
        schedule: ``"onecycle"``, ``"cosine"`` (with linear warmup), ``"step"`` (divided by 10 at
            50% and 75% of training) or ``"constant"``; see ``schedule_factor``. Stepped after every batch.
        warmup_epochs: warmup length in epochs (may be fractional). Default: 30% of training for
            one-cycle, 5% for cosine, none for step and constant (``DEFAULT_WARMUP``).
        warmup_steps: warmup length in steps; overrides ``warmup_epochs``.
        label_smoothing: target smoothing (Szegedy et al. 2016, sec 7), 0 to switch off.
        grad_clip: clip the global gradient norm to this value; ``None`` switches clipping off.
        augment: ``None``/``False`` for none, ``True`` for ``Augment()``, a dict of its options, or an
            ``Augment``.
        train_sizes: input resolutions to train at (notebook 07). ``None`` trains at the data's own
            size; one size resizes every batch to it; several sizes resize each batch to one drawn
            per step by ``tutorial_lib.multiscale.RandomResolution`` (a function of (seed, step), so
            resumes and distributed replicas agree without communicating). The batch is resized
            before ``augment`` runs, so shifts and zooms resample the resized pixels (cheaper;
            a zoom-in then magnifies the resized image, not the stored one).
        progressive: with several ``train_sizes``, go through them from small to large in equal
            phases instead (``tutorial_lib.multiscale.ProgressiveResolution``).
        channels_last: store the model's weights and the batches in the NHWC ("channels last")
            layout. On a CPU, oneDNN's convolutions (backward especially) run several times faster
            for the narrow ResNets of this series (measured in ``benchmarks/bench_default_recipe.py``);
            a model that reshapes feature maps with ``.view`` may need ``.reshape`` instead.
        precision: ``"fp32"``; ``"bf16"``: mixed precision, the forward pass and loss under
            ``torch.autocast`` with bfloat16 (convolutions and matrix products in bfloat16, weights,
            optimizer state and BatchNorm statistics in float32; bfloat16 keeps float32's exponent
            range, so unlike float16 no loss scaling is needed); ``"auto"``: ``"bf16"`` where the device
            runs it natively (``tutorial_lib.env.supports_bf16``), else ``"fp32"``. On the reference
            CPU (AVX512-BF16) a training step of the ``cpu-baseline`` network takes 61 ms instead of
            96 ms. ``history.precision`` records what was used.
        val_data: evaluated at every epoch end (its time is not counted in ``seconds``). With
            ``train_sizes``, its images are resized like the training batches, to the size
            ``validation_size`` gives (the one training size; the last one when progressive; the
            middle one of several drawn at random), not evaluated at their stored size.
        out_dir: run folder; when given, ``checkpoint.pt`` is written there at every epoch end.
        resume: continue from ``out_dir/checkpoint.pt``; every setting must match the run that
            wrote it, so the result equals an uninterrupted run.
        seed: seeds shuffling, augmentation and torch's global generator (for dropout-like layers).
            Initialise the model before calling ``fit`` (e.g. after ``seed_everything``).
        device: where to train; ``None`` picks cuda > mps > cpu (see ``tutorial_lib.env.choose_device``).
        progress: show a ``tqdm.auto`` progress bar with the running loss and accuracy.
        on_epoch_end: called with each finished epoch's record (after validation and the checkpoint).
            An exception it raises stops training and propagates (``tutorial_lib.tuning.search``
            raises ``optuna.TrialPruned`` this way to stop a bad trial early).

    Returns:
        The ``History``; ``history.interrupted`` is ``True`` if Ctrl-C stopped the run (the last
        complete checkpoint is kept, the model keeps its mid-epoch weights).

    Raises:
        ValueError / TypeError: for invalid settings (the message says which and what to use).
        FileNotFoundError: if ``resume=True`` and there is no checkpoint to resume from.
        FloatingPointError: if the loss becomes NaN or infinite.
    """
    # Check every setting, and freeze the ones that define the run into a plain dict (the checkpoint keeps it).
    config = _fit_config(**{k: v for k, v in locals().items() if k not in ("model", "val_data", "device", "progress", "on_epoch_end")})
    device = choose_device(device)
    config["precision"] = _resolve_precision(precision, device)
    amp_dtype = torch.bfloat16 if config["precision"] == "bf16" else None
    model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    aug = _as_augment(augment)
    opt = _make_optimizer(model, optimizer, lr=lr, weight_decay=weight_decay, momentum=momentum)
    sched = _make_scheduler(opt, schedule, total_steps=config["total_steps"], warmup_steps=config["warmup_steps"])
    loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    ckpt_path = None if out_dir is None else Path(out_dir) / CHECKPOINT_NAME
    history, start_epoch = History(precision=config["precision"]), 0
    if resume:
        history, start_epoch = _load_checkpoint(ckpt_path, model, opt, sched, config, device)
    else:  # random streams derived from seed: 1 shuffling, 2 augmentation, 3 torch's global generator
        torch.manual_seed(_derive_seed(seed, 3))
    resolution = _resolution_schedule(config)
    # Validate at a size the network trains at: a 32-px network shown 64-px images sees objects
    # twice as large as any it has learned (notebook 07's scale gap), and scores near chance.
    val_model = model if resolution is None else Resized(model, validation_size(config["train_sizes"], progressive))
    was_training, steps = model.training, config["steps_per_epoch"]
    # Redraw the bar at most twice a second: in Jupyter every redraw is a widget message, and a
    # cell that floods the output channel with thousands of them can lose its last messages.
    bar = tqdm(total=epochs * steps, initial=start_epoch * steps, desc="fit", unit="step", disable=not progress,
               mininterval=0.5)
    try:
        for epoch in range(start_epoch, epochs):
            model.train()
            start, loss_sum, correct, seen = time.perf_counter(), 0.0, 0, 0
            batches = _batches(train_data, batch_size, device, shuffle_seed=_derive_seed(seed, 1, epoch), channels_last=channels_last)
            for step, (images, labels) in enumerate(batches):
                # Resize first, then augment at the resolution the network sees: a 64-px batch
                # shrunk to 32 px has 4x fewer pixels to resample (7.1 -> 1.2 ms per 64 images here).
                if resolution is not None:
                    images = resize_batch(images, resolution(epoch * steps + step))
                if aug is not None:
                    images = aug(images, torch.Generator().manual_seed(_derive_seed(seed, 2, epoch, step)))
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    logits = model(images)
                    loss = loss_fn(logits, labels)
                loss_value = loss.item()  # one device sync per step: the NaN check and the running mean
                if not math.isfinite(loss_value):
                    raise FloatingPointError(_nonfinite_message(loss_value, epoch, step, lr, grad_clip))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if grad_clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                history.step_lr.append(opt.param_groups[0]["lr"])
                opt.step()
                sched.step()
                history.step_loss.append(loss_value)
                loss_sum += loss_value * len(labels)
                correct += (logits.argmax(dim=1) == labels).sum().item()
                seen += len(labels)
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}", refresh=False)
                bar.update()
            record = _epoch_record(epoch, history.step_lr[-1], loss_sum / seen, correct / seen, time.perf_counter() - start)
            if val_data is not None:
                val = evaluate(val_model, val_data, batch_size=max(batch_size, 256))
                record.update(val_loss=val["loss"], val_acc=val["accuracy"])
            history.epochs.append(record)
            if ckpt_path is not None:
                _save_checkpoint(ckpt_path, model, opt, sched, history, config)
            if progress:
                bar.write(_format_record(record, epochs))
            if on_epoch_end is not None:
                on_epoch_end(dict(record))
    except KeyboardInterrupt:
        history.interrupted = True
        bar.write(f"interrupted during epoch {len(history) + 1}; the checkpoint keeps epoch {len(history)}")
    finally:
        bar.close()
        model.train(was_training)
    return history


# --------------------------------------------------------------------------------------------------
# fit's helpers
# --------------------------------------------------------------------------------------------------


def _derive_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed derived from ``seed`` and integer ``keys`` (NumPy's SeedSequence hashing).

    Deriving rather than adding (``seed + epoch``) keeps the streams of neighbouring seeds and
    epochs unrelated.
    """
    state = np.random.SeedSequence([seed, *keys]).generate_state(1, dtype=np.uint64)[0]
    return int(state) >> 1


def _check_number(name: str, value: Any, *, low: float, low_ok: bool = True, high: float | None = None, integer: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or (not integer and not math.isfinite(value)):
        raise TypeError(f"{name} must be a finite {'integer' if integer else 'number'}, got {value!r}")
    if value < low or (value == low and not low_ok) or (high is not None and value >= high):
        upper = "" if high is None else f" and < {high}"
        raise ValueError(f"{name} must be {'>=' if low_ok else '>'} {low}{upper}, got {value!r}")


def _fit_config(
    *,
    train_data: Dataset,
    epochs: int,
    batch_size: int,
    optimizer: str,
    lr: float,
    weight_decay: float,
    momentum: float,
    schedule: str,
    warmup_epochs: float | None,
    warmup_steps: int | None,
    label_smoothing: float,
    grad_clip: float | None,
    augment: Any,
    train_sizes: Sequence[int] | None,
    progressive: bool,
    channels_last: bool,
    precision: str,
    out_dir: Any,
    resume: bool,
    seed: int,
) -> dict[str, Any]:
    """Validate ``fit``'s settings and return them as a plain dict (stored in the checkpoint)."""
    _check_number("epochs", epochs, low=1, integer=True)
    _check_number("batch_size", batch_size, low=1, integer=True)
    _check_number("lr", lr, low=0, low_ok=False)
    _check_number("weight_decay", weight_decay, low=0)
    _check_number("momentum", momentum, low=0, high=1)
    _check_number("label_smoothing", label_smoothing, low=0, high=1)
    _check_number("seed", seed, low=0, integer=True)
    if grad_clip is not None:
        _check_number("grad_clip", grad_clip, low=0, low_ok=False)
    if not isinstance(channels_last, bool):
        raise TypeError(f"channels_last must be True or False, got {channels_last!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid names: {', '.join(PRECISIONS)}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; valid names: {', '.join(OPTIMIZERS)}")
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; valid names: {', '.join(SCHEDULES)}")
    if resume and out_dir is None:
        raise ValueError("resume=True needs out_dir, the run folder that holds checkpoint.pt")
    if not hasattr(train_data, "__len__") or not hasattr(train_data, "__getitem__"):
        raise TypeError(f"train_data must be a map-style Dataset with __len__ and __getitem__, got {type(train_data).__name__}")
    n = len(train_data)
    if n == 0:
        raise ValueError("train_data is empty; check the split name and any subset you took")
    steps_per_epoch = max(1, n // batch_size)
    total_steps = epochs * steps_per_epoch
    if warmup_steps is None:
        if warmup_epochs is None:
            warmup_steps = round(DEFAULT_WARMUP[schedule] * total_steps)
        else:
            _check_number("warmup_epochs", warmup_epochs, low=0)
            warmup_steps = round(warmup_epochs * steps_per_epoch)
    _check_number("warmup_steps", warmup_steps, low=0, integer=True)
    if warmup_steps >= total_steps:
        raise ValueError(
            f"warmup ({warmup_steps} steps) must be shorter than training ({total_steps} steps); "
            "lower warmup_epochs/warmup_steps or raise epochs"
        )
    augment_obj = _as_augment(augment)
    if train_sizes is not None:
        train_sizes = list(check_sizes(train_sizes, "train_sizes"))
    if not isinstance(progressive, bool):
        raise TypeError(f"progressive must be True or False, got {progressive!r}")
    if progressive and (train_sizes is None or len(train_sizes) < 2):
        raise ValueError("progressive=True needs at least two train_sizes, e.g. train_sizes=(32, 48, 64)")
    return {
        "epochs": epochs,
        "batch_size": batch_size,
        "optimizer": optimizer,
        "lr": float(lr),
        "weight_decay": float(weight_decay),
        "momentum": float(momentum),
        "schedule": schedule,
        "warmup_steps": int(warmup_steps),
        "label_smoothing": float(label_smoothing),
        "grad_clip": None if grad_clip is None else float(grad_clip),
        "augment": None if augment_obj is None else augment_obj.to_dict(),
        "train_sizes": train_sizes,
        "progressive": progressive,
        "channels_last": channels_last,
        "seed": int(seed),
        "train_size": n,
        "steps_per_epoch": steps_per_epoch,
        "total_steps": total_steps,
    }


#: Values of ``fit(precision=...)``.
PRECISIONS = ("fp32", "bf16", "auto")


def _resolve_precision(precision: str, device: torch.device) -> str:
    """``"fp32"`` or ``"bf16"``: what ``precision`` means on ``device`` (``"auto"`` asks the hardware)."""
    from tutorial_lib.env import supports_bf16

    if precision == "auto":
        return "bf16" if supports_bf16(device) else "fp32"
    if precision == "bf16" and device.type == "mps":
        raise ValueError("precision='bf16' is not supported on MPS here; use 'fp32' or 'auto'")
    return precision


def _resolution_schedule(config: dict[str, Any]) -> Callable[[int], int] | None:
    """The training resolution as a function of the global step, or ``None`` for the data's own size."""
    sizes = config["train_sizes"]
    if sizes is None:
        return None
    if config["progressive"]:
        return ProgressiveResolution(sizes, config["total_steps"])
    return RandomResolution(sizes, config["seed"])


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
    _check_number("weight_decay", weight_decay, low=0)
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim > 1 else no_decay).append(param)
    return [{"params": decay, "weight_decay": float(weight_decay)}, {"params": no_decay, "weight_decay": 0.0}]


#: The earlier name of ``param_groups``, kept so existing code keeps working.
parameter_groups = param_groups


def _make_optimizer(model: nn.Module, name: str, *, lr: float, weight_decay: float, momentum: float) -> torch.optim.Optimizer:
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
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; valid names: {', '.join(SCHEDULES)}")
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


def _tensor_view(data: Dataset) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(images, labels)`` tensors when ``data`` exposes them whole, else ``None``."""
    if isinstance(data, TensorDataset) and len(data.tensors) == 2:
        return data.tensors[0], data.tensors[1]
    images, labels = getattr(data, "images", None), getattr(data, "labels", None)
    if isinstance(images, torch.Tensor) and isinstance(labels, torch.Tensor) and len(images) == len(labels) == len(data):
        if getattr(data, "transform", None) is None:  # a per-item transform must run through __getitem__
            return images, labels
    return None


def _batches(
    data: Dataset, batch_size: int, device: torch.device, *, shuffle_seed: int | None = None, channels_last: bool = False
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(images, labels)`` batches on ``device``, float images in [0, 1] (NHWC if ``channels_last``).

    With ``shuffle_seed`` the order is a permutation drawn from a generator seeded with it and the
    last incomplete batch is dropped (training); without, batches follow the dataset order and
    include the remainder (evaluation).
    """
    n = len(data)
    if shuffle_seed is None:
        order, stop = torch.arange(n), n
    else:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(shuffle_seed))
        stop = max(1, n // batch_size) * batch_size if n >= batch_size else n
    tensors = _tensor_view(data)
    if tensors is None:
        loader = DataLoader(data, batch_size=batch_size, sampler=order[:stop].tolist(), num_workers=0)
        chunks = iter(loader)
    else:
        chunks = ((tensors[0][idx], tensors[1][idx]) for idx in order[:stop].split(batch_size))
    for images, labels in chunks:
        images = images.to(device, non_blocking=True)
        images = images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        yield images, torch.as_tensor(labels).to(device=device, dtype=torch.long, non_blocking=True)


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


def _save_checkpoint(path: Path, model: nn.Module, opt: torch.optim.Optimizer, sched: Any, history: History, config: dict[str, Any]) -> None:
    """Write the checkpoint atomically: a crash mid-write leaves the previous one intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    device = next(model.parameters()).device
    state = {
        "format": 1,
        "epoch": len(history),
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "rng": _rng_state(device),
        "history": history.to_dict(),
        "config": config,
    }
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
        raise FileNotFoundError(f"no checkpoint at {path}; train with fit(..., out_dir=...) first, or start without resume")
    return torch.load(path, map_location=map_location, weights_only=True)


_RESUME_MUST_MATCH = (
    "epochs", "batch_size", "optimizer", "lr", "weight_decay", "momentum", "schedule", "warmup_steps",
    "label_smoothing", "grad_clip", "augment", "channels_last", "seed", "train_size",
    "train_sizes", "progressive", "precision",
)


def _load_checkpoint(path: Path | None, model: nn.Module, opt: torch.optim.Optimizer, sched: Any, config: dict[str, Any], device: torch.device) -> tuple[History, int]:
    state = load_checkpoint(path, map_location=device)
    saved = state["config"]
    diff = [f"{k}: checkpoint {saved.get(k)!r} vs now {config[k]!r}" for k in _RESUME_MUST_MATCH if saved.get(k) != config[k]]
    if diff:
        raise ValueError(
            "cannot resume exactly: settings differ from the run that wrote the checkpoint ("
            + "; ".join(diff) + "). Pass the same settings, or start a new run folder without resume."
        )
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
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
    _check_number("batch_size", batch_size, low=1, integer=True)
    if len(data) == 0:
        raise ValueError("cannot evaluate on an empty dataset; check the split name and any subset you took")
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
            for images, labels in _batches(data, batch_size, device, channels_last=_uses_channels_last(model)):
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


def _uses_channels_last(model: nn.Module) -> bool:
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
    images = images.to(device)
    images = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
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
