"""Tests for tutorial_lib.blocks (BasicBlock, Bottleneck, projection) and the norm factory."""

from __future__ import annotations

import functools

import pytest
import torch
import torchvision.models.resnet as tv
from torch import nn

from tutorial_lib.blocks import STRIDE_IN_NAMES, BasicBlock, Bottleneck, projection
from tutorial_lib.cost import count_flops, count_parameters
from tutorial_lib.norm import NORM_NAMES, get_norm_layer


def _shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def _randomize_norm_stats(module: nn.Module) -> None:
    """Give BatchNorm layers non-trivial statistics and affine parameters (eval mode uses them)."""
    generator = torch.Generator().manual_seed(1)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=generator))
            m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=generator))
            m.bias.data.copy_(torch.randn(m.num_features, generator=generator))


@pytest.mark.parametrize(
    "ours_cls, theirs_cls, inplanes, planes, stride",
    [
        (BasicBlock, tv.BasicBlock, 16, 16, 1),
        (BasicBlock, tv.BasicBlock, 16, 32, 2),
        (Bottleneck, tv.Bottleneck, 64, 16, 1),
        (Bottleneck, tv.Bottleneck, 32, 16, 2),
    ],
)
def test_blocks_equal_torchvision(ours_cls, theirs_cls, inplanes, planes, stride) -> None:
    torch.manual_seed(0)
    out_planes = planes * ours_cls.expansion
    needs_projection = stride != 1 or inplanes != out_planes
    ours = ours_cls(inplanes, planes, stride, projection(inplanes, out_planes, stride) if needs_projection else None)
    theirs = theirs_cls(
        inplanes,
        planes,
        stride,
        nn.Sequential(tv.conv1x1(inplanes, out_planes, stride), nn.BatchNorm2d(out_planes))
        if needs_projection
        else None,
    )
    assert _shapes(ours) == _shapes(theirs)
    _randomize_norm_stats(theirs)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, inplanes, 12, 12)
    with torch.no_grad():
        assert torch.equal(ours.eval()(x), theirs.eval()(x))
        assert torch.equal(ours.train()(x), theirs.train()(x))


def test_bottleneck_stride_placement() -> None:
    v15 = Bottleneck(64, 32, stride=2, downsample=projection(64, 128, 2))
    v1 = Bottleneck(64, 32, stride=2, downsample=projection(64, 128, 2), stride_in="v1")
    assert STRIDE_IN_NAMES == ("v1", "v1.5")
    assert v15.stride_in == "v1.5"
    assert (v15.conv1.stride, v15.conv2.stride) == ((1, 1), (2, 2))
    assert (v1.conv1.stride, v1.conv2.stride) == ((2, 2), (1, 1))
    # Same weights, same output shape ...
    assert _shapes(v1) == _shapes(v15)
    assert count_parameters(v1) == count_parameters(v15) == 64 * 32 + 9 * 32 * 32 + 32 * 128 + 64 * 128 + 2 * (32 + 32 + 128 + 128)
    x = torch.randn(1, 64, 16, 16)
    assert v1(x).shape == v15(x).shape == (1, 128, 8, 8)
    # ... but v1's first 1x1 produces only the 8x8 output pixels instead of all 16x16; the strided
    # 3x3 of v1.5 computes 8x8 outputs too, so the 1x1 is the whole difference.
    macs_v15 = count_flops(v15, x)["macs"]
    macs_v1 = count_flops(v1, x)["macs"]
    assert macs_v15 - macs_v1 == 64 * 32 * (16 * 16 - 8 * 8)


def test_bottleneck_expands_channels_by_four() -> None:
    block = Bottleneck(256, 64)
    assert Bottleneck.expansion == 4 and BasicBlock.expansion == 1
    assert block.downsample is None
    assert block(torch.randn(1, 256, 5, 5)).shape == (1, 256, 5, 5)
    assert [name for name, _ in block.named_children()] == [
        "conv1", "bn1", "conv2", "bn2", "conv3", "bn3", "relu"
    ]


