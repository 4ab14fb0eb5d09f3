"""Residual blocks: ``BasicBlock`` (ResNet-18/34), ``Bottleneck`` (ResNet-50/101/152) and
``Res2NetBottleneck`` (Res2Net-50/101).

Both compute ``relu(F(x) + shortcut(x))`` (He et al. 2016, eq. 1-2). Attribute names equal
torchvision's (``conv1``, ``bn1``, ``conv2``, ``bn2``, ``conv3``, ``bn3``, ``relu``,
``downsample``), so the state_dict keys and shapes match torchvision's and timm's and their weights
load strictly.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from tutorial_lib._validate import check_choice, check_int
from tutorial_lib.layers import conv1x1, conv3x3
from tutorial_lib.norm import get_norm_layer, residual_norm

__all__ = ["STRIDE_IN_NAMES", "BasicBlock", "Bottleneck", "Res2NetBottleneck", "projection"]

STRIDE_IN_NAMES = ("v1", "v1.5")
"""Where a Bottleneck puts its stride: ``"v1"`` on the first 1x1 (He et al. 2016),
``"v1.5"`` on the 3x3 (torchvision, NVIDIA's "ResNet-50 v1.5")."""


def _check_block_args(
    inplanes: int, planes: int, stride: int, downsample: nn.Module | None, out_planes: int
) -> None:
    """Validate the arguments every block shares; say how to fix a missing projection."""
    check_int("inplanes", inplanes, minimum=1)
    check_int("planes", planes, minimum=1)
    check_int("stride", stride, minimum=1)
    if downsample is not None and not isinstance(downsample, nn.Module):
        raise TypeError(f"downsample must be an nn.Module or None, got {type(downsample).__name__}")
    if downsample is None and (stride != 1 or inplanes != out_planes):
        # Without a projection, x and F(x) would differ in shape and `out += identity` would fail
        # at the first forward with a broadcasting error; say it here instead.
        raise ValueError(
            f"the block maps {inplanes} channels to {out_planes} with stride {stride}, so the "
            "identity shortcut does not fit; pass downsample=projection("
            f"{inplanes}, {out_planes}, stride={stride})"
        )


def projection(
    inplanes: int,
    out_planes: int,
    stride: int = 1,
    norm_layer: str | Callable[[int], nn.Module] | None = None,
) -> nn.Sequential:
    """The projection shortcut: a strided 1x1 convolution followed by normalization.

    He et al. 2016 (section 3.3, option B) use it only where a block changes the channel count or
    the resolution; everywhere else the shortcut is the identity. Its keys (``downsample.0``,
    ``downsample.1``) equal torchvision's.

    Args:
        inplanes: Input channels.
        out_planes: Output channels (the block's output).
        stride: Spatial stride of the block.
        norm_layer: Normalization factory or name (default ``nn.BatchNorm2d``).

    Returns:
        ``nn.Sequential(conv1x1, norm)``.

    Raises:
        TypeError, ValueError: On invalid channels, stride or norm.
    """
    norm = get_norm_layer("batch" if norm_layer is None else norm_layer)
    return nn.Sequential(conv1x1(inplanes, out_planes, stride), norm(out_planes))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a shortcut (He et al. 2016, Fig. 5 left; ResNet-18/34).

    The stride sits on ``conv1``; there is no v1/v1.5 distinction for this block.

    Args:
        inplanes: Input channels.
        planes: Output channels (``expansion`` is 1).
        stride: Stride of ``conv1`` (2 halves the resolution).
        downsample: Shortcut module, needed when ``stride != 1`` or ``inplanes != planes``
            (see :func:`projection`); ``None`` for the identity.
        norm_layer: Normalization factory or name (default ``nn.BatchNorm2d``).

    Raises:
        TypeError, ValueError: On invalid arguments, including a missing projection.
    """

    expansion: int = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        *,
        norm_layer: str | Callable[[int], nn.Module] | None = None,
    ) -> None:
        super().__init__()
        _check_block_args(inplanes, planes, stride, downsample, planes * self.expansion)
        norm = get_norm_layer("batch" if norm_layer is None else norm_layer)
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = residual_norm(norm, planes)  # a SkipInit gain when norm="none"
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x

        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)

        out = self.conv2(out)
        out = self.bn2(out)

        if self.downsample is not None:
            identity = self.downsample(x)

        # He et al. 2016, eq. 1: y = F(x) + x, then the non-linearity.
        out += identity
        out = self.relu(out)

        return out


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand, with a shortcut (He et al. 2016, Fig. 5 right; ResNet-50+).

    The 1x1 convolutions shrink the channels by ``expansion`` (4) around the 3x3 so that a deeper
    network costs about as much as a shallower one built from basic blocks (section 4.1, "Deeper
    Bottleneck Architectures").

    Where the stride sits changes the cost and the accuracy but not the parameters:

    * ``"v1"``: on ``conv1`` (the paper's layout, and Caffe's released models). The 1x1 then
      discards three quarters of the pixels before looking at them.
    * ``"v1.5"``: on ``conv2`` (torchvision's layout): the 3x3 sees the full-resolution map,
      which costs more (7.80 vs 7.57 GMACs for ResNet-101 at 224 px) and is more accurate.

    Args:
        inplanes: Input channels.
        planes: Channels inside the bottleneck; the output has ``planes * expansion``.
        stride: Spatial stride of the block.
        downsample: Shortcut module, needed when ``stride != 1`` or
            ``inplanes != planes * expansion`` (see :func:`projection`); ``None`` for the identity.
        norm_layer: Normalization factory or name (default ``nn.BatchNorm2d``).
        stride_in: ``"v1.5"`` (default) or ``"v1"``; see above.

    Raises:
        TypeError, ValueError: On invalid arguments, including a missing projection or an unknown
            ``stride_in``.
    """

    expansion: int = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        *,
        norm_layer: str | Callable[[int], nn.Module] | None = None,
        stride_in: str = "v1.5",
    ) -> None:
        super().__init__()
        _check_block_args(inplanes, planes, stride, downsample, planes * self.expansion)
        check_choice("stride_in", stride_in, STRIDE_IN_NAMES)
        norm = get_norm_layer("batch" if norm_layer is None else norm_layer)
        stride_1x1, stride_3x3 = (stride, 1) if stride_in == "v1" else (1, stride)
        self.conv1 = conv1x1(inplanes, planes, stride_1x1)
        self.bn1 = norm(planes)
        self.conv2 = conv3x3(planes, planes, stride_3x3)
        self.bn2 = norm(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = residual_norm(norm, planes * self.expansion)  # a SkipInit gain when norm="none"
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride
        self.stride_in = stride_in

    def forward(self, x: Tensor) -> Tensor:
        identity = x

        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)

        out = self.conv2(out)
        out = self.bn2(out)
        out = self.relu(out)

        out = self.conv3(out)
        out = self.bn3(out)

        if self.downsample is not None:
            identity = self.downsample(x)

        # He et al. 2016, eq. 2: y = F(x) + W_s x when the shapes differ.
        out += identity
        out = self.relu(out)

        return out


