"""Convolution and pooling helpers, and the arithmetic of sizes and receptive fields.

Two questions come up with every convolutional network:

* **How big is the output?** :func:`conv_output_size` applies the formula PyTorch documents for
  ``nn.Conv2d`` / ``nn.MaxPool2d`` (including ``ceil_mode``), so a learner can predict a shape before
  running the layer.
* **How much of the image does one output pixel see?** :func:`receptive_field` walks a model's
  layers and applies the recurrence of Araujo et al. 2019 ("Computing Receptive Fields of
  Convolutional Neural Networks", Distill); :func:`measure_receptive_field` measures the
  same thing on the real layers by back-propagating from one output pixel, so the arithmetic can be
  checked. The arithmetic follows one path; a multi-branch block (Res2Net's) is refused with a
  ``TypeError`` that points to the measurement, which has no such limit.

``conv3x3`` and ``conv1x1`` build the two convolutions ResNet is made of, with torchvision's
arguments, so blocks built from them have torchvision's parameter shapes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from tutorial_lib._validate import check_bool, check_int

__all__ = [
    "SHORTCUT_NAMES",
    "MeasuredField",
    "ReceptiveField",
    "conv1x1",
    "conv3x3",
    "EffectiveField",
    "conv_output_size",
    "effective_receptive_field",
    "format_receptive_fields",
    "measure_receptive_field",
    "receptive_field",
]

IntOrPair = int | Sequence[int]


def conv3x3(
    in_planes: int, out_planes: int, stride: int = 1, groups: int = 1, dilation: int = 1
) -> nn.Conv2d:
    """A 3x3 convolution with "same" padding and no bias (torchvision's ``conv3x3``).

    The padding equals the dilation so a stride-1 convolution keeps the spatial size; the bias is
    dropped because a normalization layer with its own shift always follows (He et al. 2016,
    section 3.4; Ioffe & Szegedy 2015, section 3.2).

    Args:
        in_planes: Input channels.
        out_planes: Output channels.
        stride: Spatial stride; 2 halves the height and width.
        groups: Channel groups (1 = ordinary convolution).
        dilation: Spacing between kernel taps.

    Returns:
        The ``nn.Conv2d`` module.

    Raises:
        TypeError: If an argument is not an int.
        ValueError: If an argument is out of range or channels are not divisible by ``groups``.
    """
    in_planes = check_int("in_planes", in_planes, minimum=1)
    out_planes = check_int("out_planes", out_planes, minimum=1)
    stride = check_int("stride", stride, minimum=1)
    groups = check_int("groups", groups, minimum=1)
    dilation = check_int("dilation", dilation, minimum=1)
    if in_planes % groups or out_planes % groups:
        raise ValueError(
            f"in_planes ({in_planes}) and out_planes ({out_planes}) must both be divisible by "
            f"groups ({groups})"
        )
    return nn.Conv2d(
        in_planes,
        out_planes,
        kernel_size=3,
        stride=stride,
        padding=dilation,
        groups=groups,
        bias=False,
        dilation=dilation,
    )


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """A 1x1 convolution without bias (torchvision's ``conv1x1``).

    A 1x1 convolution mixes channels at each pixel independently; ResNet uses it to shrink and
    re-expand the channels around the 3x3 in a bottleneck, and (with stride 2) as the projection
    shortcut (He et al. 2016, section 3.3, option B).

    Args:
        in_planes: Input channels.
        out_planes: Output channels.
        stride: Spatial stride.

    Returns:
        The ``nn.Conv2d`` module.

    Raises:
        TypeError: If an argument is not an int.
        ValueError: If an argument is out of range.
    """
    in_planes = check_int("in_planes", in_planes, minimum=1)
    out_planes = check_int("out_planes", out_planes, minimum=1)
    stride = check_int("stride", stride, minimum=1)
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


# --------------------------------------------------------------------------------------------------
# Output size
# --------------------------------------------------------------------------------------------------


def _as_tuple(name: str, value: object, ndim: int, minimum: int) -> tuple[int, ...]:
    """Broadcast an int to ``ndim`` ints, or validate a sequence of ``ndim`` ints."""
    if isinstance(value, (list, tuple)):
        if len(value) != ndim:
            raise ValueError(f"{name} has {len(value)} entries but the size has {ndim}: {value!r}")
        return tuple(check_int(f"{name}[{i}]", v, minimum=minimum) for i, v in enumerate(value))
    return (check_int(name, value, minimum=minimum),) * ndim


def _output_length(
    size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool
) -> int:
    """One spatial dimension of PyTorch's output-size formula (``nn.Conv2d`` / ``nn.MaxPool2d`` docs)."""
    # A dilated kernel spans d*(k-1)+1 input pixels; the output has one entry per stride step that
    # still fits inside the padded input.
    span = dilation * (kernel - 1) + 1
    room = size + 2 * padding - span
    if room < 0:
        raise ValueError(
            f"the kernel spans {span} pixels (kernel_size={kernel}, dilation={dilation}) but the "
            f"padded input has only {size + 2 * padding} (size={size}, padding={padding}); use a "
            "larger input, more padding or a smaller kernel"
        )
    if not ceil_mode:
        return room // stride + 1
    out = math.ceil(room / stride) + 1
    # PyTorch's pooling rule: the last window must start inside the input or the left padding,
    # never entirely in the right padding.
    if (out - 1) * stride >= size + padding:
        out -= 1
    return out


def conv_output_size(
    size: IntOrPair,
    kernel_size: IntOrPair,
    stride: IntOrPair = 1,
    padding: IntOrPair | str = 0,
    dilation: IntOrPair = 1,
    ceil_mode: bool = False,
) -> int | tuple[int, ...]:
    """Spatial output size of a convolution or pooling layer.

    Implements ``floor((size + 2*padding - dilation*(kernel_size-1) - 1) / stride) + 1`` per
    dimension, the formula in the ``nn.Conv2d`` and ``nn.MaxPool2d`` documentation; with
    ``ceil_mode=True`` it rounds up as pooling layers do, dropping a last window that would start in
    the right padding.

    Args:
        size: Input size: an int, or one int per spatial dimension, e.g. ``(224, 224)``.
        kernel_size: Kernel size, an int or one per dimension.
        stride: Stride, an int or one per dimension.
        padding: Zero padding on each side, an int or one per dimension, or ``"valid"`` (0) or
            ``"same"`` (output = input; PyTorch allows it only with stride 1).
        dilation: Spacing between kernel taps, an int or one per dimension.
        ceil_mode: Round up instead of down (pooling layers' ``ceil_mode``).

    Returns:
        An int when every argument is an int, else a tuple with one size per dimension.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If an argument is out of range, the lengths disagree, or the kernel does not fit.

    Example:
        >>> conv_output_size(224, kernel_size=7, stride=2, padding=3)
        112
    """
    check_bool("ceil_mode", ceil_mode)
    args = (size, kernel_size, stride, padding, dilation)
    sequences = [a for a in args if isinstance(a, (list, tuple))]
    ndim = len(sequences[0]) if sequences else 1
    sizes = _as_tuple("size", size, ndim, 1)
    kernels = _as_tuple("kernel_size", kernel_size, ndim, 1)
    strides = _as_tuple("stride", stride, ndim, 1)
    dilations = _as_tuple("dilation", dilation, ndim, 1)
    if isinstance(padding, str):
        if padding == "valid":
            paddings = (0,) * ndim
        elif padding == "same":
            if any(s != 1 for s in strides):
                raise ValueError("padding='same' needs stride 1 (as in nn.Conv2d); pass an int padding")
            return size if not sequences else sizes
        else:
            raise ValueError(f"padding must be an int, a tuple, 'valid' or 'same'; got {padding!r}")
    else:
        paddings = _as_tuple("padding", padding, ndim, 0)
    out = tuple(
        _output_length(*dims, ceil_mode)
        for dims in zip(sizes, kernels, strides, paddings, dilations)
    )
    return out if sequences else out[0]


# --------------------------------------------------------------------------------------------------
# Receptive field
# --------------------------------------------------------------------------------------------------

# Layers whose geometry the receptive-field walk understands.
_GEOMETRY_LAYERS = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)
# After these, every output sees the whole input (global pooling, or a classifier on a flat vector):
# the walk stops.
_GLOBAL_LAYERS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten, nn.Linear)
# Layers that change geometry in ways the recurrence below does not model.
_UNSUPPORTED_LAYERS = (
    nn.ConvTranspose2d,
    nn.Upsample,
    nn.PixelShuffle,
    nn.PixelUnshuffle,
    nn.Unfold,
    nn.Fold,
    nn.LPPool2d,
    nn.FractionalMaxPool2d,
    nn.Conv1d,
    nn.Conv3d,
)

