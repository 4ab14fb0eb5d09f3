"""What a network costs: parameters, and multiply-adds / FLOPs per forward pass.

MACs versus FLOPs
-----------------
A convolution or linear layer is a long run of multiply-accumulate operations (MACs):
``acc += w * x``. Each MAC is two floating-point operations, a multiply and an add, so

    FLOPs = 2 x MACs.

Papers and libraries mix the two names. He et al. 2016 (Table 1) give ResNet-101 "7.6 x 10^9
FLOPs": that figure counts multiply-adds, of the paper's "v1" layout (stride on the bottleneck's
first 1x1): 7.57 GMACs at 224 x 224. torchvision's layout ("v1.5", stride on the 3x3) costs
7.80 GMACs, which torchvision's model table lists as "GFLOPS 7.8", while
``torch.utils.flop_counter`` (used here) reports the true floating-point count, 15.6 GFLOPs.
Everything here returns both numbers, so a comparison never silently mixes them.

Only convolutions and matrix products are counted (as in the paper): normalization, ReLU,
pooling and the residual additions are a few operations per activation, not per weight, and
amount to well under 1% of a ResNet's MACs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode

from tutorial_lib._validate import check_bool, check_int

__all__ = ["count_flops", "count_parameters"]


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (each shared tensor counted once).

    Buffers such as BatchNorm's running statistics are not parameters and are not counted, as in
    torchvision's ``num_params`` metadata.

    Args:
        model: The network.
        trainable_only: Count only parameters with ``requires_grad=True``.

    Returns:
        The count.

    Raises:
        TypeError: If ``model`` is not an ``nn.Module`` or ``trainable_only`` not a bool.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    check_bool("trainable_only", trainable_only)
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _in_channels(model: nn.Module) -> int:
    channels = getattr(model, "in_channels", None)
    if isinstance(channels, int) and not isinstance(channels, bool):
        return channels
    first_conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first_conv is None:
        raise ValueError("cannot tell the model's input channels; pass an example input tensor")
    return first_conv.in_channels


def _example_input(model: nn.Module, inputs: Tensor | int | tuple[int, ...]) -> Tensor:
    """Turn an image size / shape into a probe tensor (values never matter for the count)."""
    if isinstance(inputs, Tensor):
        return inputs
    if isinstance(inputs, bool) or not isinstance(inputs, (int, tuple, list)):
        raise TypeError(
            "inputs must be a tensor, an image size (224), (H, W), (C, H, W) or (N, C, H, W); "
            f"got {type(inputs).__name__}"
        )
    dims = (inputs, inputs) if isinstance(inputs, int) else tuple(inputs)
    # A non-integer entry is a TypeError; a wrong count or a size below 1 a ValueError.
    dims = tuple(check_int("inputs" if isinstance(inputs, int) else f"inputs[{i}]", d) for i, d in enumerate(dims))
    if not 2 <= len(dims) <= 4 or any(d < 1 for d in dims):
        raise ValueError(
            f"inputs must be an image size, (H, W), (C, H, W) or (N, C, H, W) of positive ints; got {inputs!r}"
        )
    if len(dims) == 2:
        dims = (1, _in_channels(model), *dims)
    elif len(dims) == 3:
        dims = (1, *dims)
    return torch.empty(dims)


def count_flops(
    model: nn.Module,
    inputs: Tensor | int | tuple[int, ...] = 224,
    *,
    per_module: bool = False,
    meta: bool = True,
) -> dict[str, Any]:
    """Multiply-adds and FLOPs of one forward pass, counted by ``torch.utils.flop_counter``.

    By default the pass runs on PyTorch's ``meta`` device: shapes propagate but no arithmetic is
    done, so even ResNet-152 at 1024 px is counted in well under a second, and the model (its
    parameters, BatchNorm statistics, ``.grad``) is left untouched. Use ``meta=False`` for a model
    whose forward reads tensor values (``.item()``, data-dependent shapes); it then runs for real
    under ``torch.no_grad``. Either way the pass runs in eval mode and the model's mode is restored.

    Args:
        model: The network.
        inputs: An example input tensor, or its size: ``224`` or ``(H, W)`` (batch 1 with the
            model's input channels), ``(C, H, W)`` or ``(N, C, H, W)``.
        per_module: Also return the MACs of every submodule (qualified names; the root is ``""``).
        meta: Count on the meta device (see above).

    Returns:
        ``{"macs": int, "flops": int}`` with ``flops == 2 * macs``, plus ``"by_module"``:
        ``{name: macs}`` in module order when ``per_module`` is true.

    Raises:
        TypeError, ValueError: On an invalid model or input description.
        RuntimeError: If the forward pass fails on the meta device (retry with ``meta=False``).

    Example:
        >>> count_flops(tutorial_lib.models.resnet101(), 224)["macs"]
        7801405440
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    check_bool("per_module", per_module)
    check_bool("meta", meta)
    x = _example_input(model, inputs)
    counter = FlopCounterMode(display=False)
    # Eval mode (restored afterwards): BatchNorm then accepts a batch of one 1x1 map, and nothing
    # counted here depends on the mode.
    was_training = model.training
    model.eval()
    try:
        if meta:
            # Swap every parameter and buffer for a storage-free meta tensor for the duration of
            # the call; the real tensors are never read or written.
            tensors = {name: torch.empty_like(t, device="meta") for name, t in model.named_buffers()}
            tensors.update({name: torch.empty_like(p, device="meta") for name, p in model.named_parameters()})
            x_meta = torch.empty_like(x, device="meta")
            try:
                with torch.no_grad(), counter:
                    functional_call(model, tensors, (x_meta,), strict=False)
            except (NotImplementedError, RuntimeError) as error:
                raise RuntimeError(
                    f"counting on the meta device failed ({error}); call count_flops(..., meta=False)"
                ) from error
        else:
            with torch.no_grad(), counter:
                model(x)
    finally:
        model.train(was_training)

    flops = int(counter.get_total_flops())
    # Every counted op (convolution, matmul, addmm, bmm) is multiply-accumulates x 2.
    result: dict[str, Any] = {"macs": flops // 2, "flops": flops}
    if per_module:
        counts = counter.get_flop_counts()
        root = type(model).__name__
        by_module: dict[str, int] = {}
        for name, _ in model.named_modules():
            key = f"{root}.{name}" if name else root
            if key in counts:
                by_module[name] = int(sum(counts[key].values())) // 2
        result["by_module"] = by_module
    return result