class Res2NetBottleneck(nn.Module):
    """Res2Net's bottleneck: multi-scale features *inside* one block (Gao et al., TPAMI 2021, Fig. 2).

    The 3x3 convolution of a :class:`Bottleneck` is replaced by a hierarchy. The 1x1 output is split
    into ``scale`` groups of ``width`` channels, x_1 ... x_s. Group i > 1 goes through its own 3x3
    convolution K_i after adding the previous group's output (section 3.1, eq. 1):

        y_1 = x_1,   y_2 = K_2(x_2),   y_i = K_i(x_i + y_{i-1})  for 2 < i <= s

    so y_i has passed through i - 1 stacked 3x3 convolutions and sees a receptive field that grows
    with i: one block mixes several scales, at about the cost of one 3x3 on all channels. This
    follows timm's ``Bottle2neck`` (and the authors' code) exactly, so its state_dict keys
    (``conv1``, ``bn1``, ``convs.i``, ``bns.i``, ``conv3``, ``bn3``, ``downsample``) load timm's
    weights strictly: the convolved groups come first in the output and the pass-through group
    last, and in the first block of a stage (stride 2 or a projection) the groups are not chained
    and the pass-through group is average-pooled to the new resolution ("stage" blocks).

    Args:
        inplanes: Input channels.
        planes: Bottleneck planes; the output has ``planes * 4`` channels, as in ResNet.
        stride: Spatial stride of the block (on every 3x3, like ResNet v1.5).
        downsample: Shortcut projection, or ``None`` for the identity.
        norm_layer: Normalization factory or name (default BatchNorm).
        base_width: Channels per group at ``planes=64`` (26 in "26w"): width = floor(planes * base_width / 64).
        scale: Number of groups s (4 in "4s").

    Raises:
        TypeError, ValueError: On invalid arguments, including a missing projection.
    """

    expansion: int = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        *,
        norm_layer: str | Callable[[int], nn.Module] | None = None,
        base_width: int = 26,
        scale: int = 4,
    ) -> None:
        super().__init__()
        _check_block_args(inplanes, planes, stride, downsample, planes * self.expansion)
        base_width = check_int("base_width", base_width, minimum=1)
        scale = check_int("scale", scale, minimum=2)  # one group would be a plain bottleneck
        width = (planes * base_width) // 64
        if width < 1:
            raise ValueError(f"planes={planes} with base_width={base_width} gives {width} channels per group; raise base_width")
        norm = get_norm_layer("batch" if norm_layer is None else norm_layer)
        self.width = width
        self.scale = scale
        self.is_first = stride > 1 or downsample is not None
        self.conv1 = conv1x1(inplanes, width * scale)
        self.bn1 = norm(width * scale)
        self.convs = nn.ModuleList([conv3x3(width, width, stride) for _ in range(scale - 1)])
        self.bns = nn.ModuleList([norm(width) for _ in range(scale - 1)])
        # The pass-through group must reach the block's output resolution too.
        self.pool = nn.AvgPool2d(kernel_size=3, stride=stride, padding=1) if self.is_first else None
        self.conv3 = conv1x1(width * scale, planes * self.expansion)
        self.bn3 = residual_norm(norm, planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x

        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)

        groups = torch.split(out, self.width, dim=1)
        outputs = []
        y = groups[0]
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            # eq. 1: each group after the first adds the previous group's output (not in stage blocks)
            y = groups[i] if i == 0 or self.is_first else y + groups[i]
            y = conv(y)
            y = bn(y)
            y = self.relu(y)
            outputs.append(y)
        last = groups[-1] if self.pool is None else self.pool(groups[-1])
        outputs.append(last)
        out = torch.cat(outputs, dim=1)

        out = self.conv3(out)
        out = self.bn3(out)

        if self.downsample is not None:
            identity = self.downsample(x)

        out += identity
        out = self.relu(out)

        return out
