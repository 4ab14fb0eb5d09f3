"""Multi-scale training and testing: resolution schedules, per-scale BatchNorm, test-time scales.

A convolutional network with global average pooling accepts any input size, but it only
*recognises* objects at the pixel scales it was trained on: its filters and receptive fields are
fixed in pixels. Resizing whole images during training moves every object's pixel size, so a network
trained on several resolutions sees several object scales (Howard 2013; Simonyan & Zisserman 2015,
"scale jittering", section 3.1). This module holds the pieces notebook 07 measures:

- :class:`RandomResolution` and :class:`ProgressiveResolution`: which resolution a training step
  uses. Both are pure functions of the step (and a seed), so a resumed or distributed run needs no
  extra state and no communication;
- :func:`resize_batch` and :class:`Resized`: resize a batch, or put a resize in front of a model so
  that ``evaluate``, ``recalibrate_bn`` and friends work at any test resolution unchanged;
- :class:`PerScaleBatchNorm2d` and :func:`convert_to_per_scale_bn`: shared convolutions with private
  BatchNorm statistics and affine parameters per training resolution (RS-Nets, Wang et al., ECCV 2020);
- :func:`recalibrate_at`: BatchNorm statistics recomputed at the test resolution;
- :class:`MultiScaleTTA`: multi-scale testing, the average of softmax outputs over several test
  resolutions, optionally with horizontal flips; :func:`recalibrated_tta` gives each test
  resolution its own recalibrated statistics;
- :func:`feature_pyramid`: the multi-scale features *inside* a ResNet, its stage outputs C2-C5.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tutorial_lib._validate import check_bool, check_int

__all__ = [
    "PYRAMID_LEVELS",
    "MultiScaleTTA",
    "PerScaleBatchNorm2d",
    "ProgressiveResolution",
    "RandomResolution",
    "Resized",
    "check_sizes",
    "convert_to_per_scale_bn",
    "feature_pyramid",
    "recalibrate_at",
    "recalibrated_tta",
    "resize_batch",
    "set_active_scale",
]

_MASK64 = (1 << 64) - 1


def check_sizes(sizes: Sequence[int], name: str = "sizes") -> tuple[int, ...]:
    """Validate a sequence of image sides in pixels (integers >= 8) and return it as a tuple of ints.

    Raises:
        TypeError: if ``sizes`` is not a sequence, or an entry is not an integer.
        ValueError: if it is empty, or an entry is below 8.
    """
    if isinstance(sizes, (int, str)) or not isinstance(sizes, Iterable):
        raise TypeError(f"{name} must be a sequence of image sizes such as (32, 48, 64), got {sizes!r}")
    sizes = tuple(sizes)
    if not sizes:
        raise ValueError(f"{name} is empty; give at least one image size, e.g. (32, 48, 64)")
    return tuple(check_int(f"{name}[{i}]", s, minimum=8) for i, s in enumerate(sizes))


def _mix(seed: int, step: int) -> int:
    """A 64-bit hash of ``(seed, step)`` (SplitMix64's finaliser, Steele et al. 2014).

    Python's ``hash`` is salted per process and ``random.Random(seed)`` would need to be stepped
    through every earlier draw; a stateless integer hash gives the same answer in every process,
    for any step, in O(1).
    """
    z = (seed * 0x9E3779B97F4A7C15 + step + 1) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


class RandomResolution:
    """Draw each training step's resolution uniformly from ``sizes``, as a function of (seed, step).

    The draw depends only on ``(seed, step)``: there is no generator state to save in a checkpoint,
    a resumed run draws exactly what an uninterrupted one would, and every process of a distributed
    run (same seed, same step counter) picks the same size **without communicating**, so all
    replicas' batches have one shape and their gradients can be averaged.

    Args:
        sizes: the training resolutions, e.g. ``(32, 48, 64)``.
        seed: the run's seed.

    Example:
        >>> schedule = RandomResolution((32, 48, 64), seed=0)
        >>> [schedule(step) for step in range(4)] == [schedule(step) for step in range(4)]
        True
    """

    def __init__(self, sizes: Sequence[int], seed: int = 0) -> None:
        self.sizes = check_sizes(sizes)
        self.seed = check_int("seed", seed, minimum=0)

    def __call__(self, step: int) -> int:
        step = check_int("step", step, minimum=0)
        return self.sizes[_mix(self.seed, step) % len(self.sizes)]

    def __repr__(self) -> str:
        return f"RandomResolution(sizes={self.sizes}, seed={self.seed})"


class ProgressiveResolution:
    """Progressive resizing: train on small images first, then larger ones.

    Training is cut into ``len(sizes)`` equal phases, one per size in increasing order. Early steps
    on small images are cheap (cost grows with the square of the side) and learn coarse features;
    the last phase matches the test resolution (fast.ai's progressive resizing; Tan & Le 2021,
    EfficientNetV2, section 4, "progressive learning").

    Args:
        sizes: resolutions, used from smallest to largest.
        total_steps: the number of optimizer steps in the whole run.
    """

    def __init__(self, sizes: Sequence[int], total_steps: int) -> None:
        self.sizes = tuple(sorted(check_sizes(sizes)))
        self.total_steps = check_int("total_steps", total_steps, minimum=1)

    def __call__(self, step: int) -> int:
        step = check_int("step", step, minimum=0)
        phase = min(step * len(self.sizes) // self.total_steps, len(self.sizes) - 1)
        return self.sizes[phase]

    def __repr__(self) -> str:
        return f"ProgressiveResolution(sizes={self.sizes}, total_steps={self.total_steps})"


def resize_batch(images: Tensor, size: int) -> Tensor:
    """Resize a batch ``(N, C, H, W)`` to ``size x size`` with bilinear interpolation.

    Shrinking uses antialiasing: without it, bilinear sampling skips pixels and thin strokes alias
    into noise that the network never sees at its native resolution. A batch already at ``size`` is
    returned as is, so resizing to the native size is exactly a no-op.

    Raises:
        TypeError: if ``images`` is not a tensor or ``size`` not an integer.
        ValueError: if ``images`` is not 4-D or ``size`` is below 1.
    """
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a torch.Tensor of shape (N, C, H, W), got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"expected a batch of shape (N, C, H, W), got shape {tuple(images.shape)}")
    size = check_int("size", size, minimum=1)
    if images.shape[-2:] == (size, size):
        return images
    shrinking = size < min(images.shape[-2:])
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=shrinking)


class Resized(nn.Module):
    """``model`` with a resize in front: evaluate, recalibrate or sweep a model at any resolution.

    ``Resized(model, 96)`` is a model that takes the dataset's images at their stored size and
    classifies them at 96 x 96 pixels. It has no parameters of its own (its state_dict is the inner
    model's, under ``model.``), so wrapping never changes what is trained.
    """

    def __init__(self, model: nn.Module, size: int) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.size = check_int("size", size, minimum=1)

    def forward(self, x: Tensor) -> Tensor:
        x = resize_batch(x, self.size)
        return self.model(x)


class MultiScaleTTA(nn.Module):
    """Multi-scale testing: average the softmax outputs over several resolutions (and flips).

    Returns the **log** of the averaged probabilities, so ``F.cross_entropy`` on its output is the
    negative log-likelihood of the ensemble and ``argmax`` is its prediction; plugging it into
    ``tutorial_lib.train.evaluate`` gives the ensemble's accuracy and loss. With one size equal to
    the input size and no flips it reduces to plain evaluation (``log_softmax`` of the logits).
    Averaging probabilities, not logits, follows common practice for test-time ensembles
    (Simonyan & Zisserman 2015, section 3.2, "multi-scale evaluation").

    Args:
        model: the classifier, or a mapping ``{size: classifier}`` with one network per test size
            (e.g. copies whose BatchNorm statistics were recalibrated at that size, see
            :func:`recalibrated_tta`); its keys must be exactly ``sizes``.
        sizes: test resolutions, e.g. ``(48, 64, 96)``.
        flip: also average over horizontally flipped inputs. Leave off for digits, whose mirror
            images are not digits.
    """

    def __init__(self, model: nn.Module | Mapping[int, nn.Module], sizes: Sequence[int], flip: bool = False) -> None:
        super().__init__()
        self.sizes = check_sizes(sizes)
        self.flip = check_bool("flip", flip)
        if isinstance(model, Mapping):
            if sorted(model) != sorted(self.sizes):
                raise ValueError(f"one model per test size needed: got models for {sorted(model)}, sizes {list(self.sizes)}")
            if not all(isinstance(m, nn.Module) for m in model.values()):
                raise TypeError("every value of the model mapping must be a torch.nn.Module")
            # ModuleDict keys must be strings; the state_dict keys become "models.<size>.<...>".
            self.models = nn.ModuleDict({str(size): model[size] for size in self.sizes})
        elif isinstance(model, nn.Module):
            self.model = model
        else:
            raise TypeError(f"model must be a torch.nn.Module or a {{size: module}} mapping, got {type(model).__name__}")

    def network(self, size: int) -> nn.Module:
        """The network that reads inputs at ``size`` pixels."""
        return self.models[str(size)] if hasattr(self, "models") else self.model

    def forward(self, x: Tensor) -> Tensor:
        probs = []
        for size in self.sizes:
            view = resize_batch(x, size)
            network = self.network(size)
            probs.append(F.softmax(network(view), dim=1))
            if self.flip:
                probs.append(F.softmax(network(torch.flip(view, dims=[3])), dim=1))
        mean = torch.stack(probs).mean(dim=0)
        # Clamp before the log: a probability of exactly 0 would give -inf and an infinite loss.
        return torch.log(mean.clamp_min(torch.finfo(mean.dtype).tiny))

    def extra_repr(self) -> str:
        return f"sizes={self.sizes}, flip={self.flip}"


def recalibrated_tta(
    model: nn.Module, data: Any, sizes: Sequence[int], *, flip: bool = False, num_batches: int = 50, **kwargs: Any
) -> MultiScaleTTA:
    """Multi-scale testing where each test size uses BatchNorm statistics recomputed at that size.

    One copy of ``model`` per size, each recalibrated with :func:`recalibrate_at` (the weights are
    shared in value, not in memory: a ResNet-18 of width 16 is 0.7 M parameters per copy). With a
    single size this is plain evaluation at that size after recalibration. ``model`` itself is
    not changed.

    Args:
        model: the trained network.
        data: training images for the statistics (labels are not used).
        sizes: test resolutions.
        flip: also average over horizontal flips.
        num_batches: batches averaged per size.
        **kwargs: passed to ``recalibrate_bn`` (e.g. ``batch_size``, ``device``).
    """
    sizes = check_sizes(sizes)
    check_bool("flip", flip)  # before the recalibrations, not after them
    copies = {size: recalibrate_at(copy.deepcopy(model), data, size, num_batches=num_batches, **kwargs).eval()
              for size in sizes}
    return MultiScaleTTA(copies, sizes, flip=flip)


class PerScaleBatchNorm2d(nn.Module):
    """BatchNorm with private statistics and affine parameters for each training resolution.

    Resolution changes the statistics a BatchNorm layer sees: a smaller image gives each channel a
    different mean and variance after the same convolutions, so one set of running statistics
    averaged over several resolutions fits none of them (Touvron et al. 2019, FixRes, section 3).
    RS-Nets (Wang et al., ECCV 2020) keep the convolutions shared and give each resolution its own
    BatchNorm. The layer holds one ``nn.BatchNorm2d`` per scale in ``bns`` (state_dict keys
    ``bns.<size>.weight`` and so on) and normalizes with the one named by ``active``, which
    :func:`convert_to_per_scale_bn`'s hook sets from each batch's input size.

    Args:
        num_features: channels.
        scales: the training resolutions.
        **bn_kwargs: passed to every ``nn.BatchNorm2d`` (``eps``, ``momentum``, ...).
    """

    def __init__(self, num_features: int, scales: Sequence[int], **bn_kwargs: Any) -> None:
        super().__init__()
        num_features = check_int("num_features", num_features, minimum=1)
        self.scales = check_sizes(scales, "scales")
        self.bns = nn.ModuleDict({str(s): nn.BatchNorm2d(num_features, **bn_kwargs) for s in self.scales})
        self.active = self.scales[-1]

    def forward(self, x: Tensor) -> Tensor:
        return self.bns[str(self.active)](x)

    def extra_repr(self) -> str:
        return f"scales={self.scales}, active={self.active}"


def _nearest(size: int, scales: Sequence[int]) -> int:
    return min(scales, key=lambda s: (abs(s - size), s))


def convert_to_per_scale_bn(model: nn.Module, scales: Sequence[int]) -> nn.Module:
    """Give every ``nn.BatchNorm2d`` of ``model`` private copies per training resolution, in place.

    Each BatchNorm becomes a :class:`PerScaleBatchNorm2d` whose copies start from the original's
    parameters and statistics. A forward pre-hook on ``model`` routes each batch: an input of side
    ``s`` uses the BatchNorm of the nearest training scale (ties go to the smaller), so one model
    serves every resolution and, at an unseen one, borrows the closest statistics.

    Args:
        model: a network with ``nn.BatchNorm2d`` layers (e.g. ``resnet18(norm="batch")``).
        scales: the training resolutions, e.g. ``(32, 48, 64)``.

    Returns:
        ``model`` itself, converted.

    Raises:
        TypeError: if ``model`` is not a module.
        ValueError: if ``model`` has no BatchNorm2d to convert.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    scales = check_sizes(scales, "scales")
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.BatchNorm2d:
                per_scale = PerScaleBatchNorm2d(
                    child.num_features, scales, eps=child.eps, momentum=child.momentum, affine=child.affine,
                    track_running_stats=child.track_running_stats,
                )
                for bn in per_scale.bns.values():
                    bn.load_state_dict(child.state_dict())
                per_scale.train(child.training)
                setattr(parent, name, per_scale.to(next(child.buffers(), torch.empty(0)).device))
                replaced += 1
    if replaced == 0:
        raise ValueError("model has no torch.nn.BatchNorm2d layers to convert; build it with norm='batch'")

    def route(module: nn.Module, args: tuple[Tensor, ...]) -> None:
        _set_active_scale(module, args[0].shape[-1])

    model.register_forward_pre_hook(route)
    return model


def set_active_scale(model: nn.Module, size: int) -> int:
    """Point every :class:`PerScaleBatchNorm2d` in ``model`` at the scale nearest ``size``; returns it."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return _set_active_scale(model, check_int("size", size, minimum=1))


def _set_active_scale(model: nn.Module, size: int) -> int:
    """:func:`set_active_scale` without the checks (the forward pre-hook passes an input's side)."""
    chosen = size
    for module in model.modules():
        if isinstance(module, PerScaleBatchNorm2d):
            chosen = _nearest(size, module.scales)
            module.active = chosen
    return chosen


def recalibrate_at(model: nn.Module, data: Any, size: int, num_batches: int = 50, **kwargs: Any) -> nn.Module:
    """Recompute ``model``'s BatchNorm statistics on ``data`` resized to ``size`` ("precise BN" at test size).

    FixRes (Touvron et al. 2019) shows that the resolution at which a network is tested changes its
    activation statistics; re-estimating BatchNorm's running statistics at the test resolution,
    with every weight frozen, recovers part of the accuracy lost to the mismatch. This wraps the
    model in :class:`Resized` and calls :func:`tutorial_lib.norm.recalibrate_bn`.

    Args:
        model: the network (changed in place: only BatchNorm running statistics move).
        data: training images, as for ``recalibrate_bn``.
        size: the test resolution.
        num_batches: batches to average over.
        **kwargs: passed to ``recalibrate_bn`` (e.g. ``batch_size``).

    Returns:
        ``model``.
    """
    from tutorial_lib.norm import recalibrate_bn

    recalibrate_bn(Resized(model, size), data, num_batches=num_batches, **kwargs)
    return model


#: Stage outputs of a ResNet and their names in the feature-pyramid literature (Lin et al. 2017,
#: FPN, section 3): C_k has stride 2**k with respect to the input (ImageNet stem).
PYRAMID_LEVELS = {"layer1": "C2", "layer2": "C3", "layer3": "C4", "layer4": "C5"}


def feature_pyramid(model: nn.Module) -> nn.Module:
    """A module that returns ``model``'s stage outputs ``{"C2": ..., "C5": ...}`` for an input batch.

    Built with ``torchvision.models.feature_extraction.create_feature_extractor``, which traces the
    model's forward with torch.fx and keeps only what the requested outputs need (the classifier is
    dropped). It shares its parameters with ``model``: no copy is made of the weights.

    Args:
        model: any network with ``layer1`` ... ``layer4`` children, e.g. ``tutorial_lib.models.resnet101()``
            or a torchvision/timm ResNet.

    Returns:
        An ``nn.Module`` mapping ``(N, C, H, W)`` to a dict of four feature maps, finest first.

    Raises:
        ValueError: if ``model`` lacks one of the stages.
    """
    from torchvision.models.feature_extraction import create_feature_extractor

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    children = dict(model.named_children())
    missing = [name for name in PYRAMID_LEVELS if name not in children]
    if missing:
        raise ValueError(f"model has no {', '.join(missing)}; feature_pyramid needs a ResNet-style model with layer1..layer4")
    return create_feature_extractor(model, return_nodes=dict(PYRAMID_LEVELS))
