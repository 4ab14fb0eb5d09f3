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

Notebook 09 assembles the series' multi-scale ResNet-101 from two more pieces:

- :class:`ScaleChannelNetwork`: one network applied to several rescaled copies of each image, its
  logits pooled over the scales (scale channels, Jansson & Lindeberg, JMIV 2022);
- :class:`MultiLevelResNet`: a classifier that reads the pooled outputs of several stages (C3-C5),
  not only the last one;
- :func:`msresnet101`: the two composed around a ResNet-101, the series' final model.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tutorial_lib._validate import check_bool, check_choice, check_int, check_number
from tutorial_lib.models import POOL_NAMES, _check_input, global_pool, resnet101

__all__ = [
    "HEAD_NAMES",
    "PYRAMID_LEVELS",
    "SCALE_MODE_NAMES",
    "SCALE_POOL_NAMES",
    "MultiLevelResNet",
    "MultiScaleTTA",
    "PerScaleBatchNorm2d",
    "ProgressiveResolution",
    "RandomResolution",
    "Resized",
    "ScaleChannelNetwork",
    "check_sizes",
    "convert_to_per_scale_bn",
    "feature_pyramid",
    "msresnet101",
    "recalibrate_at",
    "recalibrated_channels",
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


# --------------------------------------------------------------------------------------------------
# Scale channels, multi-level heads, and the series' multi-scale ResNet-101 (notebook 09)
# --------------------------------------------------------------------------------------------------

SCALE_POOL_NAMES = ("max", "avg")
"""How :class:`ScaleChannelNetwork` combines its channels' logits: maximum or mean over scales."""

SCALE_MODE_NAMES = ("rescale", "foveated")
"""What each channel of :class:`ScaleChannelNetwork` sees: the whole image rescaled, or a zoomed centre."""

HEAD_NAMES = ("single", "multi-level")
"""Classifier heads of :func:`msresnet101`: the last stage only, or several stages (:class:`MultiLevelResNet`)."""


def _check_scales(scales: Sequence[float]) -> tuple[float, ...]:
    """Validate scale factors (numbers > 0, at least one, no repeats) and return them as floats."""
    if isinstance(scales, (str, bytes)) or not isinstance(scales, Iterable):
        raise TypeError(f"scales must be a sequence of scale factors such as (0.5, 1.0, 2.0), got {scales!r}")
    scales = tuple(scales)
    if not scales:
        raise ValueError("scales is empty; give at least one scale factor, e.g. (0.5, 1.0, 2.0)")
    values = tuple(check_number(f"scales[{i}]", s, minimum=0.0, min_inclusive=False) for i, s in enumerate(scales))
    repeated = sorted({s for s in values if values.count(s) > 1})
    if repeated:
        raise ValueError(f"scales repeats {', '.join(f'{s:g}' for s in repeated)}; a repeated channel only adds cost, list each factor once")
    return values


def _check_square_batch(x: Any) -> Tensor:
    """Refuse anything but a batch of square images ``(N, C, H, H)``."""
    if not isinstance(x, Tensor):
        raise TypeError(f"expected a torch.Tensor batch of shape (N, C, H, W), got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"expected a batch of shape (N, C, H, W), got shape {tuple(x.shape)}"
                         + (" (add a batch dimension with x.unsqueeze(0))" if x.ndim == 3 else ""))
    if x.shape[-2] != x.shape[-1]:
        raise ValueError(f"scale channels take square images (H == W), got {x.shape[-2]}x{x.shape[-1]}; "
                         "resize or centre-crop them first (e.g. tutorial_lib.multiscale.resize_batch)")
    return x


class ScaleChannelNetwork(nn.Module):
    """One network applied to several rescaled copies of the input; its logits pooled over scales.

    A CNN recognises an object at the pixel sizes it was trained on. A scale-channel network
    (Jansson & Lindeberg, "Scale-invariant scale-channel networks: deep networks that generalise to
    previously unseen scales", J. Math. Imaging Vision 64, 2022) runs the *same* network, with
    shared weights, on copies of the image rescaled by factors ``s_1 ... s_S`` (the channels), and
    combines the channels' outputs with a maximum or an average over scales: a digit too small
    for the network at factor 1 reaches a familiar size in the channel at factor 2. With factors in
    a geometric series, rescaling the input by the ratio of two neighbouring factors moves each
    object's view from one channel to the next, and the max or mean over channels does not depend
    on which channel holds it (the paper's scale-invariance argument; it holds approximately here,
    as pixels are discrete and the ends of the range lose a channel).

    Scales are **relative factors**, not sizes in pixels: the same model reads 32 px and 64 px
    images (each gets channels at half, equal and double its own size for ``(0.5, 1.0, 2.0)``),
    a factor is the paper's rescaling parameter, and the foveated mode, whose channels all have the
    input's size, has no pixel size to name. Each channel's side is rounded to the nearest
    integer (Python's ``round``). Images must be square, so one side describes a channel.

    Modes (``s`` a factor, ``H`` the input side):

    * ``"rescale"``: the channel sees the whole image resized to ``round(H * s)`` pixels
      (:func:`resize_batch`: bilinear, antialiased when shrinking). Channel cost grows as ``s**2``.
    * ``"foveated"``: the channel sees the central square window of side ``w = round(H / s)``,
      resized back to ``H x H``. For ``s > 1`` the window is a central crop, magnified ``s``
      times (the image enlarged by ``s``, then its central ``H x H`` kept); for ``s < 1`` it is
      larger than the image and its part outside the image is zeros, so the whole image appears
      shrunk by ``s`` inside a zero border; ``s = 1`` is the image itself. Every channel has the
      input's size and cost, and covers a central region of relative side ``1/s``: the foveated
      scale-channel networks (FovMax, FovAvg) of Jansson & Lindeberg, where the coarser the scale,
      the larger the field of view around the centre.

    The channels are pooled on their **logits**, the network's final-layer outputs, as the paper
    pools the scale channels' final outputs. Max pooling keeps, for each class, the score of the
    scale at which that class is best seen, so one channel that sees the digit at a familiar size
    decides, and the other channels' guesses on a too-small or too-large digit do not dilute it;
    average pooling lets every channel vote. Both are differentiable: the maximum sends each
    class's gradient to its winning channel, the mean to all, and the shared weights collect the
    sum, so the whole model trains end to end.

    The network is the child ``net``, so the state_dict keys are the plain network's with a
    ``net.`` prefix (``net.conv1.weight`` ...) and there are no other parameters. A plain ResNet
    checkpoint loads strictly with ``scn.net.load_state_dict(torch.load(path))`` (or
    :func:`tutorial_lib.models.load_weights` on ``scn.net``).

    BatchNorm: in train mode each channel's batch is normalised with its own statistics (right for
    its scale), but every channel also updates the same running statistics, which end up a
    mixture of all the scales' statistics, matching none of them at evaluation (why statistics move
    with resolution: FixRes, Touvron et al. 2019, section 3). In ``"rescale"`` mode the channels
    have distinct input sides, so :func:`convert_to_per_scale_bn` composes:
    ``convert_to_per_scale_bn(scn.net, scn.channel_sizes(train_size))`` gives each channel
    private BatchNorms, selected by its pre-hook on ``net`` from each channel's input side (every
    side must be >= 8 px). In ``"foveated"`` mode every channel has the same side, so that hook
    cannot tell them apart and it does not apply; recalibrate the statistics
    (:func:`recalibrate_at`) or use a norm without batch statistics (``norm="group"``).

    Args:
        net: The shared network, mapping ``(N, C, h, h)`` to logits ``(N, K)`` at every channel's
            side ``h`` (a ResNet with global pooling does).
        scales: Scale factors, numbers > 0, each once, e.g. ``(0.5, 1.0, 2.0)``; the channels run
            and :meth:`channel_logits` stacks them in this order.
        pool: Pooling over scales, one of :data:`SCALE_POOL_NAMES`.
        mode: What each channel sees, one of :data:`SCALE_MODE_NAMES`.

    Raises:
        TypeError: If ``net`` is not an ``nn.Module``, or an argument has the wrong type.
        ValueError: On an empty or repeated ``scales``, a factor <= 0, or an unknown name (the
            message lists the valid ones).
    """

    def __init__(
        self, net: nn.Module, scales: Sequence[float] = (0.5, 1.0, 2.0), *, pool: str = "max", mode: str = "rescale"
    ) -> None:
        super().__init__()
        if not isinstance(net, nn.Module):
            raise TypeError(f"net must be a torch.nn.Module (e.g. tutorial_lib.models.resnet18()), got {type(net).__name__}")
        self.scales = _check_scales(scales)
        self.pool = check_choice("pool", pool, SCALE_POOL_NAMES)
        self.mode = check_choice("mode", mode, SCALE_MODE_NAMES)
        self.net = net

    def channel_sizes(self, size: int) -> tuple[int, ...]:
        """The input side of each channel, in ``scales`` order, for square inputs of side ``size``.

        ``"rescale"``: ``max(1, round(size * s))``; ``"foveated"``: ``size`` for every channel.
        """
        size = check_int("size", size, minimum=1)
        if self.mode == "foveated":
            return (size,) * len(self.scales)
        return tuple(max(1, round(size * s)) for s in self.scales)

    def _channel_input(self, x: Tensor, scale: float) -> Tensor:
        """What the channel at factor ``scale`` sees (see the class docstring for the definition)."""
        size = x.shape[-1]
        if self.mode == "rescale":
            return resize_batch(x, max(1, round(size * scale)))
        window = max(1, round(size / scale))
        if window <= size:
            start = (size - window) // 2
            view = x[..., start:start + window, start:start + window]
        else:
            before = (window - size) // 2
            after = window - size - before
            view = F.pad(x, (before, after, before, after))
        return resize_batch(view, size)

    def channel_inputs(self, x: Tensor) -> list[Tensor]:
        """The batch each channel sees, in ``scales`` order (to look at; :meth:`forward` makes them one at a time).

        Raises:
            TypeError, ValueError: If ``x`` is not a 4-D tensor of square images.
        """
        x = _check_square_batch(x)
        return [self._channel_input(x, scale) for scale in self.scales]

    def channel_logits(self, x: Tensor) -> Tensor:
        """Every channel's logits, stacked: ``(S, N, K)`` for ``S`` scales, in ``scales`` order.

        ``channel_logits(x).argmax(0)`` tells, for each image and class, which scale won the max.

        Raises:
            TypeError, ValueError: If ``x`` is not a 4-D tensor of square images.
        """
        x = _check_square_batch(x)
        return torch.stack([self.net(self._channel_input(x, scale)) for scale in self.scales])

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(N, K)``: the channels' logits, pooled over scales (max or mean)."""
        logits = self.channel_logits(x)
        if self.pool == "max":
            return logits.amax(dim=0)
        return logits.mean(dim=0)

    def extra_repr(self) -> str:
        return f"scales={self.scales}, pool={self.pool!r}, mode={self.mode!r}"


def recalibrated_channels(
    scn: ScaleChannelNetwork, data: Any, size: int, *, num_batches: int = 50, **kwargs: Any
) -> Resized:
    """A copy of ``scn`` tested at ``size``, each channel with BatchNorm statistics of its own side.

    Trained end to end, a scale-channel network normalises each channel's batch with that batch's
    own statistics, yet all channels update one set of running statistics, a mixture that matches
    no channel at evaluation (see :class:`ScaleChannelNetwork`). Here each channel's side
    ``scn.channel_sizes(size)`` gets statistics recomputed on ``data`` resized to that side
    (:func:`recalibrate_at`, weights frozen), held in a :class:`PerScaleBatchNorm2d` per layer, so
    every channel, including one added after training, reads statistics of exactly what it sees.
    ``data`` is resized straight to each side; with ``data`` stored at ``size`` (the CLI's case)
    that is exactly the channel's input. ``scn`` itself is not changed.

    Args:
        scn: a trained :class:`ScaleChannelNetwork` in ``"rescale"`` mode with plain BatchNorm.
        data: training images for the statistics (labels are not used).
        size: the test input side; the result resizes its input to it (:class:`Resized`).
        num_batches: batches averaged per channel.
        **kwargs: passed to ``recalibrate_bn`` (e.g. ``batch_size``, ``seed``).

    Returns:
        ``Resized(copy, size)``, in eval mode.

    Raises:
        TypeError: if ``scn`` is not a :class:`ScaleChannelNetwork`.
        ValueError: in foveated mode (every channel has the input's side), if two channels round to
            one side, or if ``scn`` already has per-scale BatchNorm.
    """
    if not isinstance(scn, ScaleChannelNetwork):
        raise TypeError(f"scn must be a ScaleChannelNetwork (e.g. msresnet101()), got {type(scn).__name__}")
    size = check_int("size", size, minimum=1)
    if scn.mode != "rescale":
        raise ValueError("foveated channels all have the input's side, so per-side statistics cannot tell them apart; "
                         "use recalibrate_at on the whole model, or a norm without batch statistics")
    if any(isinstance(m, PerScaleBatchNorm2d) for m in scn.modules()):
        raise ValueError("scn already has per-scale BatchNorm (each side routed to its own statistics); "
                         "recalibrate a network trained with plain BatchNorm")
    sides = scn.channel_sizes(size)
    if len(set(sides)) != len(sides):
        raise ValueError(f"at size {size} the channels' sides {sides} repeat; use a larger size or fewer scales")
    result = copy.deepcopy(scn)
    convert_to_per_scale_bn(result.net, sides)
    targets = [m for m in result.net.modules() if isinstance(m, PerScaleBatchNorm2d)]
    for side in sides:
        calibrated = recalibrate_at(copy.deepcopy(scn.net), data, side, num_batches=num_batches, **kwargs)
        sources = [m for m in calibrated.modules() if type(m) is nn.BatchNorm2d]
        for source, target in zip(sources, targets, strict=True):
            target.bns[str(side)].load_state_dict(source.state_dict())
    return Resized(result, size).eval()


def _stage_channels(stage: nn.Module) -> int:
    """Output channels of a ResNet stage: those of its last convolution (a block's last conv or shortcut)."""
    convs = [m for m in stage.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"stage {type(stage).__name__} has no Conv2d layer, so its output channels are unknown")
    return convs[-1].out_channels


class MultiLevelResNet(nn.Module):
    """A ResNet whose classifier reads several stages (e.g. C3, C4, C5), not only the last.

    The last stage of a ResNet sees the image at 1/8 (small stem) or 1/32 (ImageNet stem) of its
    resolution, with receptive fields far larger than a small object; earlier stages keep finer
    detail. Here the outputs of the stages named in ``levels`` (``layer2``, ``layer3``,
    ``layer4`` are C3, C4, C5 in the feature-pyramid naming of Lin et al., CVPR 2017, section 3;
    see :data:`PYRAMID_LEVELS`) are each globally pooled, the pooled vectors concatenated in the
    order of ``levels``, and one ``nn.Linear`` classifies the result. It is a lighter form of the
    classification head of HRNet (Wang et al., "Deep high-resolution representation learning for
    visual recognition", TPAMI 2021, its ImageNet classification network), which also feeds every
    resolution into the classifier but first widens and merges them with convolutions; here there
    is no projection, so the only new parameters are the wider ``fc`` (and one ``p`` per level for
    GeM pooling).

    State_dict keys: the trunk keeps the plain network's keys under ``net.`` (``net.conv1.weight``
    ... ``net.layer4.2.bn3.running_var``), then ``pools.<level>.p`` (GeM only) and ``fc.weight``,
    ``fc.bias``. The trunk's own head is unused, so ``net.avgpool`` and ``net.fc`` are replaced by
    ``nn.Identity`` (in place: ``net`` is adopted, not copied) and hold no keys, so no dead
    parameters are trained, counted or saved. A plain ResNet checkpoint's trunk then loads
    strictly with :meth:`load_trunk`, which drops only that checkpoint's head keys (``fc.*`` and a
    GeM ``avgpool.p``).

    Args:
        net: A ResNet with children ``conv1``, ``bn1``, ``relu``, ``maxpool``, ``layer1`` ...
            ``layer4`` (:class:`tutorial_lib.models.ResNet` or torchvision's).
        levels: Stages to classify from, names from :data:`PYRAMID_LEVELS` (``"layer1"`` ...
            ``"layer4"``), each once.
        num_classes: Outputs of the classifier; ``None`` takes the trunk's ``fc.out_features``.
        pool: Global pooling of each level, one of :data:`tutorial_lib.models.POOL_NAMES`.

    Raises:
        TypeError: If ``net`` is not an ``nn.Module``, or an argument has the wrong type.
        ValueError: If ``net`` lacks a stage, ``levels`` is empty, repeats or misnames a stage, or a
            name is unknown (the message lists the valid ones).
    """

    def __init__(
        self,
        net: nn.Module,
        levels: Sequence[str] = ("layer2", "layer3", "layer4"),
        *,
        num_classes: int | None = None,
        pool: str = "avg",
    ) -> None:
        super().__init__()
        if not isinstance(net, nn.Module):
            raise TypeError(f"net must be a torch.nn.Module (e.g. tutorial_lib.models.resnet101()), got {type(net).__name__}")
        children = dict(net.named_children())
        missing = [name for name in ("conv1", "bn1", "relu", "maxpool", *PYRAMID_LEVELS) if name not in children]
        if missing:
            raise ValueError(f"net has no {', '.join(missing)}; MultiLevelResNet needs a ResNet with "
                             "conv1, bn1, relu, maxpool and layer1..layer4 (tutorial_lib.models or torchvision)")
        if isinstance(levels, (str, bytes)) or not isinstance(levels, Iterable):
            raise TypeError(f"levels must be a sequence of stage names such as ('layer2', 'layer3', 'layer4'), got {levels!r}")
        levels = tuple(levels)
        if not levels:
            raise ValueError("levels is empty; give at least one stage, e.g. ('layer2', 'layer3', 'layer4')")
        for i, name in enumerate(levels):
            check_choice(f"levels[{i}]", name, tuple(PYRAMID_LEVELS))
        if len(set(levels)) != len(levels):
            raise ValueError(f"levels repeats a stage: {levels}; list each stage once")
        check_choice("pool", pool, POOL_NAMES)
        if num_classes is None:
            fc = children.get("fc")
            if not isinstance(fc, nn.Linear):
                raise ValueError("net has no nn.Linear fc to take the number of classes from; pass num_classes")
            num_classes = fc.out_features
        num_classes = check_int("num_classes", num_classes, minimum=1)
        width = sum(_stage_channels(children[name]) for name in levels)

        # Plain attributes (not in the state_dict): what the model was built with.
        self.levels = levels
        self.pool = pool
        self.num_classes = num_classes
        self.in_channels = net.conv1.in_channels

        net.avgpool = nn.Identity()
        net.fc = nn.Identity()
        self.net = net
        self.pools = nn.ModuleDict({name: global_pool(pool) for name in levels})
        self.fc = nn.Linear(width, num_classes)

    def load_trunk(self, state_dict: Mapping[str, Tensor]) -> MultiLevelResNet:
        """Load a plain ResNet's state_dict (keys ``conv1.weight`` ..., no ``net.``) into the trunk, strictly.

        The checkpoint's head keys (``fc.weight``, ``fc.bias``, and ``avgpool.p`` of a GeM model)
        are dropped, since this model pools and classifies with its own ``pools`` and ``fc``;
        every other key and shape must match the trunk exactly.

        Returns:
            ``self``, for chaining.

        Raises:
            TypeError: If ``state_dict`` is not a mapping.
            RuntimeError: If a trunk key is missing, unexpected or of the wrong shape (PyTorch's
                strict-loading message lists them).
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a mapping of names to tensors, got {type(state_dict).__name__}")
        trunk = {k: v for k, v in state_dict.items() if not k.startswith(("fc.", "avgpool."))}
        self.net.load_state_dict(trunk, strict=True)
        return self

    def forward_levels(self, x: Tensor) -> dict[str, Tensor]:
        """The stem and the four stages: every stage's output, ``{"layer1": ..., "layer4": ...}``."""
        _check_input(x, self.in_channels)
        x = self.net.conv1(x)
        x = self.net.bn1(x)
        x = self.net.relu(x)
        x = self.net.maxpool(x)

        c2 = self.net.layer1(x)
        c3 = self.net.layer2(c2)
        c4 = self.net.layer3(c3)
        c5 = self.net.layer4(c4)
        return {"layer1": c2, "layer2": c3, "layer3": c4, "layer4": c5}

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(N, num_classes)``: each level pooled, the vectors concatenated, the classifier."""
        features = self.forward_levels(x)
        x = torch.cat([torch.flatten(self.pools[name](features[name]), 1) for name in self.levels], dim=1)
        x = self.fc(x)
        return x

    def extra_repr(self) -> str:
        return f"levels={self.levels}, pool={self.pool!r}"


def msresnet101(
    *,
    num_classes: int = 10,
    width: int = 16,
    stem: str = "small",
    scales: Sequence[float] = (0.5, 1.0, 2.0),
    scale_pool: str = "max",
    mode: str = "rescale",
    head: str = "single",
    levels: Sequence[str] | None = None,
    pool: str = "avg",
    **options: Any,
) -> ScaleChannelNetwork:
    """The series' multi-scale ResNet-101: scale channels around a ResNet-101, with one or several levels.

    ``resnet101(num_classes, width, stem, pool, **options)`` is the shared network; with
    ``head="multi-level"`` it becomes a :class:`MultiLevelResNet` over ``levels``; a
    :class:`ScaleChannelNetwork` applies it at ``scales`` and pools its logits with
    ``scale_pool``. The defaults suit the CPU series: width 16 and the small stem for 32-64 px
    digits, and channels at half, equal and double the input size, so a digit half or twice the
    training size reaches a familiar size in one of them.

    State_dict keys: ``net.conv1.weight`` ... for ``head="single"`` (a plain ResNet-101's under
    ``net.``), ``net.net.conv1.weight`` ... plus ``net.fc.*`` for ``"multi-level"``. The scale
    channels add no parameters; the multi-level head adds ``(C3 + C4 + ...) * num_classes``
    classifier weights beyond the C5 ones, and GeM one ``p`` per level.

    Args:
        num_classes: Outputs of the classifier.
        width: Base width of the ResNet-101 (64 in the paper).
        stem: ``"small"`` or ``"imagenet"`` (see :class:`tutorial_lib.models.ResNet`).
        scales: Scale factors of the channels (see :class:`ScaleChannelNetwork`).
        scale_pool: Pooling over scales, one of :data:`SCALE_POOL_NAMES`.
        mode: ``"rescale"`` or ``"foveated"`` (see :class:`ScaleChannelNetwork`).
        head: One of :data:`HEAD_NAMES`.
        levels: Stages of the multi-level head (default ``("layer2", "layer3", "layer4")``); only
            with ``head="multi-level"``.
        pool: Global pooling over space, one of :data:`tutorial_lib.models.POOL_NAMES`: the
            ResNet's for ``"single"``, each level's for ``"multi-level"``.
        **options: Further :data:`tutorial_lib.models.OPTION_NAMES` options (``norm``, ...).

    Returns:
        The model, a :class:`ScaleChannelNetwork`.

    Raises:
        TypeError: On an argument of the wrong type or an unknown option.
        ValueError: On an invalid value or unknown name (the message lists the valid ones), or
            ``levels`` without ``head="multi-level"``.
    """
    # The cheap checks first, so a typo fails before the network is built.
    check_choice("head", head, HEAD_NAMES)
    check_choice("scale_pool", scale_pool, SCALE_POOL_NAMES)
    check_choice("mode", mode, SCALE_MODE_NAMES)
    check_choice("pool", pool, POOL_NAMES)
    scales = _check_scales(scales)
    if head == "single":
        if levels is not None:
            raise ValueError("levels applies only to head='multi-level'; drop levels or pass head='multi-level'")
        net: nn.Module = resnet101(num_classes=num_classes, width=width, stem=stem, pool=pool, **options)
    else:
        trunk = resnet101(num_classes=num_classes, width=width, stem=stem, **options)
        net = MultiLevelResNet(trunk, ("layer2", "layer3", "layer4") if levels is None else levels, pool=pool)
    return ScaleChannelNetwork(net, scales, pool=scale_pool, mode=mode)
