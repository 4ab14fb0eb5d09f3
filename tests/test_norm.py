"""Tests for tutorial_lib.norm: the from-scratch BatchNorm2d, the norm factory, recalibrate_bn."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from tutorial_lib.blocks import BasicBlock, Bottleneck
from tutorial_lib.cost import count_parameters
from tutorial_lib.models import resnet18, resnet50, resnet101
from tutorial_lib.norm import (
    BATCH_NORM_TYPES,
    NORM_NAMES,
    BatchNorm2d,
    FrozenBatchNorm2d,
    SkipInit,
    SyncBatchNorm,
    batch_norm_layers,
    get_norm_layer,
    group_count,
    group_norm,
    layer_norm,
    no_norm,
    randomize_norm,
    recalibrate_bn,
    residual_norm,
    synchronize_batch_norm,
)

# --------------------------------------------------------------------------------------------------
# BatchNorm2d equals torch.nn.BatchNorm2d
# --------------------------------------------------------------------------------------------------

CONFIGS = [
    pytest.param({}, id="defaults"),
    pytest.param({"momentum": None}, id="cumulative-average"),
    pytest.param({"eps": 1e-3, "momentum": 0.3}, id="eps-momentum"),
    pytest.param({"affine": False}, id="no-affine"),
    pytest.param({"track_running_stats": False}, id="no-running-stats"),
]


def _pair(dtype: torch.dtype, **kwargs) -> tuple[BatchNorm2d, nn.BatchNorm2d]:
    ours = BatchNorm2d(6, dtype=dtype, **kwargs)
    theirs = nn.BatchNorm2d(6, dtype=dtype, **kwargs)
    if ours.affine:
        # Non-trivial affine parameters, the same in both.
        with torch.no_grad():
            theirs.weight.copy_(torch.linspace(0.5, 2.0, 6, dtype=dtype))
            theirs.bias.copy_(torch.linspace(-1.0, 1.0, 6, dtype=dtype))
        ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def _assert_same_stats(ours: BatchNorm2d, theirs: nn.BatchNorm2d, **tol) -> None:
    if theirs.track_running_stats:
        torch.testing.assert_close(ours.running_mean, theirs.running_mean, **tol)
        torch.testing.assert_close(ours.running_var, theirs.running_var, **tol)
        assert ours.num_batches_tracked.item() == theirs.num_batches_tracked.item()
    else:
        assert ours.running_mean is None and ours.running_var is None and ours.num_batches_tracked is None


@pytest.mark.parametrize("dtype, tol", [(torch.float64, {"rtol": 1e-10, "atol": 1e-10}), (torch.float32, {"rtol": 1e-5, "atol": 1e-5})])
@pytest.mark.parametrize("kwargs", CONFIGS)
def test_scratch_batch_norm_equals_torch_over_training_steps_and_in_eval(kwargs, dtype, tol) -> None:
    ours, theirs = _pair(dtype, **kwargs)
    gen = torch.Generator().manual_seed(0)
    opt_ours = torch.optim.SGD(ours.parameters(), lr=0.1) if ours.affine else None
    opt_theirs = torch.optim.SGD(theirs.parameters(), lr=0.1) if theirs.affine else None
    ours.train()
    theirs.train()
    for step in range(4):
        # A batch whose per-channel mean and scale differ, and change from step to step.
        shift = torch.randn(1, 6, 1, 1, generator=gen, dtype=dtype) * 3
        x = (torch.randn(4 + step, 6, 5, 3, generator=gen, dtype=dtype) * (1 + step) + shift)
        x_ours, x_theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
        y_ours, y_theirs = ours(x_ours), theirs(x_theirs)
        torch.testing.assert_close(y_ours, y_theirs, **tol)
        grad_out = torch.randn(y_ours.shape, generator=gen, dtype=dtype)
        y_ours.backward(grad_out)
        y_theirs.backward(grad_out)
        torch.testing.assert_close(x_ours.grad, x_theirs.grad, **tol)
        if ours.affine:
            torch.testing.assert_close(ours.weight.grad, theirs.weight.grad, **tol)
            torch.testing.assert_close(ours.bias.grad, theirs.bias.grad, **tol)
            opt_ours.step()
            opt_theirs.step()
            opt_ours.zero_grad()
            opt_theirs.zero_grad()
            torch.testing.assert_close(ours.weight, theirs.weight, **tol)
        _assert_same_stats(ours, theirs, **tol)
    if theirs.track_running_stats:
        assert ours.num_batches_tracked.item() == 4
        # The statistics moved away from their initial values.
        assert not torch.allclose(ours.running_mean, torch.zeros_like(ours.running_mean))
    ours.eval()
    theirs.eval()
    x = torch.randn(3, 6, 4, 4, generator=gen, dtype=dtype) * 2 + 1
    torch.testing.assert_close(ours(x), theirs(x), **tol)
    _assert_same_stats(ours, theirs, **tol)  # eval mode leaves them alone
    assert ours.running_mean is None or ours.num_batches_tracked.item() == 4


def test_running_stats_are_buffers_outside_autograd_with_torch_values() -> None:
    bn = BatchNorm2d(3)
    x = torch.randn(8, 3, 4, 4, requires_grad=True)
    bn(x).sum().backward()
    assert not bn.running_mean.requires_grad and bn.running_mean.grad_fn is None
    assert [name for name, _ in bn.named_buffers()] == ["running_mean", "running_var", "num_batches_tracked"]
    assert [name for name, _ in bn.named_parameters()] == ["weight", "bias"]
    # momentum 0.1, first step: 0.9 * initial + 0.1 * batch statistic; variance unbiased (m = 128).
    m = 8 * 4 * 4
    torch.testing.assert_close(bn.running_mean, 0.1 * x.detach().mean(dim=(0, 2, 3)))
    torch.testing.assert_close(bn.running_var, 0.9 + 0.1 * x.detach().var(dim=(0, 2, 3), correction=1))
    assert bn.num_batches_tracked.dtype == torch.long
    # The normalization itself uses the biased variance (Algorithm 1, eq. 2).
    bn.reset_running_stats()
    expected = (x - x.mean(dim=(0, 2, 3), keepdim=True)) / torch.sqrt(x.var(dim=(0, 2, 3), correction=0, keepdim=True) + 1e-5)
    torch.testing.assert_close(bn(x), expected)
    assert m == 128


def test_state_dict_keys_equal_torch_and_load_strictly_both_ways() -> None:
    torch.manual_seed(0)
    theirs = nn.BatchNorm2d(4)
    theirs.train()
    for _ in range(3):
        theirs(torch.randn(5, 4, 3, 3) * 2 + 1)
    ours = BatchNorm2d(4)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    ours.load_state_dict(theirs.state_dict(), strict=True)
    assert ours.num_batches_tracked.item() == 3
    back = nn.BatchNorm2d(4)
    back.load_state_dict(ours.state_dict(), strict=True)
    for key, value in theirs.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key
    x = torch.randn(2, 4, 3, 3)
    ours.eval()
    theirs.eval()
    torch.testing.assert_close(ours(x), theirs(x))
    # Without running statistics both keep only the affine parameters.
    assert list(BatchNorm2d(4, track_running_stats=False).state_dict()) == ["weight", "bias"]


# --------------------------------------------------------------------------------------------------
# SyncBatchNorm and synchronize_batch_norm (tests/test_distributed.py runs them in two processes)
# --------------------------------------------------------------------------------------------------


def test_sync_batch_norm_in_one_process_is_torch_batch_norm_sharing_its_tensors() -> None:
    torch.manual_seed(0)
    plain, reference = nn.BatchNorm2d(4, momentum=None), nn.BatchNorm2d(4, momentum=None)
    sync = SyncBatchNorm.from_batch_norm(plain)
    assert sync.weight is plain.weight and sync.running_var is plain.running_var, "shared, not copied"
    assert list(sync.state_dict()) == list(plain.state_dict())
    for _ in range(3):  # without a process group: torch's BatchNorm, running statistics included
        x = torch.randn(6, 4, 5, 5) * 3 + 1
        torch.testing.assert_close(sync(x), reference(x), rtol=0, atol=0)
    assert torch.equal(plain.running_var, reference.running_var) and plain.num_batches_tracked.item() == 3
    sync.eval()
    reference.eval()
    torch.testing.assert_close(sync(x), reference(x), rtol=0, atol=0)
    with pytest.raises(TypeError, match="torch BatchNorm layer"):
        SyncBatchNorm.from_batch_norm(BatchNorm2d(4))


def test_synchronize_batch_norm_swaps_every_layer_in_place_and_undoes_it() -> None:
    model = resnet18(num_classes=3, width=8, stem="small")
    before, keys = dict(model.named_modules()), list(model.state_dict())
    undo = synchronize_batch_norm(model, "cpu")
    swapped = {name: type(m) for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    assert set(swapped.values()) == {SyncBatchNorm} and len(swapped) == 20  # 1 stem + 8 blocks x 2 + 3 downsamples
    assert list(model.state_dict()) == keys, "a checkpoint of the synchronized model loads into the plain one"
    undo()
    assert all(model.get_submodule(name) is module for name, module in before.items() if name), "the original layers back"
    # On CUDA torch's own layer (its kernels run there); built here without a GPU, never run.
    undo = synchronize_batch_norm(model, "cuda")
    assert type(model.bn1) is nn.SyncBatchNorm and model.bn1.weight is before["bn1"].weight
    undo()
    with pytest.raises(ValueError, match="norm='batch'"):
        synchronize_batch_norm(resnet18(num_classes=3, width=8, stem="small", norm="scratch-batch"), "cpu")
    with pytest.raises(ValueError, match="no torch BatchNorm layer"):
        synchronize_batch_norm(resnet18(num_classes=3, width=8, stem="small", norm="group"), "cpu")
    with pytest.raises(TypeError, match="nn.Module"):
        synchronize_batch_norm("resnet18", "cpu")


def test_resnet_with_scratch_batch_norm_equals_torch_batch_norm() -> None:
    torch.manual_seed(0)
    reference = resnet18(width=8, stem="small", num_classes=5)
    scratch = resnet18(width=8, stem="small", num_classes=5, norm="scratch-batch")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in scratch.modules())
    assert sum(isinstance(m, BatchNorm2d) for m in scratch.modules()) == 20
    scratch.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(4, 3, 16, 16)
    for mode in ("train", "eval"):
        getattr(reference, mode)()
        getattr(scratch, mode)()
        torch.testing.assert_close(scratch(x), reference(x), rtol=1e-4, atol=1e-4)
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(scratch.state_dict()[key], value, rtol=1e-5, atol=1e-6)


def test_batch_of_one_value_per_channel_raises_in_training_only() -> None:
    ours, theirs = BatchNorm2d(3), nn.BatchNorm2d(3)
    x = torch.randn(1, 3, 1, 1)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        ours(x)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        theirs(x)
    assert ours.num_batches_tracked.item() == 0  # nothing was updated
    ours.eval()
    theirs.eval()
    torch.testing.assert_close(ours(x), theirs(x))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: BatchNorm2d(0), ValueError, "num_features must be >= 1"),
        (lambda: BatchNorm2d(3.0), TypeError, "num_features must be an integer"),
        (lambda: BatchNorm2d(3, momentum=1.5), ValueError, r"momentum must be >= 0 and <= 1, got 1.5"),
        (lambda: BatchNorm2d(3, momentum="0.1"), TypeError, "momentum must be a number"),
        (lambda: BatchNorm2d(3, eps=-1.0), ValueError, "eps must be >= 0"),
        (lambda: BatchNorm2d(3, affine=1), TypeError, "affine must be True or False"),
        (lambda: BatchNorm2d(3)(torch.randn(3, 4, 4)), ValueError, "expected 4D input.*unsqueeze"),
        (lambda: BatchNorm2d(3)(torch.randn(2, 4, 4, 4)), ValueError, r"expected 3 channels.*BatchNorm2d\(4\)"),
        (lambda: FrozenBatchNorm2d(3)(torch.randn(2, 4, 4, 4)), ValueError, r"shape \(N, 3, H, W\)"),
        (lambda: FrozenBatchNorm2d.from_batch_norm(nn.GroupNorm(1, 3)), TypeError, "must be a BatchNorm layer"),
        (lambda: FrozenBatchNorm2d.from_batch_norm(nn.BatchNorm2d(3, track_running_stats=False)), ValueError, "no running statistics"),
        (lambda: SkipInit(3, init="0"), TypeError, "init must be a number"),
    ],
)
def test_layers_reject_bad_input(call, error, match) -> None:
    with pytest.raises(error, match=match):
        call()


# --------------------------------------------------------------------------------------------------
# The factory and the alternatives
# --------------------------------------------------------------------------------------------------


def test_norm_names_and_unknown_names() -> None:
    assert NORM_NAMES == ("batch", "scratch-batch", "group", "layer", "frozen", "none")
    assert get_norm_layer("batch") is nn.BatchNorm2d  # torchvision/timm checkpoints load unchanged
    assert get_norm_layer("scratch-batch") is BatchNorm2d
    with pytest.raises(ValueError) as info:
        get_norm_layer("instance")
    message = str(info.value)
    assert "unknown norm 'instance'" in message
    assert all(repr(name) in message for name in NORM_NAMES)
    with pytest.raises(ValueError, match="'group', 'layer', 'frozen', 'none'"):
        resnet18(norm="GN")


@pytest.mark.parametrize(
    "channels, groups", [(64, 32), (2048, 32), (48, 24), (40, 20), (96, 32), (16, 16), (8, 8), (7, 7), (1, 1)]
)
def test_group_count_is_the_largest_divisor_up_to_32(channels, groups) -> None:
    assert group_count(channels) == groups
    layer = group_norm(channels)
    assert isinstance(layer, nn.GroupNorm) and layer.num_groups == groups and layer.num_channels == channels
    assert group_count(64, max_groups=16) == 16 and group_count(24, max_groups=16) == 12
    with pytest.raises(ValueError, match="max_groups must be >= 1"):
        group_count(8, max_groups=0)


def test_resnet101_with_group_norm_has_the_same_parameters_and_no_buffers(on_meta, meta_resnet101) -> None:
    model = on_meta(resnet101, norm="group")  # structure and counts only
    assert not any(isinstance(m, BATCH_NORM_TYPES) for m in model.modules())
    assert sum(isinstance(m, nn.GroupNorm) for m in model.modules()) == 104
    assert count_parameters(model) == 44_549_160  # the same as with BatchNorm: 2 per channel either way
    assert count_parameters(meta_resnet101) == 44_549_160
    assert list(model.buffers()) == []
    assert model.layer4[2].bn3.num_groups == 32 and model.bn1.num_groups == 32


def test_group_and_layer_norm_are_per_sample() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 8, 5, 5) * 4 + 2
    ln = layer_norm(8)
    assert ln.num_groups == 1
    # LayerNorm over (C, H, W) of each sample, weight 1 and bias 0 at initialization.
    torch.testing.assert_close(ln(x), F.layer_norm(x, x.shape[1:]))
    gn = group_norm(8, max_groups=4)
    # Each sample's output does not depend on the others in the batch, in either mode.
    torch.testing.assert_close(gn(x)[:1], gn(x[:1]))
    grouped = x.view(3, 4, 2 * 5 * 5)
    expected = ((grouped - grouped.mean(-1, keepdim=True)) / torch.sqrt(grouped.var(-1, correction=0, keepdim=True) + 1e-5)).view_as(x)
    torch.testing.assert_close(gn(x), expected)


def test_none_builds_skipinit_branches_and_no_norm() -> None:
    model = resnet50(width=8, norm="none")
    assert not any(isinstance(m, (nn.BatchNorm2d, BatchNorm2d, nn.GroupNorm, FrozenBatchNorm2d)) for m in model.modules())
    gains = [m for m in model.modules() if isinstance(m, SkipInit)]
    assert len(gains) == 16 and all(g.weight.item() == 0.0 for g in gains)
    assert isinstance(model.layer1[0].bn3, SkipInit) and isinstance(model.layer1[0].bn1, nn.Identity)
    assert isinstance(model.layer2[0].downsample[1], nn.Identity)
    assert isinstance(resnet18(norm="none").layer1[0].bn2, SkipInit)
    # Parameters: the convolutions and fc of ResNet-50 at width 8, plus one scalar per block.
    assert count_parameters(model) == count_parameters(resnet50(width=8, norm="frozen")) + 16
    assert isinstance(residual_norm(no_norm, 8), SkipInit)
    assert isinstance(residual_norm(nn.BatchNorm2d, 8), nn.BatchNorm2d)
    assert isinstance(Bottleneck(16, 4, norm_layer="none").bn3, SkipInit)
    assert isinstance(BasicBlock(8, 8, norm_layer="none").bn2, SkipInit)


def test_none_keeps_a_deep_network_bounded_at_initialization() -> None:
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    skipinit = resnet101(width=4, stem="small", num_classes=10, norm="none").eval()
    torch.manual_seed(0)
    plain = resnet101(width=4, stem="small", num_classes=10, norm=lambda c: nn.Identity()).eval()
    with torch.no_grad():
        std_skipinit = skipinit.forward_features(x).std().item()
        std_plain = plain.forward_features(x).std().item()
    # Without normalization or SkipInit the variance grows with each of the 33 blocks.
    assert std_plain > 1000 * std_skipinit
    assert 1e-3 < std_skipinit < 10


def test_none_still_trains() -> None:
    torch.manual_seed(0)
    model = resnet50(width=4, stem="small", num_classes=4, norm="none")
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(16, 3, 8, 8, generator=gen)
    y = torch.arange(16) % 4
    # Make the task learnable: brighten one channel per class.
    x[torch.arange(16), y % 3] += 0.5 * (1 + y // 3).float().view(-1, 1, 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    losses = []
    for _ in range(10):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
    gains = [m.weight.item() for m in model.modules() if isinstance(m, SkipInit)]
    assert any(g != 0.0 for g in gains)  # the branches opened


def test_frozen_has_no_trainable_norm_parameters_and_loads_batch_norm_checkpoints() -> None:
    torch.manual_seed(0)
    trained = resnet18(width=8, stem="small", num_classes=3)
    trained.train()
    with torch.no_grad():
        for _ in range(2):
            trained(torch.rand(4, 3, 16, 16))
    frozen = resnet18(width=8, stem="small", num_classes=3, norm="frozen")
    norms = [m for m in frozen.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert len(norms) == 20 and all(len(list(m.parameters())) == 0 for m in norms)
    convs_and_fc = sum(p.numel() for m in frozen.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) for p in m.parameters())
    assert count_parameters(frozen) == count_parameters(frozen, trainable_only=True) == convs_and_fc
    assert list(frozen.state_dict()) == list(trained.state_dict())
    frozen.load_state_dict(trained.state_dict(), strict=True)
    x = torch.rand(2, 3, 16, 16)
    trained.eval()
    frozen.train()  # frozen statistics in any mode
    with torch.no_grad():
        torch.testing.assert_close(frozen(x), trained(x), rtol=1e-4, atol=1e-5)
    before = copy.deepcopy(frozen.state_dict())
    frozen(x)
    assert all(torch.equal(before[k], v) for k, v in frozen.state_dict().items())
    bn = trained.layer1[0].bn1
    copy_of_bn = FrozenBatchNorm2d.from_batch_norm(bn)
    feature = torch.randn(2, 8, 4, 4)
    torch.testing.assert_close(copy_of_bn(feature), bn(feature), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------------
# recalibrate_bn
# --------------------------------------------------------------------------------------------------

CHANNEL_MEAN = torch.tensor([2.0, -1.0, 0.5])
CHANNEL_STD = torch.tensor([3.0, 0.5, 1.0])


def _data(n: int = 96) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, 6, 6, generator=gen) * CHANNEL_STD.view(1, 3, 1, 1) + CHANNEL_MEAN.view(1, 3, 1, 1)


def _probe(bn_cls: type[nn.Module]) -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(bn_cls(3), nn.Conv2d(3, 4, 3), bn_cls(4), nn.ReLU(), nn.Dropout(0.5))
    model[2].momentum = 0.3
    return model


@pytest.mark.parametrize("bn_cls", [nn.BatchNorm2d, BatchNorm2d], ids=["torch", "scratch"])
@pytest.mark.parametrize("form", ["dataset", "list", "loader"])
def test_recalibrate_bn_reaches_the_data_statistics(bn_cls, form) -> None:
    images = _data()
    model = _probe(bn_cls)
    model.train()
    model[3].eval()  # an odd mode on one module, to check every module's mode is restored
    data = {
        "dataset": TensorDataset(images, torch.zeros(len(images))),
        "list": list(images.split(16)),
        "loader": DataLoader(TensorDataset(images, torch.zeros(len(images))), batch_size=16),
    }[form]
    used = recalibrate_bn(model, data, num_batches=100, batch_size=16)
    assert used == 6  # 96 images in batches of 16: the data ran out first
    first = model[0]
    # Equal batches covering the data: the mean of the batch means is the data's mean, exactly.
    torch.testing.assert_close(first.running_mean, images.mean(dim=(0, 2, 3)), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(first.running_mean, CHANNEL_MEAN, rtol=0.1, atol=0.1)
    torch.testing.assert_close(first.running_var.sqrt(), CHANNEL_STD, rtol=0.1, atol=0.05)
    assert first.num_batches_tracked.item() == 6
    # The second layer averages, over the batches, the mean of the (frozen) convolution of the
    # batch as the first layer normalized it in training mode, i.e. with that batch's statistics.
    if form != "dataset":  # (a Dataset is read in a shuffled order)
        with torch.no_grad():
            per_batch = [model[1](F.batch_norm(b, None, None, first.weight, first.bias, training=True)) for b in images.split(16)]
        expected = torch.stack([out.mean(dim=(0, 2, 3)) for out in per_batch]).mean(0)
        torch.testing.assert_close(model[2].running_mean, expected, rtol=1e-5, atol=1e-5)
    # Restored: momenta and modes (the model was in train mode, model[3] in eval).
    model.train()
    assert model[0].momentum == 0.1 and model[2].momentum == 0.3


def test_recalibrate_bn_restores_modes_and_leaves_weights_alone() -> None:
    model = _probe(nn.BatchNorm2d)
    model.train()
    model[3].eval()
    weights = copy.deepcopy({k: v for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k})
    recalibrate_bn(model, [_data(32)], num_batches=1)
    assert model.training and model[0].training and not model[3].training
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in weights.items())
    assert model[0].momentum == 0.1 and model[2].momentum == 0.3
    model.eval()
    recalibrate_bn(model, [_data(32)], num_batches=1)
    assert not any(m.training for m in model.modules())


def test_recalibrate_bn_reads_uint8_datasets_and_limits_batches() -> None:
    class Images(Dataset):
        def __init__(self) -> None:
            self.images = torch.full((40, 3, 4, 4), 51, dtype=torch.uint8)
            self.images[:, 1] = 204
            self.labels = torch.zeros(40, dtype=torch.long)

        def __len__(self) -> int:
            return 40

        def __getitem__(self, i: int):
            return self.images[i].float() / 255, self.labels[i]

    model = _probe(nn.BatchNorm2d)
    assert recalibrate_bn(model, Images(), num_batches=2, batch_size=8) == 2
    torch.testing.assert_close(model[0].running_mean, torch.tensor([0.2, 0.8, 0.2]))
    assert model[0].num_batches_tracked.item() == 2


def test_recalibrate_bn_rejects_bad_input_and_keeps_stats_on_error() -> None:
    model = _probe(nn.BatchNorm2d)
    model.train()
    model(_data(8))
    before = model[0].running_mean.clone()
    with pytest.raises(ValueError, match="data gave no batch"):
        recalibrate_bn(model, [], num_batches=3)
    assert torch.equal(model[0].running_mean, before) and model[0].momentum == 0.1
    with pytest.raises(TypeError, match=r"\(N, C, H, W\) image tensor"):
        recalibrate_bn(model, [torch.zeros(3, 6, 6)], num_batches=1)
    assert torch.equal(model[0].running_mean, before)
    with pytest.raises(TypeError, match="wrap one image tensor"):
        recalibrate_bn(model, _data(8), num_batches=1)
    with pytest.raises(ValueError, match="num_batches must be >= 1"):
        recalibrate_bn(model, [_data(8)], num_batches=0)
    with pytest.raises(ValueError, match="batch_size must be >= 2"):
        recalibrate_bn(model, [_data(8)], num_batches=1, batch_size=1)
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        recalibrate_bn("model", [_data(8)], num_batches=1)
    with pytest.raises(TypeError, match="iterable of batches"):
        recalibrate_bn(model, 3, num_batches=1)
    with pytest.raises(ValueError, match="empty Dataset"):
        recalibrate_bn(model, TensorDataset(torch.zeros(0, 3, 2, 2)), num_batches=1)
    with pytest.raises(ValueError, match="no BatchNorm layer with running statistics"):
        recalibrate_bn(resnet18(width=4, norm="group"), [_data(8)], num_batches=1)
    assert [name for name, _ in batch_norm_layers(model)] == ["0", "2"]


# --------------------------------------------------------------------------------------------------
# randomize_norm
# --------------------------------------------------------------------------------------------------


def _every_kind_of_batch_norm() -> nn.Sequential:
    return nn.Sequential(
        nn.BatchNorm2d(4), BatchNorm2d(5), nn.BatchNorm1d(3), FrozenBatchNorm2d(6), nn.SyncBatchNorm(2),
        BasicBlock(4, 4, norm_layer=BatchNorm2d), nn.GroupNorm(2, 4),
    )


def test_randomize_norm_changes_every_batch_norm_in_place() -> None:
    model = _every_kind_of_batch_norm()
    layers = [m for m in model.modules() if isinstance(m, (*BATCH_NORM_TYPES, FrozenBatchNorm2d))]
    assert len(layers) == 7  # five above and the two of the block
    group_norm_before = copy.deepcopy(model[6].state_dict())
    assert randomize_norm(model, seed=3) is model
    for m in layers:
        for name, fresh in (("running_mean", 0.0), ("running_var", 1.0), ("weight", 1.0), ("bias", 0.0)):
            value = getattr(m, name)
            assert not torch.isclose(value, torch.full_like(value, fresh)).any(), (type(m).__name__, name)
        assert (m.running_var >= 0.5).all() and (m.running_var <= 1.5).all()
        assert int(m.num_batches_tracked) == 0
    for key, value in model[6].state_dict().items():
        assert torch.equal(value, group_norm_before[key])  # not a BatchNorm: left alone


def test_randomize_norm_is_deterministic_per_seed_and_keeps_the_global_random_state() -> None:
    models = []
    for _ in range(3):
        torch.manual_seed(0)  # the same convolution weights in all three
        models.append(_every_kind_of_batch_norm())
    first, second, third = models
    torch.manual_seed(7)
    before = torch.get_rng_state()
    randomize_norm(first, seed=11)
    randomize_norm(second, seed=11)
    randomize_norm(third, seed=12)
    assert torch.equal(torch.get_rng_state(), before)
    a, b, c = first.state_dict(), second.state_dict(), third.state_dict()
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert not torch.equal(a["0.running_mean"], c["0.running_mean"])
    # Same values on another dtype: drawn on the CPU, then copied
    double = randomize_norm(nn.BatchNorm2d(4).double(), seed=11)
    torch.testing.assert_close(double.running_mean.float(), a["0.running_mean"])


def test_randomize_norm_makes_eval_mode_differ_from_a_fresh_layer() -> None:
    x = torch.randn(2, 4, 3, 3)
    fresh, randomized = nn.BatchNorm2d(4).eval(), randomize_norm(nn.BatchNorm2d(4)).eval()
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), x, rtol=1e-4, atol=1e-4)  # the identity, up to eps
        assert not torch.allclose(randomized(x), x, atol=1e-2)


def test_randomize_norm_skips_what_a_layer_lacks_and_rejects_bad_input() -> None:
    no_affine = randomize_norm(nn.BatchNorm2d(3, affine=False))
    assert no_affine.weight is None and not torch.equal(no_affine.running_mean, torch.zeros(3))
    no_stats = randomize_norm(nn.BatchNorm2d(3, track_running_stats=False))
    assert no_stats.running_mean is None and not torch.equal(no_stats.weight.detach(), torch.ones(3))
    with pytest.raises(ValueError, match="nothing to randomize"):
        randomize_norm(resnet18(width=4, stem="small", norm="group"))
    with pytest.raises(ValueError, match="nothing to randomize"):
        randomize_norm(nn.BatchNorm2d(3, affine=False, track_running_stats=False))
    with pytest.raises(TypeError, match=r"module must be an nn\.Module"):
        randomize_norm(nn.BatchNorm2d(3).state_dict())
    with pytest.raises(TypeError, match="seed must be an integer"):
        randomize_norm(nn.BatchNorm2d(3), seed=1.0)
    with pytest.raises(ValueError, match="seed must be >= 0"):
        randomize_norm(nn.BatchNorm2d(3), seed=-1)