def test_projection_keys_match_torchvision_downsample() -> None:
    shortcut = projection(64, 256, stride=2)
    assert list(shortcut.state_dict()) == [
        "0.weight", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked"
    ]
    assert shortcut[0].stride == (2, 2) and shortcut[0].kernel_size == (1, 1)
    assert isinstance(projection(8, 16, norm_layer=functools.partial(nn.GroupNorm, 4))[1], nn.GroupNorm)


def test_blocks_accept_a_norm_name_or_factory() -> None:
    gn = functools.partial(nn.GroupNorm, 4)
    block = Bottleneck(32, 8, norm_layer=gn)
    assert all(isinstance(getattr(block, f"bn{i}"), nn.GroupNorm) for i in (1, 2, 3))
    assert isinstance(BasicBlock(8, 8, norm_layer="batch").bn1, nn.BatchNorm2d)
    assert block(torch.randn(2, 32, 4, 4)).shape == (2, 32, 4, 4)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: BasicBlock(16, 32), ValueError, r"pass downsample=projection\(16, 32, stride=1\)"),
        (lambda: Bottleneck(64, 64, stride=2), ValueError, r"projection\(64, 256, stride=2\)"),
        (lambda: Bottleneck(256, 64, stride_in="v2"), ValueError, "Valid values: v1, v1.5"),
        (lambda: Bottleneck(0, 64), ValueError, "inplanes must be >= 1"),
        (lambda: BasicBlock(8, 8, stride=1.0), TypeError, "stride must be an int"),
        (lambda: BasicBlock(8, 8, downsample="conv"), TypeError, "downsample must be an nn.Module"),
        (lambda: BasicBlock(8, 8, norm_layer="batchnorm"), ValueError, "valid names are 'batch'"),
        (lambda: BasicBlock(8, 8, norm_layer=3), TypeError, "norm must be a name"),
    ],
)
def test_blocks_reject_bad_input(call, error, match) -> None:
    with pytest.raises(error, match=match):
        call()


def test_norm_factory() -> None:
    assert "batch" in NORM_NAMES
    assert get_norm_layer("batch") is nn.BatchNorm2d
    factory = functools.partial(nn.GroupNorm, 2)
    assert get_norm_layer(factory) is factory
    layer = get_norm_layer("batch")(12)
    assert isinstance(layer, nn.BatchNorm2d) and layer.num_features == 12
    with pytest.raises(ValueError, match="unknown norm 'Batch'; valid names are 'batch'"):
        get_norm_layer("Batch")
    with pytest.raises(TypeError, match="got NoneType"):
        get_norm_layer(None)


def test_notebook_03_checks(capsys) -> None:
    from tutorial_lib import checks

    def params(inplanes, planes, stride):
        out = 4 * planes
        shortcut = inplanes * out + 2 * out if stride != 1 or inplanes != out else 0
        return inplanes * planes + 9 * planes * planes + planes * out + 2 * (2 * planes + out) + shortcut

    checks.check_bottleneck_params_function(params)
    with pytest.raises(AssertionError, match="needs a projection shortcut"):
        checks.check_bottleneck_params_function(
            lambda i, p, s: params(i, p, s) - (i * 4 * p + 8 * p if s != 1 or i != 4 * p else 0))
    with pytest.raises(AssertionError, match="count BatchNorm too"):
        checks.check_bottleneck_params_function(lambda i, p, s: params(i, p, s) - 2 * 6 * p)
    checks.check_v1_saving(512 * 256 * (28 * 28 - 14 * 14), inplanes=512, planes=256, size=28)
    with pytest.raises(AssertionError, match="only conv1 changes"):
        checks.check_v1_saving(0, inplanes=512, planes=256, size=28)
    assert capsys.readouterr().out.count("Correct:") == 2
