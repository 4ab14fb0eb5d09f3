"""Normalization between layers: BatchNorm from scratch, its alternatives, and BN recalibration.

Every block and model in ``tutorial_lib`` takes its normalization as a *factory*: a callable that
receives a channel count and returns a fresh module, exactly like torchvision's ``norm_layer``
argument (``nn.BatchNorm2d`` itself is such a callable). Users may also pass a short name;
:func:`get_norm_layer` resolves it through the registry below, so adding a normalization means
adding one entry to ``_NORM_LAYERS``.

The names (:data:`NORM_NAMES`) and what they build, for an ``(N, C, H, W)`` activation:

* ``"batch"``: ``torch.nn.BatchNorm2d``, each channel over (N, H, W) of the batch; 2C parameters,
  running statistics as buffers.
* ``"scratch-batch"``: :class:`BatchNorm2d`, the same maths written out here, same keys and results.
* ``"group"``: :func:`group_norm`, each sample over groups of channels and (H, W); 2C parameters,
  no buffers.
* ``"layer"``: :func:`layer_norm`, each sample over (C, H, W), i.e. one group; 2C parameters.
* ``"frozen"``: :class:`FrozenBatchNorm2d`, fixed statistics and affine, all buffers; 0 parameters.
* ``"none"``: :func:`no_norm` (the identity) everywhere, and every residual branch ends with a
  :class:`SkipInit` gain (one parameter per block) so that the deep network still trains.

Only the BatchNorm variants depend on the other images of the batch; that is why they need running
statistics for inference, and why they degrade at small batch sizes (Wu & He 2018, Fig. 1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from tutorial_lib._validate import check_bool, check_int, check_number
from tutorial_lib.data import batches, to_float_images

__all__ = [
    "BATCH_NORM_TYPES",
    "NORM_NAMES",
    "BatchNorm2d",
    "FrozenBatchNorm2d",
    "NormFactory",
    "SkipInit",
    "SyncBatchNorm",
    "batch_norm_layers",
    "get_norm_layer",
    "group_count",
    "group_norm",
    "layer_norm",
    "no_norm",
    "randomize_norm",
    "recalibrate_bn",
    "residual_norm",
    "synchronize_batch_norm",
]

NormFactory = Callable[[int], nn.Module]


# --------------------------------------------------------------------------------------------------
# BatchNorm, from scratch
# --------------------------------------------------------------------------------------------------


class BatchNorm2d(nn.Module):
    """Batch normalization of ``(N, C, H, W)`` activations, written out; a drop-in for ``nn.BatchNorm2d``.

    Ioffe & Szegedy 2015, Algorithm 1, for each channel ``c`` over the ``m = N*H*W`` values of a
    training batch:

    * mean (eq. 1): ``mu = sum(x) / m``
    * variance (eq. 2): ``var = sum((x - mu)**2) / m``, the *biased* estimate;
    * normalize (eq. 3): ``x_hat = (x - mu) / sqrt(var + eps)``;
    * scale and shift (eq. 4): ``y = weight * x_hat + bias`` (the paper's gamma and beta), so the
      layer can still represent the identity (section 3).

    At inference the batch statistics are replaced by population estimates (Algorithm 2, step 10),
    so an image's output no longer depends on its batch-mates. Like PyTorch, this module keeps them
    as running averages updated at every training step, ``running = (1 - momentum) * running +
    momentum * batch_stat``, and stores the *unbiased* variance ``var * m / (m - 1)`` (Algorithm 2
    uses the unbiased ``m / (m - 1)`` factor too). ``momentum=None`` gives the cumulative average
    ``running = running + (batch_stat - running) / t`` at step ``t``, i.e. the plain mean of all
    batches seen: what :func:`recalibrate_bn` uses.

    Parameters (``weight``, ``bias``), buffers (``running_mean``, ``running_var``,
    ``num_batches_tracked``), their initial values, the state_dict keys and the results equal
    ``torch.nn.BatchNorm2d``'s (``tests/test_norm.py`` checks outputs, gradients and statistics over
    several steps), so checkpoints load strictly in both directions.

    Args:
        num_features: Channels ``C`` of the input.
        eps: Added to the variance before the square root (eq. 3).
        momentum: Weight of the new batch in the running averages, or ``None`` for the cumulative
            average.
        affine: Learn ``weight`` and ``bias`` (eq. 4); ``False`` leaves ``x_hat``.
        track_running_stats: Keep running statistics and use them in eval mode; ``False`` uses batch
            statistics in both modes and keeps no buffers.
        device: Device of the parameters and buffers.
        dtype: Floating dtype of the parameters and buffers.

    Raises:
        TypeError, ValueError: On invalid arguments.
    """

    _version = 2  # the state_dict version of torch's BatchNorm (it added num_batches_tracked)

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        check_int("num_features", num_features, minimum=1)
        if momentum is not None:  # None: the cumulative average
            check_number("momentum", momentum, minimum=0.0, maximum=1.0)
        check_bool("affine", affine)
        check_bool("track_running_stats", track_running_stats)
        factory = {"device": device, "dtype": dtype}
        self.num_features = num_features
        self.eps = check_number("eps", eps, minimum=0.0)
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = nn.Parameter(torch.empty(num_features, **factory))
            self.bias = nn.Parameter(torch.empty(num_features, **factory))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            # Buffers, not parameters: saved in the state_dict and moved by .to(), never trained.
            self.register_buffer("running_mean", torch.zeros(num_features, **factory))
            self.register_buffer("running_var", torch.ones(num_features, **factory))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        """Forget the population estimates: mean 0, variance 1, no batches seen."""
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1.0)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        """Running statistics reset, ``weight`` 1 and ``bias`` 0: the layer starts as pure normalization."""
        self.reset_running_stats()
        if self.affine:
            nn.init.ones_(self.weight)
            nn.init.zeros_(self.bias)

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 4:
            raise ValueError(
                f"expected 4D input (N, C, H, W), got {x.dim()}D input of shape {tuple(x.shape)}"
                + ("; add a batch dimension with x.unsqueeze(0)" if x.dim() == 3 else "")
            )
        if x.shape[1] != self.num_features:
            raise ValueError(
                f"expected {self.num_features} channels, got input of shape {tuple(x.shape)}; "
                f"build the layer with BatchNorm2d({x.shape[1]})"
            )

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        # Batch statistics in training mode, and in eval mode too when there are no running ones.
        use_batch_stats = self.training or not self.track_running_stats
        if use_batch_stats:
            m = x.numel() // x.shape[1]  # values per channel: N * H * W
            if m == 1:
                # Eq. 2 would give a variance of 0 and x_hat = 0 whatever the input: nothing learns.
                raise ValueError(
                    f"BatchNorm needs more than 1 value per channel in training mode, got input of "
                    f"shape {tuple(x.shape)}; use a batch of 2 or more (drop_last=True drops a last "
                    "batch of 1), or call model.eval() to use the running statistics"
                )
            mean = x.mean(dim=(0, 2, 3))  # eq. 1
            var = ((x - mean.view(1, -1, 1, 1)) ** 2).mean(dim=(0, 2, 3))  # eq. 2, biased
            if self.training and self.track_running_stats:
                self._update_running_stats(mean, var, m)
        else:
            mean = self.running_mean
            var = self.running_var
        x_hat = (x - mean.view(1, -1, 1, 1)) / torch.sqrt(var.view(1, -1, 1, 1) + self.eps)  # eq. 3
        if not self.affine:
            return x_hat
        return self.weight.view(1, -1, 1, 1) * x_hat + self.bias.view(1, -1, 1, 1)  # eq. 4

    @torch.no_grad()
    def _update_running_stats(self, mean: Tensor, var: Tensor, m: int) -> None:
        # Outside autograd: the running statistics are an estimate *about* training, not part of
        # the function being differentiated (and in-place updates would break the graph).
        self.num_batches_tracked.add_(1)
        if self.momentum is None:
            factor = 1.0 / float(self.num_batches_tracked)  # cumulative moving average
        else:
            factor = self.momentum  # exponential moving average
        unbiased_var = var * (m / (m - 1))
        self.running_mean.mul_(1.0 - factor).add_(mean, alpha=factor)
        self.running_var.mul_(1.0 - factor).add_(unbiased_var, alpha=factor)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"track_running_stats={self.track_running_stats}"
        )


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm with fixed statistics and affine parameters, for fine-tuning with small batches.

    Computes eval-mode BatchNorm in every mode, ``y = (x - running_mean) / sqrt(running_var + eps) *
    weight + bias``, as one per-channel scale and shift. Everything is a buffer, so nothing here is
    trained and nothing changes in ``model.train()``: the usual choice when a pretrained backbone is
    fine-tuned with a few images per GPU, where batch statistics would be too noisy (detectron2 and
    torchvision's detection models do this; Wu & Johnson 2021, section 5).

    The state_dict keys equal ``nn.BatchNorm2d``'s (``weight``, ``bias``, ``running_mean``,
    ``running_var``, ``num_batches_tracked``; the last is kept only for that), so a torchvision or
    timm checkpoint loads strictly into a model built with ``norm="frozen"``. Unlike
    ``torchvision.ops.FrozenBatchNorm2d``, which drops ``num_batches_tracked``.

    Args:
        num_features: Channels ``C``.
        eps: Added to the variance before the square root.

    Raises:
        TypeError, ValueError: On invalid arguments.
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        check_int("num_features", num_features, minimum=1)
        self.num_features = num_features
        self.eps = check_number("eps", eps, minimum=0.0)
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    @classmethod
    def from_batch_norm(cls, bn: nn.Module) -> FrozenBatchNorm2d:
        """A frozen copy of a trained ``nn.BatchNorm2d`` or :class:`BatchNorm2d` (same eval output).

        Raises:
            TypeError: If ``bn`` is not a BatchNorm layer.
            ValueError: If it keeps no running statistics.
        """
        if not isinstance(bn, BATCH_NORM_TYPES):
            raise TypeError(f"bn must be a BatchNorm layer, got {type(bn).__name__}")
        if bn.running_mean is None:
            raise ValueError("bn keeps no running statistics (track_running_stats=False): there is nothing to freeze")
        frozen = cls(bn.num_features, eps=bn.eps).to(device=bn.running_mean.device, dtype=bn.running_mean.dtype)
        with torch.no_grad():
            frozen.running_mean.copy_(bn.running_mean)
            frozen.running_var.copy_(bn.running_var)
            frozen.num_batches_tracked.copy_(bn.num_batches_tracked)
            if bn.weight is not None:
                frozen.weight.copy_(bn.weight)
            if bn.bias is not None:
                frozen.bias.copy_(bn.bias)
        return frozen

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.num_features:
            raise ValueError(f"expected input of shape (N, {self.num_features}, H, W), got {tuple(x.shape)}")
        scale = self.weight * torch.rsqrt(self.running_var + self.eps)
        shift = self.bias - self.running_mean * scale
        return x * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


BATCH_NORM_TYPES: tuple[type[nn.Module], ...] = (nn.modules.batchnorm._BatchNorm, BatchNorm2d)
"""Layers that normalize with batch statistics in training mode (torch's, SyncBatchNorm, ours)."""


# --------------------------------------------------------------------------------------------------
# BatchNorm across processes (distributed training)
# --------------------------------------------------------------------------------------------------


class SyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics cover the images of every process: SyncBN on the CPU.

    Under ``DistributedDataParallel`` each process sees only its shard of the global batch, so a
    plain BatchNorm normalizes with the statistics of ``batch_size / world_size`` images: another,
    noisier computation than one process on the whole batch. Synchronized BatchNorm computes the
    mean and variance over the whole global batch (Peng et al. 2018, "MegDet", section 3.3,
    "Cross-GPU Batch Normalization"), so N processes compute what one process does.

    ``torch.nn.SyncBatchNorm`` does this on GPUs, but not on the CPU: its kernels
    (``torch.batch_norm_stats`` and the rest) exist for GPUs only, its forward raises
    ``ValueError`` for a CPU tensor, and ``DistributedDataParallel`` refuses it in a CPU model.
    This layer is the same computation for the CPU (gloo), so that distributed training, SyncBN
    included, can be run and tested on a laptop; :func:`synchronize_batch_norm` uses torch's layer on
    CUDA and this one elsewhere. As in torch's layer, each process computes its shard's mean and
    biased variance (``torch.var_mean``, two-pass), every process gathers all of them with their
    counts (PyTorch's differentiable ``all_gather_single_autograd``, whose backward sums every
    process's gradient, as torch's SyncBatchNorm backward does), and each combines them exactly
    (the pairwise update of Chan, Golub & LeVeque 1979): ``mean = sum(n_r m_r) / N`` and
    ``var = sum(n_r (v_r + (m_r - mean)^2)) / N``. Running statistics are updated as
    ``torch.nn.BatchNorm2d`` updates them (unbiased variance ``var * N / (N - 1)``).

    Outside training, without an initialized process group, or in a group of one, it computes
    exactly what ``torch.nn.BatchNorm2d`` computes (the state_dict keys are the same too).

    Args:
        num_features: Channels ``C`` of the input ``(N, C, *)``.
        eps: Added to the variance before the square root.
        momentum: Weight of the new batch in the running averages, or ``None`` for the cumulative average.
        affine: Learn ``weight`` and ``bias``.
        track_running_stats: Keep running statistics and use them in eval mode.
        process_group: The processes to synchronize over (default: all of them).
        device: Device of the parameters and buffers.
        dtype: Floating dtype of the parameters and buffers.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        process_group: Any = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device=device, dtype=dtype)
        self.process_group = process_group

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (N, C, *), got {input.dim()}D input")

    @classmethod
    def from_batch_norm(cls, layer: nn.modules.batchnorm._BatchNorm, process_group: Any = None) -> SyncBatchNorm:
        """A ``SyncBatchNorm`` that *shares* ``layer``'s parameters and buffers (no copy), as
        ``torch.nn.SyncBatchNorm.convert_sync_batchnorm`` does: the optimizer, a checkpoint and
        ``layer`` itself see every update."""
        if not isinstance(layer, nn.modules.batchnorm._BatchNorm):
            raise TypeError(f"layer must be a torch BatchNorm layer, got {type(layer).__name__}")
        sync = cls(layer.num_features, layer.eps, layer.momentum, layer.affine, layer.track_running_stats, process_group)
        if layer.affine:
            sync.weight, sync.bias = layer.weight, layer.bias
        sync.running_mean, sync.running_var = layer.running_mean, layer.running_var
        sync.num_batches_tracked = layer.num_batches_tracked
        sync.train(layer.training)
        return sync

    def _world_size(self) -> int:
        """Processes to gather from: more than 1 only in training, inside an initialized process group."""
        if not self.training or not torch.distributed.is_available() or not torch.distributed.is_initialized():
            return 1
        return torch.distributed.get_world_size(self.process_group)

    def forward(self, input: Tensor) -> Tensor:
        if self._world_size() == 1:
            return super().forward(input)  # torch's BatchNorm
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)  # cumulative moving average
        from torch.distributed import _functional_collectives as collectives

        c = self.num_features
        x = input.float()  # statistics in float32, also under bfloat16 autocast
        dims = [0, *range(2, x.dim())]
        var, mean = torch.var_mean(x, dim=dims, correction=0)
        count = torch.full((1,), x.numel() // c, dtype=x.dtype, device=x.device)
        group = self.process_group or torch.distributed.group.WORLD
        # all_gather_single_autograd is the newer name of all_gather_tensor_autograd (older PyTorch has only that).
        gather = getattr(collectives, "all_gather_single_autograd", None) or collectives.all_gather_tensor_autograd
        stats = collectives.wait_tensor(gather(torch.cat([mean, var, count]).unsqueeze(0), 0, group))  # (world_size, 2C + 1)
        means, variances, counts = stats[:, :c], stats[:, c : 2 * c], stats[:, 2 * c :]
        total = counts.sum()
        mean = (counts * means).sum(0) / total
        var = (counts * (variances + (means - mean) ** 2)).sum(0) / total
        if self.track_running_stats:
            with torch.no_grad():
                self.running_mean.mul_(1.0 - factor).add_(mean, alpha=factor)
                self.running_var.mul_(1.0 - factor).add_(var * (total / (total - 1)), alpha=factor)
        shape = (1, c) + (1,) * (x.dim() - 2)
        out = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out.to(input.dtype)


def synchronize_batch_norm(model: nn.Module, device: torch.device | str) -> Callable[[], None]:
    """Replace every torch BatchNorm layer of ``model`` by a synchronized one, in place; return the undo.

    On CUDA the replacement is ``torch.nn.SyncBatchNorm`` (torch's own kernels); on the CPU it is
    :class:`SyncBatchNorm` (torch's does not run there). Each replacement shares its layer's
    parameters and buffers, so the state_dict keeps its keys and values, an optimizer built before
    or after works alike, and the undo (calling the returned function) puts the original layers
    back holding every update made meanwhile. ``tutorial_lib.train.fit(sync_bn=True)`` converts
    before wrapping the model in ``DistributedDataParallel`` and undoes it when training ends,
    so the model it returns is the plain model it was given.

    Args:
        model: A network with ``torch.nn.BatchNorm*d`` layers (e.g. built with ``norm="batch"``).
        device: Where the model trains.

    Returns:
        A function without arguments that restores the original layers.

    Raises:
        TypeError: If ``model`` is not an ``nn.Module``.
        ValueError: If ``model`` has no torch BatchNorm layer, or has a from-scratch :class:`BatchNorm2d`,
            which cannot be synchronized.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    scratch = [name for name, m in model.named_modules() if isinstance(m, BatchNorm2d)]
    if scratch:
        raise ValueError(f"the layer {scratch[0]!r} is tutorial_lib.norm.BatchNorm2d (written from scratch), which cannot be "
                         "synchronized across processes; build the model with norm='batch' (torch.nn.BatchNorm2d)")
    batch_norm = nn.modules.batchnorm._BatchNorm
    swapped = [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()
               if isinstance(child, batch_norm) and not isinstance(child, (nn.SyncBatchNorm, SyncBatchNorm))]
    if not swapped:
        raise ValueError("the model has no torch BatchNorm layer to synchronize (sync_bn applies to norm='batch' models)")
    convert = nn.SyncBatchNorm.convert_sync_batchnorm if torch.device(device).type == "cuda" else SyncBatchNorm.from_batch_norm
    for parent, name, child in swapped:
        setattr(parent, name, convert(child))

    def undo() -> None:
        for parent, name, child in swapped:
            setattr(parent, name, child)

    return undo


# --------------------------------------------------------------------------------------------------
# Batch-independent alternatives, and no normalization at all
# --------------------------------------------------------------------------------------------------


def group_count(num_channels: int, max_groups: int = 32) -> int:
    """Groups GroupNorm uses for ``num_channels``: the largest divisor of it that is ``<= max_groups``.

    Wu & He 2018 use 32 groups by default (section 4.1; their Table 3 compares other group counts,
    and 32 groups give ResNet-50 24.1% ImageNet error). GroupNorm needs the channels to divide
    evenly, and the narrow CPU-sized networks of this series have layers with fewer than 32
    channels (or counts such as 48), so the count drops to the nearest divisor: 64 -> 32, 48 -> 24,
    16 -> 16. Below 32 channels that is one channel per group, i.e. InstanceNorm (Ulyanov et al.
    2016) for that layer.

    Args:
        num_channels: Channels ``C`` of the layer.
        max_groups: The preferred number of groups (32 in the paper).

    Returns:
        The number of groups.

    Raises:
        TypeError, ValueError: If either argument is not a positive int.
    """
    check_int("num_channels", num_channels, minimum=1)
    check_int("max_groups", max_groups, minimum=1)
    return max(g for g in range(1, min(num_channels, max_groups) + 1) if num_channels % g == 0)


def group_norm(num_channels: int, max_groups: int = 32, eps: float = 1e-5, affine: bool = True) -> nn.GroupNorm:
    """GroupNorm (Wu & He 2018, eq. 1 and 7) taking the channel count first, like ``nn.BatchNorm2d``.

    Each sample is normalized on its own, over groups of channels and all positions, then scaled
    and shifted per channel; no statistic crosses the batch, so train and eval mode compute the
    same function and any batch size works. ``nn.GroupNorm(num_groups, num_channels)`` takes the
    groups first, so it cannot be handed to a block as a ``norm_layer`` directly.

    Args:
        num_channels: Channels ``C``.
        max_groups: Preferred number of groups; see :func:`group_count` for the rule when
            ``num_channels`` has no such divisor.
        eps: Added to the variance.
        affine: Learn a per-channel ``weight`` and ``bias``.

    Returns:
        An ``nn.GroupNorm`` with ``2 * C`` parameters and no buffers.
    """
    return nn.GroupNorm(group_count(num_channels, max_groups), num_channels, eps=check_number("eps", eps, minimum=0.0), affine=affine)


def layer_norm(num_channels: int, eps: float = 1e-5, affine: bool = True) -> nn.GroupNorm:
    """Layer normalization for feature maps: each sample over (C, H, W), as ``nn.GroupNorm(1, C)``.

    Ba et al. 2016 normalize over all the units of a layer; for convolutional maps that is GroupNorm
    with a single group (Wu & He 2018, section 3.1 and Fig. 2), with a per-channel scale and shift.

    Args:
        num_channels: Channels ``C``.
        eps: Added to the variance.
        affine: Learn a per-channel ``weight`` and ``bias``.

    Returns:
        An ``nn.GroupNorm(1, num_channels)``.
    """
    check_int("num_channels", num_channels, minimum=1)
    return nn.GroupNorm(1, num_channels, eps=check_number("eps", eps, minimum=0.0), affine=affine)


def no_norm(num_channels: int) -> nn.Identity:
    """No normalization: an ``nn.Identity`` wherever a norm layer would be.

    Used through ``norm="none"``. A residual network without normalization explodes at
    initialization (each block adds its branch's variance to the signal, so it grows with depth;
    De & Smith 2020, section 2), so the blocks end each residual branch with :class:`SkipInit`
    instead of the identity (see :func:`residual_norm`).

    Args:
        num_channels: Channels (checked, otherwise unused).

    Returns:
        ``nn.Identity()``.
    """
    check_int("num_channels", num_channels, minimum=1)
    return nn.Identity()


class SkipInit(nn.Module):
    """A learnable scalar gain, initialised to 0, at the end of a residual branch (SkipInit).

    De & Smith 2020 ("Batch Normalization Biases Residual Blocks Towards the Identity Function in
    Deep Networks", section 4) show that BatchNorm's main benefit in a deep ResNet is to shrink each
    residual branch relative to the skip path at initialization, and that one scalar
    ``x + alpha * f(x)`` with ``alpha = 0`` at the start recovers trainability without any
    normalization: every block begins as the identity, the network begins as shallow as its
    shortcuts, and ``alpha`` grows as the branch learns something useful.

    The scalar is stored as ``weight`` so that code which treats a branch's last norm as its scale
    (``zero_init_residual``, parameter groups without weight decay) works unchanged.

    Args:
        num_features: Channels of the branch (checked, otherwise unused: the gain is one scalar).
        init: Initial value of ``alpha`` (0 in the paper).
    """

    def __init__(self, num_features: int | None = None, init: float = 0.0) -> None:
        super().__init__()
        if num_features is not None:
            check_int("num_features", num_features, minimum=1)
        self.weight = nn.Parameter(torch.tensor(check_number("init", init)))

    def forward(self, x: Tensor) -> Tensor:
        return self.weight * x

    def extra_repr(self) -> str:
        return f"alpha={self.weight.item():.4g}"


def residual_norm(norm_layer: NormFactory, num_channels: int) -> nn.Module:
    """The norm that ends a residual branch (``bn2`` of BasicBlock, ``bn3`` of Bottleneck).

    The same as ``norm_layer(num_channels)``, except for :func:`no_norm` (``norm="none"``), where the
    branch ends with a :class:`SkipInit` gain at 0 rather than the identity, so that the network
    without normalization still trains.

    Args:
        norm_layer: A resolved factory (what :func:`get_norm_layer` returns).
        num_channels: Channels of the branch output.

    Returns:
        The module.
    """
    if norm_layer is no_norm:
        return SkipInit(num_channels)
    return norm_layer(num_channels)


# --------------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------------

# Name -> factory(num_channels) -> module. The names are what users type (`norm="batch"`); keep the
# values plain callables so `get_norm_layer` can hand them straight to the blocks.
_NORM_LAYERS: dict[str, NormFactory] = {
    # Ioffe & Szegedy 2015, Algorithm 1: normalize each channel over (N, H, W), then scale and
    # shift. ResNet puts one after every convolution (He et al. 2016, section 3.4). torch's own
    # layer, so torchvision's and timm's checkpoints load unchanged.
    "batch": nn.BatchNorm2d,
    # The same maths, written out in this module (same outputs, statistics and state_dict keys).
    "scratch-batch": BatchNorm2d,
    # Wu & He 2018: batch-independent, 32 groups (fewer on narrow layers, see group_count).
    "group": group_norm,
    # Ba et al. 2016, for feature maps: GroupNorm with one group.
    "layer": layer_norm,
    # Pretrained statistics kept fixed, for fine-tuning with small batches.
    "frozen": FrozenBatchNorm2d,
    # No normalization; residual branches end with a SkipInit gain (De & Smith 2020).
    "none": no_norm,
}

NORM_NAMES: tuple[str, ...] = tuple(_NORM_LAYERS)
"""The names :func:`get_norm_layer` accepts."""


def get_norm_layer(norm: str | NormFactory) -> NormFactory:
    """Resolve a normalization name (or pass a factory through).

    Args:
        norm: One of :data:`NORM_NAMES` (e.g. ``"batch"``), or any callable that takes a channel
            count and returns an ``nn.Module`` (e.g. ``nn.BatchNorm2d`` or
            ``functools.partial(nn.GroupNorm, 32)``).

    Returns:
        A callable ``factory(num_channels) -> nn.Module``.

    Raises:
        ValueError: If ``norm`` is a string that is not a known name.
        TypeError: If ``norm`` is neither a string nor callable.
    """
    if isinstance(norm, str):
        try:
            return _NORM_LAYERS[norm]
        except KeyError:
            valid = ", ".join(repr(name) for name in _NORM_LAYERS)
            raise ValueError(
                f"unknown norm {norm!r}; valid names are {valid}, "
                "or pass a callable such as torch.nn.BatchNorm2d"
            ) from None
    if callable(norm):
        return norm
    raise TypeError(
        f"norm must be a name ({', '.join(repr(n) for n in _NORM_LAYERS)}) or a callable "
        f"num_channels -> nn.Module, got {type(norm).__name__}"
    )


# --------------------------------------------------------------------------------------------------
# Recalibration ("precise BN")
# --------------------------------------------------------------------------------------------------


def batch_norm_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every BatchNorm layer in ``model`` that keeps running statistics.

    Raises:
        TypeError: If ``model`` is not an ``nn.Module``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    return [
        (name, m)
        for name, m in model.named_modules()
        if isinstance(m, BATCH_NORM_TYPES) and m.track_running_stats and m.running_mean is not None
    ]


def randomize_norm(module: nn.Module, *, seed: int = 0) -> nn.Module:
    """Give every BatchNorm layer of ``module`` non-trivial statistics and affine parameters, in place.

    A fresh BatchNorm layer computes the identity in eval mode (running mean 0, running variance 1,
    weight 1, bias 0), so two networks compared right after construction agree in eval mode even if
    one of them ignores or misuses the running statistics. Randomizing them first gives eval mode
    something to get wrong: the notebooks do this before proving an inline block equal to the
    package's (:func:`tutorial_lib.checks.prove_equal`), and before comparing ResNet-101 with
    torchvision's and timm's.

    Every layer of ``BATCH_NORM_TYPES`` (``torch.nn.BatchNorm2d`` and the other subclasses of torch's
    ``_BatchNorm``, and :class:`BatchNorm2d`) and every :class:`FrozenBatchNorm2d` gets, per channel
    and in ``module.modules()`` order, ``running_mean ~ 0.1 * N(0, 1)``, ``running_var ~ U(0.5,
    1.5)``, ``weight ~ 1 + 0.1 * N(0, 1)`` and ``bias ~ 0.1 * N(0, 1)`` (a layer built without
    running statistics or without affine parameters keeps what it has; ``num_batches_tracked`` is
    left alone). The values come from a local ``torch.Generator`` seeded with ``seed``: the same seed
    gives the same values on any device, and the global random state (``torch.manual_seed``) is not
    touched.

    Args:
        module: The network or layer; changed in place.
        seed: Seed of the generator.

    Returns:
        ``module`` itself, so that ``reference = randomize_norm(Bottleneck(256, 64))`` reads as one line.

    Raises:
        TypeError: If ``module`` is not an ``nn.Module`` or ``seed`` is not an int.
        ValueError: If ``seed`` is negative, or ``module`` has no BatchNorm layer with running
            statistics or affine parameters (there would be nothing to randomize).
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be an nn.Module, got {type(module).__name__}")
    check_int("seed", seed, minimum=0)
    generator = torch.Generator().manual_seed(seed)  # on the CPU: the same values for every device
    changed = 0
    with torch.no_grad():
        for m in module.modules():
            if not isinstance(m, (*BATCH_NORM_TYPES, FrozenBatchNorm2d)):
                continue
            n = m.num_features
            touched = False
            if getattr(m, "running_mean", None) is not None and getattr(m, "running_var", None) is not None:
                m.running_mean.copy_(0.1 * torch.randn(n, generator=generator))
                m.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
                touched = True
            if getattr(m, "weight", None) is not None and getattr(m, "bias", None) is not None:
                m.weight.copy_(1 + 0.1 * torch.randn(n, generator=generator))
                m.bias.copy_(0.1 * torch.randn(n, generator=generator))
                touched = True
            changed += touched
    if not changed:
        raise ValueError(
            f"{type(module).__name__} has no BatchNorm layer with running statistics or affine parameters, "
            "so there is nothing to randomize (GroupNorm, LayerNorm and norm='none' keep no statistics)"
        )
    return module


def _images_of(batch: Any) -> Tensor:
    """The image tensor of a batch: the tensor itself, or the first item of ``(images, labels, ...)``."""
    images = batch[0] if isinstance(batch, (tuple, list)) and batch else batch
    if not isinstance(images, Tensor) or images.dim() != 4:
        raise TypeError(
            "each batch must be an (N, C, H, W) image tensor or a tuple (images, labels, ...); "
            f"got {type(images).__name__}" + (f" of shape {tuple(images.shape)}" if isinstance(images, Tensor) else "")
        )
    return images


def _dataset_batches(data: Dataset, batch_size: int, seed: int) -> Iterable[Tensor]:
    """Full batches of a random (seeded) order of ``data``; one short batch only if it is all there is.

    Equal-size batches matter here: the cumulative average weights every batch equally, so a small
    last batch would count as much as a full one (``data.batches`` drops it when shuffling).
    """
    for images, _ in batches(data, batch_size, shuffle_seed=seed):
        yield images


def recalibrate_bn(
    model: nn.Module,
    data: Dataset | Iterable[Any],
    num_batches: int,
    *,
    batch_size: int = 128,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> int:
    """Recompute every BatchNorm layer's running statistics with the rest of the model frozen.

    "Precise BN" (Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm", section 3): the running
    averages that training leaves behind mix statistics of many past versions of the weights, and
    the most recent ones dominate. Once the weights are fixed, one more pass that averages the
    batch statistics of the *final* model over many batches gives better population estimates
    (their Fig. 3 and Table 1). It is also the fix whenever the input distribution changed since
    training, e.g. another image resolution (notebook 07).

    Every BatchNorm layer's statistics are reset, its momentum set to ``None`` (a cumulative average:
    every batch counts equally) and it alone is put in training mode; the model then runs forward
    under ``torch.no_grad`` (no weight changes, dropout stays off). The result is the mean of the
    per-batch means, and the mean of the per-batch unbiased variances. Momenta and the training
    flag of every module are restored afterwards; on an error the old statistics are restored too.

    Args:
        model: The network; its BatchNorm layers (``torch.nn`` ones or :class:`BatchNorm2d`) are
            updated in place.
        data: A ``Dataset`` of ``(image, label)`` (shuffled with ``seed``, batched by
            ``batch_size``, float images; ``uint8`` images are scaled to [0, 1] like
            ``tutorial_lib.train`` does), or any iterable of batches (image tensors or
            ``(images, labels, ...)`` tuples, e.g. a ``DataLoader``) used as given.
        num_batches: How many batches to average (fewer if ``data`` runs out first).
        batch_size: Images per batch when ``data`` is a Dataset (at least 2).
        seed: Seed of the order in which a Dataset is read.
        device: Where to run; default: the device of the model's parameters.

    Returns:
        The number of batches averaged.

    Raises:
        TypeError: On arguments of the wrong type, or batches that hold no image tensor.
        ValueError: If the model has no BatchNorm layer with running statistics, or ``data`` is
            empty.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    check_int("num_batches", num_batches, minimum=1)
    check_int("batch_size", batch_size, minimum=2)
    check_int("seed", seed, minimum=0)
    bns = [m for _, m in batch_norm_layers(model)]
    if not bns:
        raise ValueError(
            "the model has no BatchNorm layer with running statistics, so there is nothing to "
            "recalibrate (GroupNorm, LayerNorm, frozen BN and norm='none' use no batch statistics)"
        )
    if isinstance(data, Tensor):
        raise TypeError("data must be a Dataset or an iterable of batches; wrap one image tensor as [images]")
    if isinstance(data, Dataset) and hasattr(data, "__len__") and hasattr(data, "__getitem__"):
        if len(data) == 0:
            raise ValueError("data is an empty Dataset; check the split name and any subset you took")
        batches: Iterable[Any] = _dataset_batches(data, batch_size, seed)
    elif isinstance(data, Iterable):
        batches = data
    else:
        raise TypeError(f"data must be a Dataset or an iterable of batches, got {type(data).__name__}")
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else bns[0].running_mean.device
    device = torch.device(device)

    modes = {m: m.training for m in model.modules()}
    momenta = [bn.momentum for bn in bns]
    saved = [(bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone()) for bn in bns]
    used = 0
    try:
        model.eval()
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None
            bn.train()
        with torch.no_grad():
            for batch in batches:
                if used == num_batches:
                    break
                model(to_float_images(_images_of(batch).to(device)))
                used += 1
        if used == 0:
            raise ValueError("data gave no batch; pass a non-empty Dataset or iterable of batches")
    except BaseException:
        with torch.no_grad():
            for bn, (mean, var, count) in zip(bns, saved):
                bn.running_mean.copy_(mean)
                bn.running_var.copy_(var)
                bn.num_batches_tracked.copy_(count)
        raise
    finally:
        for bn, momentum in zip(bns, momenta):
            bn.momentum = momentum
        for m, training in modes.items():
            m.training = training
    return used
