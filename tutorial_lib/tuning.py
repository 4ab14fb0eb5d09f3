"""Tuning: the learning-rate range test, schedule curves, and a small Optuna search.

Notebook 08 turns a working ResNet into a well-trained one, one measured choice at a time. This
module holds the tools it needs beyond ``tutorial_lib.train`` (which owns ``FitConfig``, ``fit``, the
schedules and ``param_groups``) and ``tutorial_lib.data`` (which owns ``validation_split``, the
held-out validation set carved from the training split by source digit, and ``augment_from_strength``):

* ``lr_range_test``: Smith's learning-rate range test (Smith 2017, "Cyclical Learning Rates for
  Training Neural Networks", sec 3.3), as an exponential sweep with a bias-corrected smoothed loss.
  It leaves the model and optimizer exactly as they were.
* ``search``: a small Optuna search (TPE sampler, median pruning) over learning rate, weight decay,
  label smoothing and augmentation strength; every trial's settings are a ``FitConfig``.
* Small measurements used to correct the source text: ``time_step_at_lrs`` (the learning rate
  changes no per-step cost) and ``linear_scaled_lr`` (Goyal et al. 2017's linear scaling rule).
* ``summarize_runs`` and ``mean_difference``: mean and spread of recipe runs over seeds (the records
  of ``benchmarks/compare_recipes.py test``), and a difference of means against its standard error.
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from tutorial_lib._validate import check_choice, check_int, check_number
from tutorial_lib.data import augment_from_strength, batches, check_dataset, to_float_images, validation_split
from tutorial_lib.train import (
    DEFAULT_WARMUP,
    OPTIMIZERS,
    SCHEDULES,
    STREAM_RANGE_TEST,
    FitConfig,
    derive_seed,
    fit,
    make_optimizer,
    schedule_factor,
    uses_channels_last,
)

__all__ = ["DEFAULT_SEARCH_FIT", "DEFAULT_SPACE", "RECIPE_SPLITS", "SEARCH_PARAMS", "SEARCH_SETS", "LRRangeTest", "SearchResult",
           "linear_scaled_lr", "lr_range_test", "mean_difference", "paired_difference", "schedule_curve", "search", "smooth_losses",
           "summarize_runs", "time_step_at_lrs"]

#: Hyperparameters ``search`` can tune, by name: ``FitConfig`` settings, and ``augment_strength``,
#: one number that sets ``FitConfig.augment`` through ``augment_from_strength``.
SEARCH_PARAMS = ("lr", "weight_decay", "label_smoothing", "augment_strength")
#: The ``FitConfig`` setting each search parameter sets (the identity except ``augment_strength``).
SEARCH_SETS = {name: "augment" if name == "augment_strength" else name for name in SEARCH_PARAMS}
#: The default search space: ``name: (low, high, "log" | "linear")``. The learning-rate range suits
#: AdamW (``search``'s default optimizer); weight decay spans the usual 1e-5 (SGD-style) to 0.1
#: (AdamW-style, Loshchilov & Hutter 2019); label smoothing stops at 0.2 (0.1 in Szegedy et al.
#: 2016, sec 7); augmentation strength is the 0-1 magnitude of ``augment_from_strength``.
DEFAULT_SPACE: dict[str, tuple[float, float, str]] = {
    "lr": (1e-3, 3e-2, "log"),
    "weight_decay": (1e-5, 1e-1, "log"),
    "label_smoothing": (0.0, 0.2, "linear"),
    "augment_strength": (0.0, 1.0, "linear"),
}
#: ``FitConfig`` settings ``search`` keeps fixed unless ``fit_options`` says otherwise.
DEFAULT_SEARCH_FIT = {"batch_size": 64, "optimizer": "adamw", "schedule": "onecycle", "channels_last": True}
#: ``FitConfig`` settings that ``search`` sets from its own arguments, so ``fit_options`` may not hold them.
_SEARCH_OWNS = ("epochs", "seed")


# --------------------------------------------------------------------------------------------------
# Schedules, the linear scaling rule, and the cost of a step
# --------------------------------------------------------------------------------------------------


def schedule_curve(name: str, total_steps: int, *, lr: float = 1.0, warmup_steps: int | None = None) -> list[float]:
    """The learning rate of every step of a run with schedule ``name`` (what ``fit`` would use).

    Args:
        name: one of ``tutorial_lib.train.SCHEDULES``.
        total_steps: optimizer steps in the run.
        lr: the peak learning rate.
        warmup_steps: warm-up length; default: ``fit``'s (``DEFAULT_WARMUP``).
    """
    check_choice("schedule", name, SCHEDULES)
    check_int("total_steps", total_steps, minimum=1)
    check_number("lr", lr, minimum=0.0, min_inclusive=False)
    if warmup_steps is None:
        warmup_steps = round(DEFAULT_WARMUP[name] * total_steps)
    return [lr * schedule_factor(name, step, warmup_steps=warmup_steps, total_steps=total_steps) for step in range(total_steps)]


def linear_scaled_lr(batch_size: int, *, base_lr: float = 0.1, base_batch_size: int = 256) -> float:
    """Goyal et al. 2017's linear scaling rule: multiply the batch by k, multiply the rate by k.

    "When the minibatch size is multiplied by k, multiply the learning rate by k" (sec 2.1), with
    the reference ``0.1 x batch_size / 256`` for ResNet-50 trained with SGD. It holds up to about
    8k images per batch on ImageNet with a gradual warm-up (sec 2.2); it is a rule for SGD, not a law.
    """
    check_int("batch_size", batch_size, minimum=1)
    check_int("base_batch_size", base_batch_size, minimum=1)
    check_number("base_lr", base_lr, minimum=0.0, min_inclusive=False)
    return base_lr * batch_size / base_batch_size


def time_step_at_lrs(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    lrs: Sequence[float] = (1e-4, 1e-1),
    *,
    optimizer: str = "sgd",
    repeats: int = 10,
    warmup: int = 3,
) -> dict[float, float]:
    """Median wall time of one training step at each learning rate, same model and batch.

    The learning rate is one multiplier inside the optimizer's update; the forward and backward
    passes, which are nearly all the work, do not depend on it. Each rate trains its own deep copy
    of ``model`` (the original is untouched) and the copies take turns, step by step, so whatever
    else the machine runs slows them alike.

    Args:
        model: the network to time.
        images: one batch ``(N, C, H, W)``; uint8 is scaled to [0, 1].
        labels: class indices ``(N,)``.
        lrs: learning rates to compare.
        optimizer: ``"sgd"`` or ``"adamw"``.
        repeats: timed steps per rate (the median is reported).
        warmup: untimed steps first (memory allocation, kernel choice).

    Returns:
        ``{lr: milliseconds per step}``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or not isinstance(labels, torch.Tensor) or labels.shape != images.shape[:1]:
        raise ValueError("images must be an (N, C, H, W) tensor and labels an (N,) tensor")
    check_choice("optimizer", optimizer, OPTIMIZERS)
    if not lrs:
        raise ValueError("lrs must hold at least one learning rate")
    for lr in lrs:
        check_number("lr", lr, minimum=0.0, min_inclusive=False)
    check_int("repeats", repeats, minimum=1)
    check_int("warmup", warmup, minimum=0)
    device = next(model.parameters()).device
    images = to_float_images(images.to(device))
    labels = labels.to(device).long()
    runs = []
    for lr in lrs:
        copy_ = copy.deepcopy(model)
        copy_.train()
        runs.append((lr, copy_, make_optimizer(copy_, optimizer, lr=lr)))
    times: dict[float, list[float]] = {float(lr): [] for lr in lrs}
    for i in range(warmup + repeats):
        for lr, net, opt in runs:
            start = time.perf_counter()
            loss = F.cross_entropy(net(images), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i >= warmup:
                times[float(lr)].append(1000.0 * (time.perf_counter() - start))
    return {lr: statistics.median(values) for lr, values in times.items()}


# --------------------------------------------------------------------------------------------------
# The learning-rate range test
# --------------------------------------------------------------------------------------------------


def smooth_losses(losses: Sequence[float], beta: float = 0.98) -> list[float]:
    """Bias-corrected exponential moving average of a loss curve.

    ``avg_t = beta * avg_{t-1} + (1 - beta) * loss_t`` starting from ``avg_0 = 0``, divided by
    ``1 - beta ** t`` so the early values are not pulled towards that zero start (the bias
    correction of Adam, Kingma & Ba 2015, sec 3).

    Args:
        losses: raw losses, in order.
        beta: weight of the past, in [0, 1); 0 returns the losses unchanged.
    """
    check_number("beta", beta, minimum=0.0, maximum=1.0, max_inclusive=False)
    avg, out = 0.0, []
    for t, loss in enumerate(losses, start=1):
        avg = beta * avg + (1.0 - beta) * float(loss)
        out.append(avg / (1.0 - beta**t))
    return out


@dataclass
class LRRangeTest:
    """What ``lr_range_test`` measured.

    Attributes:
        lrs: learning rate of every step of the sweep.
        losses: the raw training loss of every step.
        smoothed: ``smooth_losses(losses, smooth)``.
        suggested_lr: the rate where the smoothed loss falls fastest per unit of log learning rate
            (the steepest descent, searched before the minimum).
        min_loss_lr: the rate at the minimum of the smoothed loss.
        diverged: whether the sweep stopped early because the loss blew up.
        settings: the test's settings.
    """

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggested_lr: float
    min_loss_lr: float
    diverged: bool
    settings: dict[str, Any] = field(default_factory=dict)

    def plot(self, **kwargs: Any):
        """Loss against learning rate (see ``tutorial_lib.viz.plot_lr_range_test``); returns the figure."""
        from tutorial_lib.viz import plot_lr_range_test

        return plot_lr_range_test(self, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "lrs": list(self.lrs), "losses": list(self.losses), "smoothed": list(self.smoothed),
            "suggested_lr": self.suggested_lr, "min_loss_lr": self.min_loss_lr, "diverged": self.diverged,
            "settings": dict(self.settings),
        }

    def __repr__(self) -> str:
        stop = "diverged" if self.diverged else "completed"
        return (
            f"LRRangeTest({len(self.lrs)} steps from {self.lrs[0]:.2g} to {self.lrs[-1]:.2g}, {stop}; "
            f"suggested_lr={self.suggested_lr:.3g}, min_loss_lr={self.min_loss_lr:.3g})"
        )


def _suggest(lrs: list[float], smoothed: list[float]) -> tuple[float, float]:
    """``(steepest-descent rate, minimum-loss rate)`` of a smoothed range-test curve."""
    best = int(np.argmin(smoothed))
    # Skip the first tenth: there the average has seen few losses and its slope is mostly noise.
    skip = max(1, len(smoothed) // 10)
    if best - skip < 2:  # too short a descent to measure a slope: min / 10, inside the swept range
        return max(lrs[0], lrs[best] / 10.0), lrs[best]
    log_lr = np.log10(np.asarray(lrs[skip : best + 1]))
    slope = np.gradient(np.asarray(smoothed[skip : best + 1]), log_lr)
    return lrs[skip + int(np.argmin(slope))], lrs[best]


def lr_range_test(
    model: nn.Module,
    data: Dataset,
    *,
    start_lr: float = 1e-6,
    end_lr: float = 1.0,
    num_steps: int = 100,
    batch_size: int = 64,
    optimizer: str | torch.optim.Optimizer = "sgd",
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    label_smoothing: float = 0.0,
    smooth: float = 0.98,
    diverge_factor: float = 4.0,
    seed: int = 0,
    progress: bool = False,
) -> LRRangeTest:
    """The learning-rate range test: train briefly while the rate grows, and watch the loss.

    Smith (2017, sec 3.3) trains for a few epochs while the learning rate rises from a tiny to a
    large value and reads off where training starts to improve and where it gets worse. This is
    the common exponential variant (popularised by fastai's ``lr_find``): ``num_steps`` steps, the
    rate of step ``i`` is ``start_lr * (end_lr / start_lr) ** (i / (num_steps - 1))``, one new batch
    per step, and the loss is smoothed with a bias-corrected moving average (``smooth_losses``).
    The sweep stops early once the smoothed loss exceeds ``diverge_factor`` times its minimum.

    **Which rate to pick.** ``suggested_lr`` is the rate where the smoothed loss falls fastest per
    decade of learning rate (steepest descent before the minimum): large enough to learn quickly,
    still well inside the stable range. The rate at the minimum (``min_loss_lr``) is *not* a good
    choice: the sweep raises the rate faster than the loss can respond, so the minimum sits close
    to divergence; ``min_loss_lr / 10`` is the older rule of thumb and is usually of the same order
    as ``suggested_lr``. Both are reported; for a one-cycle schedule, whose peak is reached only
    briefly, the peak may be set towards ``min_loss_lr`` (Smith & Topin 2019, sec 4).

    Nothing is left changed: the model's and optimizer's state_dicts (deep copies), the gradients,
    the train/eval mode and torch's random state are restored afterwards, bit for bit.

    Args:
        model: the network (its current device is used; it is not moved).
        data: training dataset of ``(image, label)``.
        start_lr: first learning rate (> 0).
        end_lr: last learning rate (> ``start_lr``).
        num_steps: steps of the sweep (>= 5).
        batch_size: images per step.
        optimizer: ``"sgd"`` (Nesterov momentum ``momentum``) or ``"adamw"``, built with
            ``param_groups``; or an optimizer over the model's parameters, whose learning rate is
            overridden during the sweep and whose state is restored afterwards.
        momentum: SGD momentum of an optimizer built by name.
        weight_decay: weight decay of an optimizer built by name.
        label_smoothing: as in ``fit``.
        smooth: ``beta`` of the moving average, in [0, 1). It averages over about ``1 / (1 - beta)``
            steps (50 for 0.98) and lags by as much, so use ``num_steps`` of 100 or more with 0.98,
            or a smaller ``beta`` for a shorter sweep.
        diverge_factor: stop when the smoothed loss exceeds this multiple of its minimum (> 1).
        seed: seeds the order of the batches.
        progress: show a progress bar.

    Returns:
        An ``LRRangeTest`` with ``lrs``, ``losses``, ``smoothed``, ``suggested_lr``, ``min_loss_lr``
        and ``.plot()``.

    Raises:
        TypeError / ValueError: for invalid settings (the message says what to use).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    check_dataset("data", data)
    check_number("start_lr", start_lr, minimum=0.0, min_inclusive=False)
    check_number("end_lr", end_lr, minimum=0.0, min_inclusive=False)
    if end_lr <= start_lr:
        raise ValueError(f"end_lr must be larger than start_lr, got start_lr={start_lr}, end_lr={end_lr}")
    check_int("num_steps", num_steps, minimum=5)
    check_int("batch_size", batch_size, minimum=1)
    check_number("smooth", smooth, minimum=0.0, maximum=1.0, max_inclusive=False)
    check_number("diverge_factor", diverge_factor, minimum=1.0, min_inclusive=False)
    check_number("label_smoothing", label_smoothing, minimum=0.0, maximum=1.0, max_inclusive=False)
    check_int("seed", seed, minimum=0)
    if isinstance(optimizer, torch.optim.Optimizer):
        owned = {id(p) for p in model.parameters()}
        if any(id(p) not in owned for group in optimizer.param_groups for p in group["params"]):
            raise ValueError("the optimizer holds parameters that are not the model's; pass the optimizer of this model")
        opt = optimizer
    elif isinstance(optimizer, str):
        check_choice("optimizer", optimizer, OPTIMIZERS)
        opt = make_optimizer(model, optimizer, lr=start_lr, weight_decay=weight_decay, momentum=momentum)
    else:
        raise TypeError(f"optimizer must be a name ({', '.join(OPTIMIZERS)}) or a torch.optim.Optimizer, got {type(optimizer).__name__}")

    device = params[0].device
    saved_model = copy.deepcopy(model.state_dict())
    saved_opt = copy.deepcopy(opt.state_dict())
    saved_grads = [None if p.grad is None else p.grad.detach().clone() for p in model.parameters()]
    was_training = model.training
    loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    channels_last = uses_channels_last(model)
    ratio = end_lr / start_lr
    lrs, losses, smoothed = [], [], []
    average, diverged = 0.0, False
    devices = [device.index or 0] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):  # dropout-like layers draw from the global generator
            model.train()
            batches = _endless_batches(data, batch_size, device, seed=seed, channels_last=channels_last)
            for i in tqdm(range(num_steps), desc="lr range test", disable=not progress):
                lr = start_lr * ratio ** (i / (num_steps - 1))
                for group in opt.param_groups:
                    group["lr"] = lr
                images, labels = next(batches)
                loss = loss_fn(model(images), labels)
                value = loss.item()
                if not math.isfinite(value):
                    diverged = True
                    break
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                lrs.append(lr)
                losses.append(value)
                average = smooth * average + (1.0 - smooth) * value  # smooth_losses, one step at a time
                smoothed.append(average / (1.0 - smooth ** len(losses)))
                if len(smoothed) > 1 and smoothed[-1] > diverge_factor * min(smoothed):
                    diverged = True
                    break
    finally:
        model.load_state_dict(saved_model)
        opt.load_state_dict(saved_opt)
        for param, grad in zip(model.parameters(), saved_grads):
            param.grad = grad
        model.train(was_training)
    if len(lrs) < 2:
        raise ValueError(
            f"the loss diverged at once (start_lr={start_lr}); start the sweep lower, e.g. start_lr={start_lr / 100:g}"
        )
    suggested, at_min = _suggest(lrs, smoothed)
    settings = {
        "start_lr": start_lr, "end_lr": end_lr, "num_steps": num_steps, "batch_size": batch_size,
        "optimizer": optimizer if isinstance(optimizer, str) else type(optimizer).__name__,
        "smooth": smooth, "diverge_factor": diverge_factor, "seed": seed,
    }
    return LRRangeTest(lrs, losses, smoothed, suggested, at_min, diverged, settings)


def _endless_batches(data: Dataset, batch_size: int, device: torch.device, *, seed: int, channels_last: bool):
    """Shuffled training batches, pass after pass (a fresh permutation per pass)."""
    for epoch in range(10**9):
        yield from batches(data, batch_size, device, shuffle_seed=derive_seed(seed, STREAM_RANGE_TEST, epoch), channels_last=channels_last)


# --------------------------------------------------------------------------------------------------
# The search
# --------------------------------------------------------------------------------------------------


@dataclass
class SearchResult:
    """What ``search`` found.

    Attributes:
        study: the ``optuna.Study`` (its ``trials`` hold everything, including intermediate values).
        rows: one dict per trial: ``trial``, ``state`` (``complete``/``pruned``/``fail``), ``value``
            (final validation accuracy, ``None`` unless complete), ``val_loss``, ``epochs_run``,
            ``seconds`` (training time), ``curve`` (validation accuracy after each epoch run) and
            one entry per searched hyperparameter.
        space: the searched space, ``{name: (low, high, scale)}``.
        fixed: the ``FitConfig`` settings every trial shared (those not searched).
    """

    study: Any
    rows: list[dict[str, Any]]
    space: dict[str, tuple[float, float, str]]
    fixed: dict[str, Any]

    @property
    def completed(self) -> list[dict[str, Any]]:
        return [row for row in self.rows if row["state"] == "complete"]

    @property
    def best(self) -> dict[str, Any]:
        """The row of the completed trial with the highest validation accuracy."""
        if not self.completed:
            raise ValueError("no trial completed; raise n_trials or check the failed trials' rows")
        return max(self.completed, key=lambda row: row["value"])

    @property
    def best_params(self) -> dict[str, float]:
        return {name: self.best[name] for name in self.space}

    def table(self) -> str:
        """The rows as an aligned text table, best first (failed and pruned trials last)."""
        names = list(self.space)
        header = f"{'trial':>5} {'state':>8} {'val_acc':>8} {'epochs':>6} " + " ".join(f"{n:>16}" for n in names)
        ordered = sorted(self.rows, key=lambda r: (r["value"] is None, -(r["value"] or 0.0), r["trial"]))
        lines = [header]
        for row in ordered:
            value = "-" if row["value"] is None else f"{row['value']:.4f}"
            cells = " ".join(f"{_format_param(n, row[n]):>16}" for n in names)
            lines.append(f"{row['trial']:>5} {row['state']:>8} {value:>8} {row['epochs_run']:>6} {cells}")
        return "\n".join(lines)

    def plot_history(self, **kwargs: Any):
        """Validation accuracy of every trial, and the best so far (``viz.plot_search_history``)."""
        from tutorial_lib.viz import plot_search_history

        return plot_search_history(self.rows, **kwargs)

    def plot_params(self, **kwargs: Any):
        """Each hyperparameter against validation accuracy (``viz.plot_search_params``)."""
        from tutorial_lib.viz import plot_search_params

        return plot_search_params(self.rows, self.space, **kwargs)

    def __repr__(self) -> str:
        counts = {s: sum(r["state"] == s for r in self.rows) for s in ("complete", "pruned", "fail")}
        best = f", best val_acc={self.best['value']:.4f}" if self.completed else ""
        return f"SearchResult({len(self.rows)} trials: {counts['complete']} complete, {counts['pruned']} pruned, {counts['fail']} failed{best})"


def _format_param(name: str, value: float) -> str:
    return f"{value:.3g}" if name in ("lr", "weight_decay") else f"{value:.3f}"


def _check_space(space: dict[str, Any] | None) -> dict[str, tuple[float, float, str]]:
    if space is None:
        return dict(DEFAULT_SPACE)
    if not isinstance(space, dict) or not space:
        raise TypeError("space must be a non-empty dict {name: (low, high) or (low, high, 'log'|'linear')}")
    checked = {}
    for name, spec in space.items():
        check_choice("search parameter", name, SEARCH_PARAMS)
        if not isinstance(spec, (tuple, list)) or len(spec) not in (2, 3):
            raise TypeError(f"space[{name!r}] must be (low, high) or (low, high, 'log'|'linear'), got {spec!r}")
        low, high = spec[0], spec[1]
        scale = spec[2] if len(spec) == 3 else DEFAULT_SPACE[name][2]
        check_number(f"space[{name!r}] low", low, minimum=0.0)
        check_number(f"space[{name!r}] high", high, minimum=0.0)
        if scale not in ("log", "linear"):
            raise ValueError(f"space[{name!r}] scale must be 'log' or 'linear', got {scale!r}")
        if not low < high:
            raise ValueError(f"space[{name!r}] needs low < high, got ({low}, {high})")
        if scale == "log" and low <= 0:
            raise ValueError(f"space[{name!r}] is log-scaled, so low must be > 0, got {low}")
        limit = {"label_smoothing": 1.0, "augment_strength": 1.0}.get(name)
        if limit is not None and high > limit:
            raise ValueError(f"space[{name!r}] high must be <= {limit}, got {high}")
        checked[name] = (float(low), float(high), scale)
    return checked


def _check_fit_options(fit_options: dict[str, Any] | None, space: dict[str, Any], epochs: int, seed: int) -> FitConfig:
    """The ``FitConfig`` every trial starts from: ``DEFAULT_SEARCH_FIT``, then ``fit_options``."""
    options = dict(DEFAULT_SEARCH_FIT)
    if fit_options is not None:
        if not isinstance(fit_options, dict):
            raise TypeError(f"fit_options must be a dict of FitConfig settings, got {type(fit_options).__name__}")
        owned = sorted(set(_SEARCH_OWNS) & set(fit_options))
        if owned:
            raise ValueError(f"fit_options {owned} are set by search's own arguments (epochs=..., seed=...); remove them")
        clash = sorted({SEARCH_SETS[name] for name in space} & set(fit_options))
        if clash:
            raise ValueError(f"fit_options {clash} are searched; remove them from fit_options or from space")
        options.update(fit_options)
    return FitConfig.from_settings(epochs=epochs, seed=seed, **options)


def search(
    train_data: Dataset | None = None,
    val_data: Dataset | None = None,
    *,
    n_trials: int = 3,
    epochs: int = 1,
    num_samples: int = 2048,
    val_fraction: float = 0.2,
    image_size: int = 32,
    model_fn: Callable[[], nn.Module] | None = None,
    fit_options: dict[str, Any] | None = None,
    space: dict[str, Any] | None = None,
    seed: int = 0,
    n_startup_trials: int = 10,
    pruner_startup_trials: int = 2,
    storage: str | None = None,
    study_name: str = "tutorial-lib-search",
    timeout: float | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> SearchResult:
    """A small hyperparameter search with Optuna: TPE sampling and median pruning.

    Each trial draws a learning rate (log scale), a weight decay (log scale), a label smoothing and
    an augmentation strength (``augment_from_strength``) from ``space``, builds a fresh model with
    the same seed (so trials differ by their hyperparameters, not by their initial weights: common
    random numbers), trains it with ``fit`` and returns the validation accuracy after the last epoch.

    * **Sampler.** Tree-structured Parzen Estimator (Bergstra et al. 2011), seeded. Its first
      ``n_startup_trials`` draws are random; only then does it model good and bad regions. The tiny
      default budget therefore *is* a seeded random search; pass ``n_trials`` well above
      ``n_startup_trials`` to let TPE work.
    * **Pruner.** After every epoch a trial reports its validation accuracy; once
      ``pruner_startup_trials`` trials have finished, a trial below the median of earlier trials at
      the same epoch is stopped (``MedianPruner``). The last epoch is never pruned (it would save
      nothing), so with one epoch per trial nothing can be pruned.
    * **Validation.** Never the test split: without ``val_data``, ``validation_split`` holds out
      images of the last 20% of the training split's source digits.
    * **Side effects.** None on disk unless ``storage`` names a database (e.g.
      ``"sqlite:///search.db"``); Optuna's log is limited to warnings while the search runs.

    Args:
        train_data: training dataset; default: ``multiscale-digits`` ``train`` with ``num_samples``
            images of ``image_size`` pixels (then split by ``validation_split``).
        val_data: validation dataset; default: carved from ``train_data`` by source digit.
        n_trials: number of trials.
        epochs: epochs per trial (pruning needs at least 2).
        num_samples: images generated when ``train_data`` is not given (training and validation parts).
        val_fraction: share of the source digits held out for validation.
        image_size: image side when ``train_data`` is not given.
        model_fn: builds a fresh model per trial; default: ResNet-18, width 8, small stem.
        fit_options: fixed ``fit`` options (default ``DEFAULT_SEARCH_FIT``: batch 64, AdamW,
            one-cycle, channels-last); searched names may not appear here.
        space: ``{name: (low, high[, "log" | "linear"])}`` over ``SEARCH_PARAMS``; default
            ``DEFAULT_SPACE``. Names left out are not searched (``fit``'s defaults or ``fit_options`` hold).
        seed: seeds the sampler, every trial's model and every trial's run.
        n_startup_trials: random trials before TPE models the results.
        pruner_startup_trials: complete trials before pruning starts.
        storage: an Optuna storage URL to keep the study; ``None`` keeps it in memory only.
        study_name: the study's name in ``storage`` (an existing one is continued).
        timeout: stop starting trials after this many seconds.
        device: where to train (see ``fit``).
        progress: show Optuna's progress bar.

    Returns:
        A ``SearchResult`` (``study``, ``rows``, ``best``, ``table()``, ``plot_history()``, ``plot_params()``).

    Raises:
        TypeError / ValueError: for invalid settings (the message says what to use).
    """
    import optuna

    from tutorial_lib.env import seed_everything

    check_int("n_trials", n_trials, minimum=1)
    check_int("epochs", epochs, minimum=1)
    check_int("seed", seed, minimum=0)
    check_int("n_startup_trials", n_startup_trials, minimum=0)
    check_int("pruner_startup_trials", pruner_startup_trials, minimum=0)
    if timeout is not None:
        check_number("timeout", timeout, minimum=0.0, min_inclusive=False)
    if storage is not None and not isinstance(storage, str):
        raise TypeError(f"storage must be None or an Optuna storage URL such as 'sqlite:///search.db', got {storage!r}")
    space = _check_space(space)
    config = _check_fit_options(fit_options, space, epochs, seed)
    if model_fn is not None and not callable(model_fn):
        raise TypeError("model_fn must be a function that returns a fresh model")
    if train_data is None:
        if val_data is not None:
            raise ValueError("val_data without train_data: pass both, or neither to use multiscale-digits")
        from tutorial_lib.data import load_dataset

        check_int("num_samples", num_samples, minimum=10)
        train_data = load_dataset("multiscale-digits", "train", image_size=image_size, num_samples=num_samples, seed=seed)
    if val_data is None:
        train_data, val_data = validation_split(train_data, val_fraction)
    classes = getattr(train_data, "classes", None)
    if model_fn is None:
        from tutorial_lib.models import resnet18

        num_classes = len(classes) if classes else 10

        def model_fn() -> nn.Module:
            return resnet18(num_classes=num_classes, width=8, stem="small")

    def objective(trial: optuna.Trial) -> float:
        params = {}
        for name, (low, high, scale) in space.items():
            params[name] = trial.suggest_float(name, low, high, log=scale == "log")
        options = {SEARCH_SETS[name]: augment_from_strength(value) if name == "augment_strength" else value
                   for name, value in params.items()}
        seed_everything(seed)
        model = model_fn()
        start = time.perf_counter()

        def report(record: dict[str, Any]) -> None:
            trial.set_user_attr("epochs_run", record["epoch"])
            trial.set_user_attr("seconds", time.perf_counter() - start)
            trial.set_user_attr("val_loss", record["val_loss"])
            trial.report(record["val_acc"], record["epoch"] - 1)
            # Pruning after the last epoch would save nothing and throw the result away.
            if record["epoch"] < epochs and trial.should_prune():
                raise optuna.TrialPruned(f"validation accuracy {record['val_acc']:.4f} below the median after epoch {record['epoch']}")

        history = fit(model, train_data, config, val_data=val_data, device=device, progress=False, on_epoch_end=report, **options)
        return float(history.last["val_acc"])

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=study_name,
            direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup_trials),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=pruner_startup_trials, n_warmup_steps=0),
            load_if_exists=storage is not None,
        )
        # A diverging trial (NaN loss at a large rate) is recorded as failed; the search goes on.
        study.optimize(objective, n_trials=n_trials, timeout=timeout, catch=(FloatingPointError,), show_progress_bar=progress)
    finally:
        optuna.logging.set_verbosity(verbosity)
    fixed = {k: v for k, v in config.to_dict().items() if k not in {SEARCH_SETS[name] for name in space}}
    return SearchResult(study, [_trial_row(t, space) for t in study.trials], space, fixed)


def _trial_row(trial: Any, space: dict[str, Any]) -> dict[str, Any]:
    state = trial.state.name.lower()
    curve = [trial.intermediate_values[k] for k in sorted(trial.intermediate_values)]
    row = {
        "trial": trial.number,
        "state": state,
        "value": float(trial.value) if state == "complete" else None,
        "val_loss": trial.user_attrs.get("val_loss"),
        "epochs_run": trial.user_attrs.get("epochs_run", 0),
        "seconds": trial.user_attrs.get("seconds"),
        "curve": curve,
    }
    row.update({name: trial.params.get(name, float("nan")) for name in space})
    return row


# --------------------------------------------------------------------------------------------------
# Comparing recipes over seeds (benchmarks/compare_recipes.py records)
# --------------------------------------------------------------------------------------------------

#: The test splits ``benchmarks/compare_recipes.py test`` records for every run.
RECIPE_SPLITS = ("test", "test-small", "test-large")


def summarize_runs(runs: Sequence[dict[str, Any]], splits: Sequence[str] = RECIPE_SPLITS) -> list[dict[str, Any]]:
    """Mean and spread of the accuracy of each recipe on each split, over the runs (seeds) recorded.

    One seed is one measurement: a different seed changes the data order, the initial weights and
    the augmentation, and moves the accuracy as much as many tuning changes do. This turns the
    records of ``benchmarks/compare_recipes.py test`` (one dict per CLI run, with ``recipe``,
    ``seed`` and one accuracy per split) into one row per recipe and split.

    Args:
        runs: the ``"runs"`` list of ``benchmarks/results/cpu_recipes.json``.
        splits: which accuracies to summarize.

    Returns:
        Rows ``{"recipe", "split", "n", "seeds", "values", "mean", "std", "min", "max"}`` in the
        order the recipes first appear; ``std`` is the sample standard deviation, ``None`` for a
        single run.

    Raises:
        TypeError / ValueError: for an empty list, a record without ``recipe``/``seed`` or a split,
            or an accuracy outside [0, 1].
    """
    if isinstance(splits, str) or not splits:
        raise TypeError(f"splits must be a non-empty sequence of split names, got {splits!r}")
    if not isinstance(runs, (list, tuple)) or not runs:
        raise ValueError("runs must be a non-empty list of run records (the 'runs' list of the results file)")
    grouped: dict[str, list[dict[str, Any]]] = {}
    for i, run in enumerate(runs):
        if not isinstance(run, dict) or "recipe" not in run or "seed" not in run:
            raise TypeError(f"run {i} must be a dict with 'recipe', 'seed' and one accuracy per split, got {run!r}")
        for split in splits:
            value = run.get(split)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"run {i} ({run['recipe']}, seed {run['seed']}) has no accuracy in [0, 1] for split {split!r}: {value!r}")
        grouped.setdefault(run["recipe"], []).append(run)
    rows = []
    for recipe, group in grouped.items():
        for split in splits:
            values = [float(run[split]) for run in group]
            rows.append({
                "recipe": recipe, "split": split, "n": len(values), "seeds": [run["seed"] for run in group],
                "values": values, "mean": statistics.mean(values),
                "std": statistics.stdev(values) if len(values) > 1 else None,
                "min": min(values), "max": max(values),
            })
    return rows


def mean_difference(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """How the mean of ``b`` differs from the mean of ``a``, against the seed-to-seed noise.

    The standard error of a difference of two means is ``sqrt(s_a^2 / n_a + s_b^2 / n_b)``
    (Welch); ``ratio`` is the difference in standard errors. With three seeds each the standard
    deviations are themselves rough, and Welch's t-test accounts for that: its degrees of freedom
    (Welch-Satterthwaite) fall from 4 towards 2 when one side's spread dominates, and the two-sided
    ``p`` is read from Student's t with those degrees of freedom. At 2 degrees of freedom a ratio of
    3 is only p = 0.10, so a fixed "3 standard errors" rule is too loose for three seeds: use ``p``.

    Args:
        a: accuracies of the reference (e.g. ``cpu-baseline``), one per seed.
        b: accuracies of the challenger (e.g. ``cpu-tuned``), one per seed.

    Returns:
        ``{"difference": mean(b) - mean(a), "se": standard error, "ratio": difference / se, "df":
        Welch's degrees of freedom, "p": two-sided p-value}``; all but ``difference`` are ``None``
        unless both sides have at least two values and some spread.
    """
    for name, values in (("a", a), ("b", b)):
        if isinstance(values, str) or not isinstance(values, Sequence) or not values:
            raise ValueError(f"{name} must be a non-empty sequence of accuracies, got {values!r}")
    difference = statistics.mean(b) - statistics.mean(a)
    none = {"difference": difference, "se": None, "ratio": None, "df": None, "p": None}
    if len(a) < 2 or len(b) < 2:
        return none
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return dict(none, se=se)
    from scipy import stats

    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    ratio = difference / se
    return {"difference": difference, "se": se, "ratio": ratio, "df": df, "p": float(2 * stats.t.sf(abs(ratio), df))}


def paired_difference(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> dict[str, Any]:
    """How much more often ``b`` is right than ``a`` on the same test items, and whether it is noise.

    When two models are scored on the *same* images, the images both get right or both get wrong say
    nothing about which is better; only the discordant ones do. The difference of accuracies is
    ``(only_b - only_a) / n``, and McNemar's test (McNemar 1947) asks whether the discordant images
    split more unevenly than fair coin flips would: under "no difference" ``only_b`` is
    Binomial(``only_a + only_b``, 1/2). The exact two-sided p-value is returned, with the paired
    standard error of the difference (the standard deviation of the per-image differences over
    ``sqrt(n)``), which is smaller than the unpaired one whenever the two models agree on most images.

    This measures test-set sampling only, for one training run of each model: the spread between
    training seeds comes on top (``mean_difference`` over seeds measures that).

    Args:
        correct_a: per test item, whether model ``a`` classified it correctly.
        correct_b: the same for model ``b``, on the same items in the same order.

    Returns:
        ``{"n", "only_a", "only_b", "difference": accuracy_b - accuracy_a, "se", "p_value"}``.
    """
    a = [bool(v) for v in correct_a]
    b = [bool(v) for v in correct_b]
    if not a or len(a) != len(b):
        raise ValueError(f"correct_a and correct_b must be non-empty and of equal length (the same test items), "
                         f"got {len(a)} and {len(b)}")
    n = len(a)
    only_a = sum(x and not y for x, y in zip(a, b))
    only_b = sum(y and not x for x, y in zip(a, b))
    difference = (only_b - only_a) / n
    # Per-item differences are +1 (only b right), -1 (only a right) or 0; their sample variance:
    variance = ((only_a + only_b) - n * difference**2) / (n - 1) if n > 1 else 0.0
    discordant = only_a + only_b
    tail = sum(math.comb(discordant, k) for k in range(min(only_a, only_b) + 1)) / 2**discordant if discordant else 1.0
    return {"n": n, "only_a": only_a, "only_b": only_b, "difference": difference,
            "se": math.sqrt(max(variance, 0.0) / n), "p_value": min(1.0, 2 * tail)}

