"""Speed and memory options of ``fit``: compilation, activation checkpointing, activation memory.

These change how a step is computed, not what it computes, so they are arguments of
``tutorial_lib.train.fit`` (and flags of the command line), not ``FitConfig`` settings: a run may be
resumed with them switched on or off. Each is PyTorch's own building block; what this module adds is
the part a ResNet needs around it, and a way to measure it (notebook 10,
``benchmarks/bench_scaling.py``).

* ``compile_network``: ``torch.compile`` (TorchDynamo captures the Python forward as a graph,
  TorchInductor generates fused kernels), with the choice multi-resolution training raises: one graph
  per input shape (``"static"``), or one graph with symbolic height and width (``"dynamic"``).
* ``checkpoint_stages``: activation checkpointing (Chen et al. 2016, "Training Deep Nets with
  Sublinear Memory Cost") of the residual stages with ``torch.utils.checkpoint``: a stage keeps only
  its input during the forward pass and recomputes its inside during backward, trading about one
  more forward pass for the memory of the stage's activations. Recomputing a BatchNorm layer in
  training mode would update its running statistics a second time; the recomputation here restores
  them, so a checkpointed run ends with the same weights *and* statistics as a plain one.
* ``saved_activation_bytes``: how many bytes autograd keeps for backward in one forward pass, the
  memory checkpointing saves, counted exactly on any device.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from tutorial_lib._validate import check_choice

__all__ = ["COMPILE_MODES", "checkpoint_stages", "compile_network", "residual_stages", "saved_activation_bytes"]

#: ``fit(compile=...)``: ``"off"``; ``"static"``: one graph per input shape (a multi-resolution run
#: compiles once per training size); ``"dynamic"``: one graph whose height and width are symbols.
COMPILE_MODES = ("off", "static", "dynamic")

# torchvision's names for a ResNet's four residual stages (state_dict keys layer1.* to layer4.*),
# also inside a wrapper (the multi-scale ResNet-101 keeps its trunk under ``net.``).
_STAGE_NAME = re.compile(r"(?:^|\.)layer\d+$")


def compile_network(net: nn.Module, mode: str) -> nn.Module:
    """``net`` compiled with ``torch.compile`` for ``mode`` (``COMPILE_MODES``), or ``net`` for ``"off"``.

    The compiled module shares ``net``'s parameters and buffers (training it trains ``net``); its
    state_dict keys gain an ``_orig_mod.`` prefix, so save ``net``, not the compiled module.

    ``"static"`` passes ``dynamic=False``: every input shape gets a graph specialised to it (fastest
    per step, one compilation per training size). ``"dynamic"`` passes ``dynamic=True``: one graph for
    every height and width (one compilation, kernels that cannot specialise on the size). The first
    step at each new shape pays the compilation; benchmarks/bench_scaling.py measures both.

    Args:
        net: the module to compile (under DDP, the ``DistributedDataParallel`` wrapper, so that
            Dynamo splits the graph at DDP's gradient buckets).
        mode: ``"off"``, ``"static"`` or ``"dynamic"``.

    Raises:
        ValueError: for an unknown mode.
    """
    check_choice("compile", mode, COMPILE_MODES)
    if not isinstance(net, nn.Module):
        raise TypeError(f"net must be a torch.nn.Module, got {type(net).__name__}")
    if mode == "off":
        return net
    if mode == "static":
        # Several training sizes need several graphs; allow enough of them before Dynamo gives up
        # and falls back to eager (8 by default).
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 16)
    return torch.compile(net, dynamic=mode == "dynamic")


def residual_stages(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The residual stages of ``model``: its submodules named like torchvision's ``layer1`` to ``layer4``.

    Raises:
        TypeError: if ``model`` is not a module.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return [(name, module) for name, module in model.named_modules() if _STAGE_NAME.search(name)]


@contextlib.contextmanager
def _buffers_restored(module: nn.Module) -> Iterator[None]:
    """Undo whatever the block inside does to ``module``'s buffers (BatchNorm's running statistics).

    The recomputation of a checkpointed stage runs its BatchNorm layers in training mode once more;
    without this their running mean, variance and batch count would take two updates per step.
    """
    saved = [(buffer, buffer.clone()) for buffer in module.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)


def checkpoint_stages(model: nn.Module) -> Callable[[], None]:
    """Checkpoint every residual stage of ``model`` during training, in place; return the undo.

    Each stage's ``forward`` is replaced (on the instance: the state_dict keeps its keys) by one that
    runs it under ``torch.utils.checkpoint.checkpoint(use_reentrant=False)`` when gradients are being
    recorded: the stage's input is saved, its activations are not, and backward recomputes them.
    Random operations repeat exactly (checkpoint restores the RNG state), and BatchNorm statistics
    are restored after the recomputation, so training computes the same as without checkpointing.
    In ``eval()`` or under ``torch.no_grad()`` the stages run as before.

    Args:
        model: a ResNet of this series (or any model with stages named ``layer1``, ``layer2``, ...).

    Returns:
        A function that puts the original ``forward`` back.

    Raises:
        ValueError: if the model has no residual stage to checkpoint.
    """
    stages = residual_stages(model)
    if not stages:
        raise ValueError(f"{type(model).__name__} has no residual stages named layer1, layer2, ... to checkpoint; "
                         "activation checkpointing here is for the series' ResNets (tutorial_lib.models)")
    from torch.utils.checkpoint import checkpoint

    patched = []
    for _, stage in stages:
        plain = stage.forward

        def forward(x: Tensor, _stage: nn.Module = stage, _plain: Callable[..., Tensor] = plain) -> Tensor:
            if not (_stage.training and torch.is_grad_enabled()):
                return _plain(x)
            return checkpoint(_plain, x, use_reentrant=False,
                              context_fn=lambda: (contextlib.nullcontext(), _buffers_restored(_stage)))

        stage.forward = forward
        patched.append(stage)

    def undo() -> None:
        for stage in patched:
            if "forward" in vars(stage):
                del stage.forward

    return undo


def saved_activation_bytes(model: nn.Module, images: Tensor, *, loss: bool = True) -> int:
    """Bytes autograd keeps for backward during one forward pass of ``model`` on ``images``.

    Every tensor autograd saves passes through ``torch.autograd.graph.saved_tensors_hooks``; this
    counts each distinct storage once (a tensor saved by two operations, or a view of a saved one,
    costs its memory once). Parameters are not counted: they are in memory anyway. That is the part
    of a training step's memory that grows with the batch and the image size, and the part
    activation checkpointing shrinks; the same count on a GPU is what ``torch.cuda.max_memory_allocated``
    shows beyond the weights, gradients and optimizer state (give or take the allocator's rounding).

    Args:
        model: the network, in the mode to measure (``train()`` for a training step).
        images: one batch.
        loss: also run a cross-entropy against class 0 and count what it saves.

    Raises:
        TypeError: for a model that is not a module or images that are not a tensor.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a tensor batch (N, C, H, W), got {type(images).__name__}")
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(tensor: Tensor) -> Any:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters and storage.device.type != "meta":
            seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = model(images)
        if loss:
            torch.nn.functional.cross_entropy(out, torch.zeros(len(out), dtype=torch.long, device=out.device))
    return sum(seen.values())