SHORTCUT_NAMES = ("downsample",)
"""Child-module names treated as a residual block's shortcut and skipped by :func:`receptive_field`."""


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive-field arithmetic after one layer, along one spatial axis.

    Attributes:
        name: The layer's qualified name in the model (``"layer1.0.conv2"``).
        layer: Its class name (``"Conv2d"``).
        kernel_size: Kernel size along the axis.
        stride: Stride along the axis.
        padding: Padding along the axis (left/top side).
        dilation: Dilation along the axis.
        size: Receptive field: how many input pixels one output pixel depends on.
        jump: Effective stride: input pixels between two neighbouring output pixels.
        start: Input coordinate of the centre of output pixel 0's receptive field (pixel ``i`` of
            the input has coordinate ``i``); output pixel ``j`` is centred at ``start + j * jump``.
    """

    name: str
    layer: str
    kernel_size: int
    stride: int
    padding: int
    dilation: int
    size: int
    jump: int
    start: float


def _has_geometry_layer(module: nn.Module) -> bool:
    """Whether ``module`` or anything inside it changes geometry (a conv, pool or unsupported layer)."""
    return any(isinstance(m, _GEOMETRY_LAYERS + _UNSUPPORTED_LAYERS) for m in module.modules())


def _check_single_path(module: nn.Module, prefix: str) -> None:
    """Refuse a block that keeps convolutions in an ``nn.ModuleList``/``nn.ModuleDict``.

    Such containers have no ``forward``: the block's own ``forward`` decides whether their layers
    run one after the other, side by side, or some of each (Res2Net's groups are chained in an
    inner block and parallel in a stage block; Gao et al., TPAMI 2021, section 3.1). Registration
    order cannot tell these apart, so the single-path walk would silently give wrong numbers.
    Containers of pointwise layers only (per-scale BatchNorm, ``tutorial_lib.multiscale``) are
    harmless and pass.
    """
    for name, child in module.named_children():
        if isinstance(child, (nn.ModuleList, nn.ModuleDict)) and _has_geometry_layer(child):
            where = f"{prefix} ({type(module).__name__})" if prefix else type(module).__name__
            raise TypeError(
                f"{where} keeps conv/pool layers in the {type(child).__name__} '{name}', which its "
                "forward may run as parallel branches (a multi-branch block such as Res2Net's); "
                "receptive_field follows a single path in registration order and would give wrong "
                "numbers. Use measure_receptive_field(model, input_size) instead, which measures "
                "the field by back-propagation through the real layers"
            )


def _walk(module: nn.Module, prefix: str) -> Iterable[tuple[str, nn.Module]]:
    """Yield ``(qualified_name, leaf)`` along the main path, in registration order.

    Raises:
        TypeError: If a block on the path may have parallel branches (see :func:`_check_single_path`).
    """
    children = list(module.named_children())
    if not children:
        yield prefix, module
        return
    _check_single_path(module, prefix)
    for name, child in children:
        if name in SHORTCUT_NAMES:
            continue
        yield from _walk(child, f"{prefix}.{name}" if prefix else name)


def _geometry(module: nn.Module, axis: int) -> tuple[int, int, int, int]:
    """(kernel, stride, padding, dilation) of a conv/pool module along ``axis``."""

    def pick(value: object) -> int:
        return int(value[axis]) if isinstance(value, (tuple, list)) else int(value)

    kernel = pick(module.kernel_size)
    stride = pick(module.stride if module.stride is not None else module.kernel_size)
    dilation = pick(getattr(module, "dilation", 1))
    padding = module.padding
    if padding == "valid":
        padding = 0
    elif padding == "same":
        # PyTorch pads d*(k-1) in total, the smaller half on the left/top.
        padding = dilation * (kernel - 1) // 2
    return kernel, stride, pick(padding), dilation


def receptive_field(
    model: nn.Module | Sequence[nn.Module], *, axis: int = 0
) -> list[ReceptiveField]:
    """Receptive field, effective stride and centre after every conv/pool layer of a model.

    Walks the leaf modules in registration order (the order torchvision, timm and tutorial_lib
    register them is the order ``forward`` calls them) and applies, for each ``nn.Conv2d``,
    ``nn.MaxPool2d`` and ``nn.AvgPool2d`` (effective kernel ``k' = d*(k-1)+1``) the
    single-path recurrence of Araujo et al. 2019 (Distill, "Computing Receptive Fields")::

        size_out  = size_in + (k' - 1) * jump_in
        jump_out  = jump_in * stride
        start_out = start_in + ((k' - 1) / 2 - padding) * jump_in

    starting from one input pixel (size 1, jump 1, start 0). Pointwise layers (normalization,
    activations, dropout) leave all three unchanged and are not listed. The walk stops at global
    pooling, ``nn.Flatten`` or ``nn.Linear``, after which every output sees the whole image.

    Residual blocks: a child named ``downsample`` (the shortcut, see :data:`SHORTCUT_NAMES`) is
    skipped, so a block contributes its main path. That is the block's receptive field, because the
    shortcut is an identity or a 1x1 convolution whose window lies inside the main path's.
    Multi-branch blocks are refused rather than guessed: a block that keeps conv/pool layers in an
    ``nn.ModuleList`` or ``nn.ModuleDict`` (Res2Net's ``convs``, whose groups run in parallel in a
    stage block and chained in an inner one) raises ``TypeError``; measure such a model with
    :func:`measure_receptive_field`. Padding is not clipped: the field is measured on the padded plane, so near a border part of it
    falls outside the image.

    Args:
        model: A module (walked recursively) or a sequence of modules applied in order.
        axis: 0 for the height, 1 for the width (they differ only for non-square kernels).

    Returns:
        One :class:`ReceptiveField` per conv/pool layer, in order; the last one describes the
        model's output.

    Raises:
        TypeError: If ``axis`` is not an int, ``model`` is not a module or sequence of modules, or
            it contains a layer whose geometry this recurrence cannot model (transposed
            convolution, upsampling, ...), or a
            multi-branch block whose conv/pool layers sit in an ``nn.ModuleList``/``nn.ModuleDict``
            (Res2Net): use :func:`measure_receptive_field` for those.
        ValueError: If ``axis`` is not 0 or 1, or no conv/pool layer is found.
    """
    axis = check_int("axis", axis)
    if axis not in (0, 1):
        raise ValueError(f"axis must be 0 (height) or 1 (width), got {axis!r}")
    if isinstance(model, nn.Module):
        leaves = list(_walk(model, ""))
    elif isinstance(model, (list, tuple)):
        leaves = []
        for index, item in enumerate(model):
            if not isinstance(item, nn.Module):
                raise TypeError(
                    f"model[{index}] is a {type(item).__name__}; pass nn.Module layers only"
                )
            leaves.extend(_walk(item, str(index)))
    else:
        raise TypeError(
            f"model must be an nn.Module or a list of nn.Module layers, got {type(model).__name__}"
        )

    size, jump, start = 1, 1, 0.0
    rows: list[ReceptiveField] = []
    for name, leaf in leaves:
        if isinstance(leaf, _GLOBAL_LAYERS):
            break
        if isinstance(leaf, _UNSUPPORTED_LAYERS):
            raise TypeError(
                f"{name or 'model'} is a {type(leaf).__name__}; receptive_field handles Conv2d, "
                "MaxPool2d and AvgPool2d (plus pointwise layers), so pass the part of the model "
                "before it"
            )
        if not isinstance(leaf, _GEOMETRY_LAYERS):
            continue  # pointwise: normalization, activation, dropout, identity, ...
        kernel, stride, padding, dilation = _geometry(leaf, axis)
        span = dilation * (kernel - 1) + 1
        start = start + ((span - 1) / 2 - padding) * jump
        size = size + (span - 1) * jump
        jump = jump * stride
        rows.append(
            ReceptiveField(
                name=name or type(leaf).__name__,
                layer=type(leaf).__name__,
                kernel_size=kernel,
                stride=stride,
                padding=padding,
                dilation=dilation,
                size=size,
                jump=jump,
                start=start,
            )
        )
    if not rows:
        raise ValueError("no Conv2d, MaxPool2d or AvgPool2d layer found before global pooling")
    return rows


def format_receptive_fields(rows: Sequence[ReceptiveField]) -> str:
    """Render :func:`receptive_field`'s rows as a fixed-width table (one line per layer).

    Args:
        rows: The list :func:`receptive_field` returned.

    Returns:
        The table as a string, ready to ``print``.

    Raises:
        TypeError: If an entry is not a :class:`ReceptiveField`.
    """
    for row in rows:
        if not isinstance(row, ReceptiveField):
            raise TypeError(f"expected ReceptiveField rows from receptive_field(), got {type(row).__name__}")
    width = max([len("layer")] + [len(r.name) for r in rows])
    lines = [f"{'layer':<{width}}  {'type':<9} {'k':>2} {'s':>2} {'p':>2} {'d':>2} {'RF':>5} {'jump':>5} {'start':>6}"]
    for r in rows:
        lines.append(
            f"{r.name:<{width}}  {r.layer:<9} {r.kernel_size:>2} {r.stride:>2} {r.padding:>2} "
            f"{r.dilation:>2} {r.size:>5} {r.jump:>5} {r.start:>6.1f}"
        )
    return "\n".join(lines)


def _height_width(name: str, value: object, minimum: int = 1) -> tuple[int, int]:
    """A pair of ints from an int (used twice, e.g. a square's sides) or a pair, each ``>= minimum``."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {len(value)} entries: {value!r}")
        return check_int(f"{name}[0]", value[0], minimum=minimum), check_int(f"{name}[1]", value[1], minimum=minimum)
    side = check_int(name, value, minimum=minimum)
    return side, side


class MeasuredField(NamedTuple):
    """Bounding box of the input pixels one output pixel depends on (:func:`measure_receptive_field`)."""

    height: int
    width: int
    top: int
    left: int



def _probe_input(model: nn.Module, in_channels: int | None) -> tuple[int, torch.device, torch.dtype]:
    """The channels, device and dtype of a random probe input for ``model`` (the receptive-field probes).

    ``in_channels`` defaults to the first convolution's; device and dtype follow the parameters.
    """
    if in_channels is None:
        first_conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
        if first_conv is None:
            raise ValueError("model has no Conv2d to take in_channels from; pass in_channels")
        in_channels = first_conv.in_channels
    in_channels = check_int("in_channels", in_channels, minimum=1)
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    return in_channels, device, dtype

def measure_receptive_field(
    model: nn.Module,
    input_size: int | tuple[int, int],
    *,
    in_channels: int | None = None,
    position: tuple[int, int] | None = None,
    trials: int = 3,
    seed: int = 0,
) -> MeasuredField:
    """Measure a receptive field by back-propagating from one output pixel.

    The gradient of output pixel ``(i, j)`` (summed over channels) with respect to the input is
    non-zero exactly on the input pixels it depends on. Random inputs make the gradient non-zero
    almost surely wherever a path exists; the union over a few ``trials`` covers pixels that a
    single input hides behind a ReLU or a max-pool's arg-max. The model runs in eval mode (its mode
    is restored afterwards) and the parameters' ``.grad`` are not touched.

    Args:
        model: A module mapping ``(N, C, H, W)`` to ``(N, C', H', W')``.
        input_size: Input height and width (an int for a square input). Make it large enough for
            the field to fit, or the border clips it.
        in_channels: Input channels; by default those of the first ``nn.Conv2d``.
        position: Output pixel ``(row, column)``; by default the centre one.
        trials: Random inputs to take the union over.
        seed: Seed of the random inputs (a local generator; global RNG state is untouched).

    Returns:
        A :class:`MeasuredField` with the bounding box's height, width, top row and left column.

    Raises:
        TypeError: If ``model`` is not a module, or a size, ``position``, ``trials`` or ``seed`` is not
            an int (or a pair of ints).
        ValueError: If the sizes are invalid, the output is not 4-D, or ``position`` is outside it.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    height, width = _height_width("input_size", input_size)
    trials = check_int("trials", trials, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    if position is not None:
        position = _height_width("position", position, minimum=0)
    in_channels, device, dtype = _probe_input(model, in_channels)
    generator = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        touched = torch.zeros(height, width, dtype=torch.bool)
        for _ in range(trials):
            x = torch.randn(1, in_channels, height, width, generator=generator, dtype=dtype)
            x = x.to(device).requires_grad_(True)
            out = model(x)
            if out.dim() != 4:
                raise ValueError(f"model output must be (N, C, H, W), got shape {tuple(out.shape)}")
            row, col = position if position is not None else (out.shape[2] // 2, out.shape[3] // 2)
            if not (0 <= row < out.shape[2] and 0 <= col < out.shape[3]):
                raise ValueError(f"position {(row, col)} is outside the output's {tuple(out.shape[2:])}")
            (grad,) = torch.autograd.grad(out[0, :, row, col].sum(), x)
            touched |= (grad[0] != 0).any(dim=0).cpu()
    finally:
        model.train(was_training)
    rows = torch.nonzero(touched.any(dim=1)).flatten()
    cols = torch.nonzero(touched.any(dim=0)).flatten()
    if rows.numel() == 0:
        raise ValueError("the chosen output pixel does not depend on any input pixel")
    return MeasuredField(
        height=int(rows[-1] - rows[0] + 1),
        width=int(cols[-1] - cols[0] + 1),
        top=int(rows[0]),
        left=int(cols[0]),
    )


class EffectiveField(NamedTuple):
    """What one output pixel actually uses (:func:`effective_receptive_field`).

    ``gradient`` is the mean absolute gradient of the centre output pixel with respect to each input
    pixel (summed over input channels, averaged over random inputs), shape ``(H, W)``, normalised to
    sum to 1. ``side`` is the side of the smallest square centred on the output pixel's centre that
    holds ``mass`` of it; ``theoretical`` is the side of the bounding box of the non-zero gradient,
    the theoretical receptive field clipped by the image border.
    """

    gradient: torch.Tensor
    side: int
    mass: float
    theoretical: int


def effective_receptive_field(
    model: nn.Module,
    input_size: int,
    *,
    in_channels: int | None = None,
    mass: float = 0.95,
    trials: int = 8,
    seed: int = 0,
) -> EffectiveField:
    """Measure the *effective* receptive field of the centre output pixel (Luo et al. 2016).

    The theoretical receptive field (:func:`receptive_field`) says which input pixels *can* change an
    output pixel. Luo et al. 2016 ("Understanding the Effective Receptive Field in Deep
    Convolutional Neural Networks", NIPS, section 2) measure how *much* each one does: the gradient of
    the output pixel with respect to each input pixel. Its magnitude is roughly Gaussian, largest in
    the centre, and its width grows only with the square root of the depth, while the theoretical
    field grows linearly; so the effective field fills a shrinking part of the theoretical one.

    This function back-propagates from the centre output pixel (summed over output channels) for
    ``trials`` random inputs, averages the absolute input gradient, and reports the side of the
    smallest centred square holding ``mass`` of it. The model runs in eval mode (restored afterwards);
    parameter gradients are not touched.

    Args:
        model: A module mapping ``(N, C, H, W)`` to ``(N, C', H', W')``.
        input_size: Side of the square input.
        in_channels: Input channels; by default those of the first ``nn.Conv2d``.
        mass: Share of the gradient magnitude the reported square must hold, in (0, 1].
        trials: Random inputs to average over.
        seed: Seed of the random inputs (a local generator; the global RNG state is untouched).

    Returns:
        An :class:`EffectiveField`.

    Raises:
        TypeError: If ``model`` is not a module or a number has the wrong type.
        ValueError: If a size or ``mass`` is out of range, the output is not 4-D, or the centre
            output pixel depends on no input pixel.
    """
    from tutorial_lib._validate import check_number

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    input_size = check_int("input_size", input_size, minimum=1)
    mass = check_number("mass", mass, minimum=0.0, maximum=1.0, min_inclusive=False)
    trials = check_int("trials", trials, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    in_channels, device, dtype = _probe_input(model, in_channels)
    generator = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    total = torch.zeros(input_size, input_size, dtype=torch.float64)
    try:
        for _ in range(trials):
            x = torch.randn(1, in_channels, input_size, input_size, generator=generator, dtype=dtype)
            x = x.to(device).requires_grad_(True)
            out = model(x)
            if out.dim() != 4:
                raise ValueError(f"model output must be (N, C, H, W), got shape {tuple(out.shape)}")
            (grad,) = torch.autograd.grad(out[0, :, out.shape[2] // 2, out.shape[3] // 2].sum(), x)
            total += grad[0].abs().sum(dim=0).double().cpu()
    finally:
        model.train(was_training)
    if total.sum() == 0:
        raise ValueError("the centre output pixel does not depend on any input pixel")
    gradient = total / total.sum()
    touched = gradient > 0
    rows = torch.nonzero(touched.any(dim=1)).flatten()
    cols = torch.nonzero(touched.any(dim=0)).flatten()
    theoretical = int(max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1)
    # Centre of the field: the gradient's centre of mass (the output pixel's centre in the input).
    coords = torch.arange(input_size, dtype=torch.float64)
    centre_row = float((gradient.sum(dim=1) * coords).sum())
    centre_col = float((gradient.sum(dim=0) * coords).sum())
    # Odd squares centred on the pixel nearest the centre: side 2r + 1 for r = 0, 1, 2, ...
    row, col = round(centre_row), round(centre_col)
    side = 2 * input_size + 1
    for radius in range(input_size + 1):
        window = gradient[max(0, row - radius) : row + radius + 1, max(0, col - radius) : col + radius + 1]
        if float(window.sum()) >= mass - 1e-9:
            side = 2 * radius + 1
            break
    return EffectiveField(gradient=gradient.float(), side=side, mass=mass, theoretical=theoretical)
