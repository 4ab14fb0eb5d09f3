"""ResNet (He et al. 2016) with torchvision's state_dict layout, plus options for small inputs.

With default options every builder here produces exactly torchvision's network: the same module
names, parameter shapes and computation, so torchvision's and timm's ``resnet*`` weights load with
``strict=True`` and give identical outputs (the tests check this for every depth).

The options scale the same architecture down for a CPU:

* ``width``: channels of the stem and of the first stage (64 in the paper); stage ``i`` has
  ``width * 2**i`` bottleneck channels.
* ``stem``: ``"imagenet"`` (7x7/2 convolution + 3x3/2 max-pool, a 4x downsampling for 224 px
  images) or ``"small"`` (one 3x3/1 convolution and no pooling, for 32-64 px images, as in the
  paper's CIFAR-10 networks, section 4.2).
* ``norm``: the normalization, by name or factory (see :mod:`tutorial_lib.norm`).
* ``stride_in``: ``"v1.5"`` (torchvision) or ``"v1"`` (the paper), see
  :class:`tutorial_lib.blocks.Bottleneck`.
* ``pool``: the global pooling before the classifier, ``"avg"`` (the paper's), ``"max"`` or
  ``"gem"`` (:class:`GeM`, generalised-mean pooling with a learnable exponent).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tutorial_lib._validate import check_bool, check_choice, check_int, check_number
from tutorial_lib.blocks import STRIDE_IN_NAMES, BasicBlock, Bottleneck, Res2NetBottleneck, projection
from tutorial_lib.layers import _height_width
from tutorial_lib.norm import get_norm_layer

__all__ = [
    "ARCH_NAMES",
    "OPTION_NAMES",
    "POOL_NAMES",
    "STEM_NAMES",
    "GeM",
    "ResNet",
    "create_model",
    "global_pool",
    "infer_options",
    "load_weights",
    "res2net50_26w_4s",
    "res2net101_26w_4s",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "stage_shapes",
]

Block = type[BasicBlock] | type[Bottleneck] | type[Res2NetBottleneck]

STEM_NAMES = ("imagenet", "small")
"""Valid values of the ``stem`` option."""

# Block type and blocks per stage (He et al. 2016, Table 1).
_ARCHS: dict[str, tuple[Block, tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
    "resnet101": (Bottleneck, (3, 4, 23, 3)),
    "resnet152": (Bottleneck, (3, 8, 36, 3)),
    # Gao et al., TPAMI 2021, Table 2 (ImageNet): ResNet's stage depths with Res2Net blocks.
    "res2net50_26w_4s": (Res2NetBottleneck, (3, 4, 6, 3)),
    "res2net101_26w_4s": (Res2NetBottleneck, (3, 4, 23, 3)),
}

# Per-block options of the architectures that need them: "26w_4s" = 26 channels per group at the
# first stage's width, 4 groups (Gao et al., TPAMI 2021, section 4.1).
_BLOCK_ARGS: dict[str, dict[str, int]] = {
    "res2net50_26w_4s": {"base_width": 26, "scale": 4},
    "res2net101_26w_4s": {"base_width": 26, "scale": 4},
}

ARCH_NAMES: tuple[str, ...] = tuple(_ARCHS)
"""Architectures :func:`create_model` knows."""

OPTION_NAMES = ("width", "stem", "norm", "zero_init_residual", "stride_in", "in_channels", "pool")
"""Keyword options every builder accepts besides ``num_classes``."""

POOL_NAMES = ("avg", "max", "gem")
"""Valid values of the ``pool`` option: global average, global max, or generalised-mean pooling."""


class GeM(nn.Module):
    """Generalised-mean (GeM) pooling over all spatial positions, with a learnable exponent.

    For each channel of a feature map ``x`` with ``n = H * W`` positions (Radenović, Tolias & Chum,
    "Fine-tuning CNN image retrieval with no human annotation", TPAMI 2019, the generalized-mean
    pooling equation)::

        f = ( (1/n) * sum_i x_i ** p ) ** (1/p)

    ``p = 1`` is average pooling and ``p -> infinity`` tends to max pooling: for ``x >= 0``,
    ``max(x) * n ** (-1/p) <= f <= max(x)``. Between the two, a larger ``p`` lets the strongest
    responses dominate, which suits a small object on a large background. ``p`` is learned by
    back-propagation like any weight, and starts at 3 as in the paper.

    The input is clamped at ``eps`` before the power: a fractional power of 0 has an infinite
    derivative, and a negative base has no real power. After a ReLU the features are >= 0, so the
    clamp only moves exact zeros to ``eps``.

    ``p`` is a parameter of shape ``(1,)``, so a ResNet built with ``pool="gem"`` has one more
    state_dict key than torchvision's (``avgpool.p``) and one more parameter. Being 1-D, it falls
    in the no-weight-decay group of :func:`tutorial_lib.train.param_groups`, like biases.

    Args:
        p: Initial exponent, > 0 (3 in the paper).
        eps: Lower clamp of the input, > 0.

    Raises:
        TypeError: If ``p`` or ``eps`` is not a number.
        ValueError: If either is not > 0.
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        p = check_number("p", p, minimum=0.0, min_inclusive=False)
        self.eps = check_number("eps", eps, minimum=0.0, min_inclusive=False)
        self.p = nn.Parameter(torch.full((1,), p))

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, H, W)`` to ``(N, C, 1, 1)``, like ``nn.AdaptiveAvgPool2d((1, 1))``."""
        x = x.clamp(min=self.eps).pow(self.p)
        x = F.adaptive_avg_pool2d(x, (1, 1))
        return x.pow(1.0 / self.p)

    def extra_repr(self) -> str:
        # A model built on the meta device (for shapes and counts) has no value of p to show.
        p = "?" if self.p.is_meta else f"{self.p.item():.4g}"
        return f"p={p}, eps={self.eps:g}"


def global_pool(name: str) -> nn.Module:
    """The global pooling module called ``name``: one of :data:`POOL_NAMES`.

    ``"avg"`` is ``nn.AdaptiveAvgPool2d((1, 1))`` (He et al. 2016, section 3.3; torchvision's),
    ``"max"`` is ``nn.AdaptiveMaxPool2d((1, 1))``, ``"gem"`` is :class:`GeM` with ``p = 3``. All
    map ``(N, C, H, W)`` to ``(N, C, 1, 1)``; only ``"gem"`` has a parameter.

    Raises:
        TypeError: If ``name`` is not a string.
        ValueError: If it is not one of :data:`POOL_NAMES`.
    """
    check_choice("pool", name, POOL_NAMES)
    if name == "avg":
        return nn.AdaptiveAvgPool2d((1, 1))
    if name == "max":
        return nn.AdaptiveMaxPool2d((1, 1))
    return GeM()


@torch.fx.wrap
def _check_input(x: Tensor, in_channels: int) -> None:
    """Raise a clear error for a batch the model cannot take.

    Shape checks only (no data access), so they cost nothing next to the convolutions. Wrapped for
    torch.fx, so that tracing (``torchvision.models.feature_extraction``) records it as one call
    instead of failing on its ``if``.
    """
    if x.dim() != 4 or x.shape[1] != in_channels:
        raise ValueError(
            f"expected a batch of shape (N, {in_channels}, H, W), got {tuple(x.shape)}; "
            f"this model was built with in_channels={in_channels} "
            + ("(add a batch dimension with x.unsqueeze(0))" if x.dim() == 3 else
               "(convert the images, or build the model with a matching in_channels)")
        )


class ResNet(nn.Module):
    """A residual network: stem, four stages of residual blocks, global pooling, classifier.

    Args:
        block: :class:`~tutorial_lib.blocks.BasicBlock` or :class:`~tutorial_lib.blocks.Bottleneck`.
        layers: Blocks per stage, four ints (``(3, 4, 23, 3)`` for ResNet-101).
        num_classes: Outputs of the final linear layer.
        width: Channels of the stem and the first stage (64 in the paper).
        stem: ``"imagenet"`` (7x7/2 conv, BN, ReLU, 3x3/2 max-pool) or ``"small"`` (3x3/1 conv,
            BN, ReLU, no pooling; for 32-64 px inputs). Both keep the key names ``conv1``/``bn1``.
        norm: Normalization name (see :data:`tutorial_lib.norm.NORM_NAMES`) or factory.
        zero_init_residual: Start every residual branch's last norm at weight 0, so each block
            begins as the identity (Goyal et al. 2017, section 5.1).
        stride_in: ``"v1.5"`` (stride on the bottleneck's 3x3, torchvision) or ``"v1"`` (on its
            first 1x1, the paper). Identical for BasicBlock networks.
        in_channels: Channels of the input images.
        block_args: Extra keyword arguments for every block (``base_width`` and ``scale`` for
            :class:`~tutorial_lib.blocks.Res2NetBottleneck`).
        pool: Global pooling before ``fc``, one of :data:`POOL_NAMES` (see :func:`global_pool`).
            The module is called ``avgpool`` whatever it computes, so the forward and the
            state_dict keys stay torchvision's: ``"avg"`` and ``"max"`` (no parameters) load
            torchvision's weights strictly; ``"gem"`` adds one key, ``avgpool.p``.

    Raises:
        TypeError: On arguments of the wrong type.
        ValueError: On out-of-range values or unknown names (the message lists the valid ones).
    """

    def __init__(
        self,
        block: Block,
        layers: tuple[int, int, int, int] | list[int],
        num_classes: int = 1000,
        *,
        width: int = 64,
        stem: str = "imagenet",
        norm: str | Callable[[int], nn.Module] = "batch",
        zero_init_residual: bool = False,
        stride_in: str = "v1.5",
        in_channels: int = 3,
        block_args: dict[str, Any] | None = None,
        pool: str = "avg",
    ) -> None:
        super().__init__()
        if block not in (BasicBlock, Bottleneck, Res2NetBottleneck):
            raise TypeError(f"block must be BasicBlock, Bottleneck or Res2NetBottleneck, got {block!r}")
        if block_args is not None and not isinstance(block_args, dict):
            raise TypeError(f"block_args must be a dict of block keyword arguments, got {type(block_args).__name__}")
        if not isinstance(layers, (list, tuple)):
            raise TypeError(f"layers must be a list or tuple of 4 block counts, e.g. (3, 4, 23, 3); got {type(layers).__name__}")
        if len(layers) != 4:
            raise ValueError(f"layers must list the blocks of the 4 stages, e.g. (3, 4, 23, 3); got {layers!r}")
        layers = tuple(check_int(f"layers[{i}]", count, minimum=1) for i, count in enumerate(layers))
        num_classes = check_int("num_classes", num_classes, minimum=1)
        width = check_int("width", width, minimum=1)
        in_channels = check_int("in_channels", in_channels, minimum=1)
        check_choice("stem", stem, STEM_NAMES)
        check_choice("stride_in", stride_in, STRIDE_IN_NAMES)
        check_bool("zero_init_residual", zero_init_residual)
        check_choice("pool", pool, POOL_NAMES)
        norm_layer = get_norm_layer(norm)

        # Plain attributes (not in the state_dict): what the model was built with.
        self.block = block
        self.stage_blocks = tuple(layers)
        self.num_classes = num_classes
        self.width = width
        self.stem = stem
        self.stride_in = stride_in
        self.in_channels = in_channels
        self.pool = pool
        self._norm_layer = norm_layer
        self._block_args = dict(block_args or {})
        self.inplanes = width

        if stem == "imagenet":
            # He et al. 2016, Table 1, "conv1" and the first row of "conv2_x": a 224 px image
            # becomes a 56 px map with `width` channels.
            self.conv1 = nn.Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3, bias=False)
        else:
            # Small images cannot afford a 4x downsampling before the first stage; the paper's
            # CIFAR networks (section 4.2) start with a single 3x3 convolution.
            self.conv1 = nn.Conv2d(in_channels, width, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = norm_layer(width)
        self.relu = nn.ReLU(inplace=True)
        if stem == "imagenet":
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            self.maxpool = nn.Identity()
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(block, width * 8, layers[3], stride=2)
        # Named avgpool even when it takes the max or the generalised mean: the name is the
        # state_dict key torchvision uses, and forward stays one line per layer.
        self.avgpool = global_pool(pool)
        self.fc = nn.Linear(width * 8 * block.expansion, num_classes)

        # Same initialization as torchvision: He et al. 2015 ("Delving deep into rectifiers",
        # section 2.2, eq. 14: std sqrt(2 / fan_out), the backward-pass condition; eq. 10 is the
        # fan-in one) for convolutions, so gradients keep their scale through ReLUs; normalization
        # layers start as the identity transform.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.weight is not None:
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

        if zero_init_residual:
            # Each residual branch starts at zero, so every block starts as the identity and the
            # untrained network is as shallow as its shortcuts (Goyal et al. 2017, section 5.1).
            for m in self.modules():
                last_norm = None
                if isinstance(m, (Bottleneck, Res2NetBottleneck)):
                    last_norm = m.bn3
                elif isinstance(m, BasicBlock):
                    last_norm = m.bn2
                if last_norm is not None:
                    if not isinstance(getattr(last_norm, "weight", None), nn.Parameter):
                        raise ValueError(
                            "zero_init_residual needs a norm layer with a learnable weight "
                            f"({type(last_norm).__name__} has none); use zero_init_residual=False"
                        )
                    nn.init.zeros_(last_norm.weight)

    def _make_layer(self, block: Block, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        """One stage: a first block that may change resolution/channels, then ``blocks - 1`` more."""
        downsample = None
        out_planes = planes * block.expansion
        if stride != 1 or self.inplanes != out_planes:
            downsample = projection(self.inplanes, out_planes, stride, self._norm_layer)
        extra: dict[str, Any] = {"stride_in": self.stride_in} if block is Bottleneck else {}
        extra.update(self._block_args)
        layers = [block(self.inplanes, planes, stride, downsample, norm_layer=self._norm_layer, **extra)]
        self.inplanes = out_planes
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, norm_layer=self._norm_layer, **extra))
        return nn.Sequential(*layers)

    def forward_features(self, x: Tensor) -> Tensor:
        """Stem and the four stages: the ``(N, width*8*expansion, H/32, W/32)`` feature map."""
        _check_input(x, self.in_channels)
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)
        x = self.maxpool(x)

        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(N, num_classes)``: the features, global pooling (``pool``), the classifier."""
        x = self.forward_features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        x = self.fc(x)

        return x


def _check_options(options: dict[str, Any]) -> None:
    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        raise TypeError(
            f"unknown option(s) {', '.join(unknown)}; valid options are num_classes, "
            f"{', '.join(OPTION_NAMES)}"
        )


def create_model(arch: str, *, num_classes: int = 1000, **options: Any) -> ResNet:
    """Build a ResNet by name.

    Args:
        arch: One of :data:`ARCH_NAMES` (``"resnet18"`` ... ``"resnet152"``).
        num_classes: Outputs of the classifier.
        **options: Any of :data:`OPTION_NAMES`; see :class:`ResNet`.

    Returns:
        The model, initialized like torchvision's.

    Raises:
        ValueError: If ``arch`` is unknown (the message lists the valid names) or an option is
            invalid.
        TypeError: If ``arch`` is not a string, an option name is unknown, or an option has the
            wrong type.
    """
    check_choice("arch", arch, ARCH_NAMES)
    _check_options(options)
    block, layers = _ARCHS[arch]
    return ResNet(block, layers, num_classes, block_args=_BLOCK_ARGS.get(arch), **options)


def resnet18(*, num_classes: int = 1000, **options: Any) -> ResNet:
    """ResNet-18: BasicBlock, [2, 2, 2, 2] (He et al. 2016, Table 1). See :class:`ResNet` for options."""
    return create_model("resnet18", num_classes=num_classes, **options)


def resnet34(*, num_classes: int = 1000, **options: Any) -> ResNet:
    """ResNet-34: BasicBlock, [3, 4, 6, 3] (He et al. 2016, Table 1). See :class:`ResNet` for options."""
    return create_model("resnet34", num_classes=num_classes, **options)


def resnet50(*, num_classes: int = 1000, **options: Any) -> ResNet:
    """ResNet-50: Bottleneck, [3, 4, 6, 3] (He et al. 2016, Table 1). See :class:`ResNet` for options."""
    return create_model("resnet50", num_classes=num_classes, **options)


def resnet101(*, num_classes: int = 1000, **options: Any) -> ResNet:
    """ResNet-101: Bottleneck, [3, 4, 23, 3] (He et al. 2016, Table 1).

    101 weighted layers = the stem convolution + 3 convolutions in each of the 3+4+23+3 = 33
    bottlenecks + the final fully connected layer (the projection shortcuts are not counted).
    See :class:`ResNet` for options.
    """
    return create_model("resnet101", num_classes=num_classes, **options)


def resnet152(*, num_classes: int = 1000, **options: Any) -> ResNet:
    """ResNet-152: Bottleneck, [3, 8, 36, 3] (He et al. 2016, Table 1). See :class:`ResNet` for options."""
    return create_model("resnet152", num_classes=num_classes, **options)


def res2net50_26w_4s(*, num_classes: int = 1000, **options: Any) -> ResNet:
    """Res2Net-50 26w x 4s: Res2NetBottleneck, [3, 4, 6, 3] (Gao et al., TPAMI 2021, Table 2).

    With default options its state_dict keys and shapes equal timm's ``res2net50_26w_4s``.
    See :class:`ResNet` for options.
    """
    return create_model("res2net50_26w_4s", num_classes=num_classes, **options)


def res2net101_26w_4s(*, num_classes: int = 1000, **options: Any) -> ResNet:
    """Res2Net-101 26w x 4s: Res2NetBottleneck, [3, 4, 23, 3] (Gao et al., TPAMI 2021, Table 2).

    45,206,688 parameters at 1000 classes; its state_dict keys and shapes equal timm's
    ``res2net101_26w_4s``, so timm's weights load with ``strict=True``. See :class:`ResNet` for options.
    """
    return create_model("res2net101_26w_4s", num_classes=num_classes, **options)


# --------------------------------------------------------------------------------------------------
# Shapes and checkpoints
# --------------------------------------------------------------------------------------------------


def stage_shapes(
    model: nn.Module, image_size: int | tuple[int, int], *, batch_size: int = 1
) -> OrderedDict[str, tuple[int, ...]]:
    """Output shape of each top-level child (``conv1`` ... ``layer4``, ``avgpool``, ``fc``).

    Runs one forward pass with every parameter, buffer and the input swapped for storage-free
    ``meta`` tensors: shapes propagate, no arithmetic is done (ResNet-152 at 1024 px takes
    milliseconds) and the model's tensors are never read or written (it runs in eval mode, which
    is restored). Works for torchvision's and timm's ResNets.

    Args:
        model: The network; its first ``nn.Conv2d`` gives the input channels.
        image_size: Input height and width (an int for square images).
        batch_size: Batch dimension of the probe input.

    Returns:
        Ordered mapping from child name to output shape (tuple of ints).

    Raises:
        TypeError, ValueError: On invalid arguments, or an input too small for the network.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    height, width = _height_width("image_size", image_size)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    first_conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first_conv is None:
        raise ValueError("model has no Conv2d layer, so the input channels are unknown")
    shapes: OrderedDict[str, tuple[int, ...]] = OrderedDict()
    handles = []
    for name, child in model.named_children():
        def hook(_module: nn.Module, _inputs: Any, output: Tensor, name: str = name) -> None:
            shapes[name] = tuple(output.shape)

        handles.append(child.register_forward_hook(hook))
    tensors = {name: torch.empty_like(t, device="meta") for name, t in model.named_buffers()}
    tensors.update({name: torch.empty_like(p, device="meta") for name, p in model.named_parameters()})
    x = torch.empty(batch_size, first_conv.in_channels, height, width, dtype=first_conv.weight.dtype, device="meta")
    # Eval mode, so BatchNorm accepts a 1x1 map at batch 1; the mode is restored afterwards.
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            torch.func.functional_call(model, tensors, (x,), strict=False)
    except RuntimeError as error:
        raise ValueError(
            f"a {height}x{width} input does not fit through the network ({error}); use a larger image_size"
        ) from error
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return shapes


def _extract_state_dict(checkpoint: Any, path: str) -> dict[str, Tensor]:
    """Unwrap the formats torchvision, timm and training scripts save."""
    if isinstance(checkpoint, dict):
        # timm's train.py saves {"state_dict": ..., "state_dict_ema": ...}; other scripts use "model".
        for key in ("state_dict", "model", "model_state_dict"):
            if key in checkpoint and isinstance(checkpoint[key], dict):
                checkpoint = checkpoint[key]
                break
    if not isinstance(checkpoint, dict) or not all(isinstance(v, Tensor) for v in checkpoint.values()):
        raise ValueError(
            f"{path} does not hold a state_dict (a dict of tensors), nor one under 'state_dict' "
            "or 'model'; save one with torch.save(model.state_dict(), path)"
        )
    # DistributedDataParallel and torch.compile prefix every key.
    for prefix in ("module.", "_orig_mod."):
        if checkpoint and all(k.startswith(prefix) for k in checkpoint):
            checkpoint = {k[len(prefix):]: v for k, v in checkpoint.items()}
    return dict(checkpoint)


def _res2net_block_args(state_dict: Mapping[str, Tensor]) -> dict[str, int] | None:
    """``scale`` (and ``base_width`` when the shapes pin it down) of Res2Net blocks; ``None`` if not Res2Net.

    A Res2NetBottleneck keeps ``scale - 1`` 3x3 convolutions in ``convs`` (keys ``layerN.M.convs.i``),
    each ``floor(planes * base_width / 64)`` channels wide, where ``planes`` is the block's output
    (``conv3``) divided by 4.
    """
    prefix = "layer1.0.convs."
    convs = {key[len(prefix):].split(".")[0] for key in state_dict if key.startswith(prefix)}
    convs = {int(i) for i in convs if i.isdigit()}
    if not convs:
        return None
    scale = max(convs) + 2
    stages = []  # (planes, channels per group) of each stage's first block
    for stage in range(1, 5):
        group = state_dict.get(f"layer{stage}.0.convs.0.weight")
        out = state_dict.get(f"layer{stage}.0.conv3.weight")
        if isinstance(group, Tensor) and isinstance(out, Tensor) and group.dim() == out.dim() == 4:
            stages.append((int(out.shape[0]) // Res2NetBottleneck.expansion, int(group.shape[0])))
    if not stages:
        return {"scale": scale}
    planes, group = stages[0]
    # The base widths with floor(planes * base_width / 64) == group; a named architecture's first.
    candidates = range(-(-group * 64 // planes), -(-(group + 1) * 64 // planes))
    named = {args["base_width"] for args in _BLOCK_ARGS.values()}
    for base_width in sorted(candidates, key=lambda b: (b not in named, b)):
        if all(p * base_width // 64 == g for p, g in stages):
            return {"base_width": base_width, "scale": scale}
    return {"scale": scale}


def infer_options(state_dict: Mapping[str, Tensor]) -> dict[str, Any]:
    """Guess the builder and options that produce a ResNet or Res2Net state_dict's keys and shapes.

    Reads ``conv1.weight`` (width, input channels, stem), ``fc.weight`` (classes), ``avgpool.p``
    (present only with ``pool="gem"``), and the ``layerN.M`` keys (blocks per stage; ``convs``
    means Res2NetBottleneck, whose number and width give ``scale`` and ``base_width``; otherwise a
    ``conv3`` means Bottleneck). The v1/v1.5 stride
    placement leaves no trace in the weights, so it cannot be inferred; nor can average versus max
    pooling (neither has a parameter), so ``pool`` is reported only when it is ``"gem"``.

    Args:
        state_dict: A ResNet or Res2Net state_dict.

    Returns:
        A dict that may hold ``arch`` (or ``layers``, ``block`` and, for Res2Net, ``block_args``
        when no named architecture matches), ``num_classes``, ``width``, ``in_channels``,
        ``stem`` and ``pool`` (only ``"gem"``); keys that cannot be read are absent.

    Raises:
        TypeError: If ``state_dict`` is not a mapping.
    """
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a mapping of names to tensors, got {type(state_dict).__name__}")
    found: dict[str, Any] = {}
    conv1 = state_dict.get("conv1.weight")
    if isinstance(conv1, Tensor) and conv1.dim() == 4:
        found["width"] = int(conv1.shape[0])
        found["in_channels"] = int(conv1.shape[1])
        kernel = int(conv1.shape[-1])
        if kernel == 7:
            found["stem"] = "imagenet"
        elif kernel == 3:
            found["stem"] = "small"
    fc = state_dict.get("fc.weight")
    if isinstance(fc, Tensor) and fc.dim() == 2:
        found["num_classes"] = int(fc.shape[0])
    if isinstance(state_dict.get("avgpool.p"), Tensor):
        found["pool"] = "gem"
    counts = []
    for stage in range(1, 5):
        indices = {
            int(key.split(".")[1])
            for key in state_dict
            if key.startswith(f"layer{stage}.") and key.split(".")[1].isdigit()
        }
        counts.append(max(indices) + 1 if indices else 0)
    if all(counts):
        block_args = _res2net_block_args(state_dict)
        if block_args is not None:
            block: Block = Res2NetBottleneck
        elif any(k.startswith("layer1.0.conv3.") for k in state_dict):
            block = Bottleneck
        else:
            block = BasicBlock
        match = [
            name
            for name, (b, layers) in _ARCHS.items()
            if b is block and tuple(counts) == layers and _BLOCK_ARGS.get(name, {}) == (block_args or {})
        ]
        if match:
            found["arch"] = match[0]
        else:
            found["block"] = block.__name__
            found["layers"] = tuple(counts)
            if block_args:
                found["block_args"] = block_args
    return found


def _suggestion(options: dict[str, Any]) -> str:
    """Render inferred options as a call learners can copy."""
    if "arch" in options:
        call, args = f"tutorial_lib.models.{options['arch']}", []
    elif "layers" in options:
        call, args = "tutorial_lib.models.ResNet", [options["block"], str(list(options["layers"]))]
    else:
        return "could not infer the architecture from the checkpoint's keys"
    defaults = {"num_classes": 1000, "width": 64, "in_channels": 3, "stem": "imagenet", "pool": "avg"}
    args += [
        f"{key}={options[key]!r}"
        for key in ("num_classes", "width", "stem", "in_channels", "pool")
        if key in options and options[key] != defaults[key]
    ]
    if options.get("block_args"):
        args.append(f"block_args={options['block_args']!r}")
    return f"{call}({', '.join(args)})"


def load_weights(model: nn.Module, path: str | os.PathLike[str], *, max_listed: int = 10) -> nn.Module:
    """Load a local torchvision or timm ResNet checkpoint into ``model``, strictly.

    Reads ``path`` with ``torch.load(..., weights_only=True)`` (no code from the file is run),
    or with ``safetensors`` for ``*.safetensors`` files (timm's Hugging Face format). Accepts a
    bare state_dict or one nested under ``"state_dict"``/``"model"``, with or without a
    ``"module."`` prefix. Every key and shape must match; otherwise nothing is loaded and the error
    lists the missing, unexpected and mis-shaped keys and the builder call that would fit.

    Args:
        model: The network to fill (e.g. ``tutorial_lib.models.resnet101()``).
        path: The checkpoint file.
        max_listed: How many keys to list per kind of mismatch.

    Returns:
        ``model``, for chaining.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If the file holds no state_dict or it does not match ``model``, or
            ``max_listed`` is below 1.
        TypeError: If ``model`` is not an ``nn.Module``, ``path`` not a path or ``max_listed`` not
            an int.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    max_listed = check_int("max_listed", max_listed, minimum=1)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"no checkpoint at {path!r}; save one with torch.save(model.state_dict(), path) or "
            "download the weights first (see notebook 04)"
        )
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        checkpoint: Any = load_file(path, device="cpu")
    else:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state_dict = _extract_state_dict(checkpoint, path)

    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state_dict and state_dict[k].shape != expected[k].shape
    ]
    if missing or unexpected or mismatched:

        def listing(title: str, items: list[str]) -> str:
            shown = items[:max_listed]
            more = f"\n    ... and {len(items) - len(shown)} more" if len(items) > len(shown) else ""
            return f"  {title} ({len(items)}):\n" + "\n".join(f"    {item}" for item in shown) + more

        parts = [f"checkpoint {path!r} does not match the model:"]
        if missing:
            parts.append(listing("missing keys (in the model, not in the checkpoint)", missing))
        if unexpected:
            parts.append(listing("unexpected keys (in the checkpoint, not in the model)", unexpected))
        if mismatched:
            parts.append(listing("shape mismatches", mismatched))
        inferred = infer_options(state_dict)
        parts.append(f"  the checkpoint looks like: {_suggestion(inferred)}")
        if missing and all(k.endswith(("running_mean", "running_var", "num_batches_tracked")) for k in missing):
            parts.append("  (only normalization statistics are missing: the checkpoint was saved "
                         "with a norm that keeps none; build the model with the same norm)")
        raise ValueError("\n".join(parts))
    model.load_state_dict(state_dict, strict=True)
    return model
