"""Tests for issue 14's pieces: GeM and the ``pool`` option, scale channels, the multi-level head, msresnet101.

Every network here is tiny (width 4-8, 16-64 px inputs, batch 2), so the file runs in seconds.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from tutorial_lib.cost import count_flops, count_parameters
from tutorial_lib.models import (
    OPTION_NAMES,
    POOL_NAMES,
    GeM,
    create_model,
    global_pool,
    infer_options,
    load_weights,
    resnet18,
    resnet50,
    resnet101,
)
from tutorial_lib.multiscale import (
    HEAD_NAMES,
    SCALE_MODE_NAMES,
    SCALE_POOL_NAMES,
    MultiLevelResNet,
    PerScaleBatchNorm2d,
    ScaleChannelNetwork,
    convert_to_per_scale_bn,
    msresnet101,
    resize_batch,
)
from tutorial_lib.recipes import build_run, get_recipe, with_overrides


def _positive(*shape: int, seed: int = 0, low: float = 0.1) -> torch.Tensor:
    """Values in [low, 1): post-ReLU-like features with no exact zeros, so GeM's clamp never acts."""
    generator = torch.Generator().manual_seed(seed)
    return low + (1 - low) * torch.rand(*shape, generator=generator)


def _images(n: int = 2, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _tiny(num_classes: int = 5) -> nn.Module:
    torch.manual_seed(0)
    return resnet18(num_classes=num_classes, width=4, stem="small")


def test_names() -> None:
    assert POOL_NAMES == ("avg", "max", "gem")
    assert OPTION_NAMES[-1] == "pool"
    assert SCALE_POOL_NAMES == ("max", "avg")
    assert SCALE_MODE_NAMES == ("rescale", "foveated")
    assert HEAD_NAMES == ("single", "multi-level")


# ---------------------------------------------------------------------------------------------
# GeM and the pool option
# ---------------------------------------------------------------------------------------------


def test_gem_with_p_1_is_average_pooling() -> None:
    x = _positive(2, 6, 5, 7)
    out = GeM(p=1.0)(x)
    assert out.shape == (2, 6, 1, 1)
    torch.testing.assert_close(out, F.adaptive_avg_pool2d(x, 1), rtol=1e-6, atol=0.0)


@pytest.mark.parametrize("p", [8.0, 32.0, 128.0])
def test_gem_with_large_p_tends_to_max_pooling(p: float) -> None:
    # For x >= 0 and n positions: max(x) * n**(-1/p) <= GeM_p(x) <= max(x); the gap closes as p grows.
    x = _positive(2, 6, 4, 4, low=0.5).double()
    gem = GeM(p=p).double()(x)
    top = F.adaptive_max_pool2d(x, 1)
    lower = top * 16 ** (-1 / p)
    assert torch.all(gem <= top * (1 + 1e-12)) and torch.all(gem >= lower * (1 - 1e-12))
    assert (top - gem).max().item() <= top.max().item() * (1 - 16 ** (-1 / p))


def test_gem_starts_at_p_3_clamps_at_eps_and_learns_p() -> None:
    gem = GeM()
    assert gem.p.shape == (1,) and gem.p.item() == 3.0 and gem.p.requires_grad
    assert [name for name, _ in gem.named_parameters()] == ["p"]
    # Zeros are clamped to eps before the power: the output and the gradients stay finite.
    x = torch.zeros(1, 2, 3, 3)
    x[0, 0, 1, 1] = 1.0
    x.requires_grad_(True)
    out = gem(x)
    torch.testing.assert_close(out[0, 1, 0, 0], torch.tensor(1e-6), rtol=1e-5, atol=0.0)
    out.sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(gem.p.grad).all() and gem.p.grad.item() != 0.0
    # One optimizer step moves p.
    torch.optim.SGD(gem.parameters(), lr=0.1).step()
    assert gem.p.item() != 3.0


def test_resnet_pool_option_builds_the_named_pooling() -> None:
    assert isinstance(_tiny().avgpool, nn.AdaptiveAvgPool2d)
    assert isinstance(resnet18(width=4, pool="max").avgpool, nn.AdaptiveMaxPool2d)
    assert isinstance(resnet18(width=4, pool="gem").avgpool, GeM)
    assert [type(global_pool(name)) for name in POOL_NAMES] == [nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, GeM]
    torch.manual_seed(0)
    model = resnet18(num_classes=3, width=4, stem="small", pool="max").eval()
    x = _images()
    with torch.no_grad():
        expected = model.fc(torch.flatten(F.adaptive_max_pool2d(model.forward_features(x), 1), 1))
        assert torch.equal(model(x), expected)


def test_gem_resnet_trains_p_with_the_rest() -> None:
    torch.manual_seed(0)
    model = resnet18(num_classes=3, width=4, stem="small", pool="gem").train()
    F.cross_entropy(model(_images()), torch.tensor([0, 2])).backward()
    assert model.avgpool.p.grad is not None and model.avgpool.p.grad.abs().item() > 0


@pytest.mark.parametrize("pool", ["avg", "max"])
def test_avg_and_max_keep_torchvision_resnet101_state_dict(pool: str, on_meta) -> None:
    theirs = on_meta(torchvision.models.resnet101, weights=None)
    ours = on_meta(resnet101, pool=pool)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    ours.load_state_dict(theirs.state_dict(), strict=True)


def test_gem_checkpoint_has_one_more_parameter_and_reloads(tmp_path: Path) -> None:
    torch.manual_seed(0)
    gem = resnet18(num_classes=3, width=4, stem="small", pool="gem")
    plain = resnet18(num_classes=3, width=4, stem="small")
    assert count_parameters(gem) == count_parameters(plain) + 1
    assert set(gem.state_dict()) - set(plain.state_dict()) == {"avgpool.p"}
    with torch.no_grad():
        gem.avgpool.p.fill_(2.5)
    path = tmp_path / "gem.pth"
    torch.save(gem.state_dict(), path)

    assert infer_options(gem.state_dict()) == {
        "arch": "resnet18", "width": 4, "in_channels": 3, "stem": "small", "num_classes": 3, "pool": "gem"
    }
    assert "pool" not in infer_options(plain.state_dict())  # avg and max leave no trace
    rebuilt = load_weights(create_model(**infer_options(gem.state_dict())), path)
    assert rebuilt.avgpool.p.item() == 2.5
    with pytest.raises(ValueError) as info:
        load_weights(plain, path)
    message = str(info.value)
    assert "unexpected keys (in the checkpoint, not in the model) (1):\n    avgpool.p" in message
    assert "tutorial_lib.models.resnet18(num_classes=3, width=4, stem='small', pool='gem')" in message


def test_recipes_accept_the_pool_option() -> None:
    recipe = with_overrides(get_recipe("cpu-baseline"), {"model.pool": "gem", "model.width": 4})
    model, _ = build_run(recipe, num_classes=10)
    assert isinstance(model.avgpool, GeM)


# ---------------------------------------------------------------------------------------------
# ScaleChannelNetwork
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", SCALE_MODE_NAMES)
@pytest.mark.parametrize("pool", SCALE_POOL_NAMES)
def test_one_channel_at_scale_1_is_the_bare_network(mode: str, pool: str) -> None:
    net = _tiny().eval()
    scn = ScaleChannelNetwork(net, (1.0,), pool=pool, mode=mode).eval()
    x = _images()
    with torch.no_grad():
        assert torch.equal(scn(x), net(x))
    assert list(scn.state_dict()) == [f"net.{k}" for k in net.state_dict()]
    assert count_parameters(scn) == count_parameters(net)


@pytest.mark.parametrize("mode", SCALE_MODE_NAMES)
def test_pooling_over_scales_is_max_or_mean_of_channel_logits(mode: str) -> None:
    net = _tiny().eval()
    x = _images()
    with torch.no_grad():
        stack = ScaleChannelNetwork(net, (0.5, 1.0, 2.0), mode=mode).channel_logits(x)
        assert stack.shape == (3, 2, 5)
        assert torch.equal(stack[1], net(x))
        assert torch.equal(ScaleChannelNetwork(net, (0.5, 1.0, 2.0), pool="max", mode=mode)(x), stack.amax(dim=0))
        assert torch.equal(ScaleChannelNetwork(net, (0.5, 1.0, 2.0), pool="avg", mode=mode)(x), stack.mean(dim=0))


def test_rescale_channels_see_the_whole_image_at_each_factor() -> None:
    scn = ScaleChannelNetwork(_tiny(), (0.5, 1.0, 2.0, 0.75))
    x = _images()
    views = scn.channel_inputs(x)
    assert scn.channel_sizes(32) == (16, 32, 64, 24)
    assert [tuple(v.shape) for v in views] == [(2, 3, s, s) for s in (16, 32, 64, 24)]
    assert views[1] is x
    assert torch.equal(views[0], resize_batch(x, 16)) and torch.equal(views[2], resize_batch(x, 64))


def test_foveated_channels_see_a_central_window_of_side_h_over_s_at_the_input_size() -> None:
    scn = ScaleChannelNetwork(_tiny(), (0.5, 1.0, 2.0, 4.0), mode="foveated")
    x = _images()
    views = scn.channel_inputs(x)
    assert scn.channel_sizes(32) == (32, 32, 32, 32)
    assert all(v.shape == x.shape for v in views)
    assert torch.equal(views[1], x)
    # s = 2: the central 16 px (rows and columns 8..23), magnified twice; s = 4: the central 8 px.
    assert torch.equal(views[2], resize_batch(x[..., 8:24, 8:24], 32))
    assert torch.equal(views[3], resize_batch(x[..., 12:20, 12:20], 32))
    # s = 0.5: a 64 px window, the image in its middle with 16 px of zeros around, shrunk to 32.
    assert torch.equal(views[0], resize_batch(F.pad(x, (16, 16, 16, 16)), 32))


def test_gradients_reach_the_shared_weights_through_max_and_mean() -> None:
    for pool in SCALE_POOL_NAMES:
        scn = ScaleChannelNetwork(_tiny(), (0.5, 1.0, 2.0), pool=pool).train()
        F.cross_entropy(scn(_images()), torch.tensor([1, 3])).backward()
        missing = [name for name, p in scn.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
        assert missing == [], pool
    # With the mean, the shared weights' gradient is the mean of the channels' gradients.
    net = _tiny().eval()
    scn = ScaleChannelNetwork(net, (0.5, 2.0), pool="avg").eval()
    x = _images()
    scn(x).sum().backward()
    pooled = net.conv1.weight.grad.clone()
    per_channel = []
    for view in scn.channel_inputs(x):
        net.zero_grad()
        net(view).sum().backward()
        per_channel.append(net.conv1.weight.grad.clone())
    torch.testing.assert_close(pooled, (per_channel[0] + per_channel[1]) / 2, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("mode", SCALE_MODE_NAMES)
def test_macs_are_the_sum_of_the_channels_macs(mode: str) -> None:
    net = _tiny()
    scn = ScaleChannelNetwork(net, (0.5, 1.0, 2.0), mode=mode)
    total = count_flops(scn, 32)["macs"]
    assert total == sum(count_flops(net, side)["macs"] for side in scn.channel_sizes(32))
    if mode == "foveated":
        assert total == 3 * count_flops(net, 32)["macs"]


def test_per_scale_batchnorm_composes_with_rescale_channels() -> None:
    scn = ScaleChannelNetwork(_tiny(), (0.5, 1.0, 2.0))
    convert_to_per_scale_bn(scn.net, scn.channel_sizes(32))
    scn.train()
    scn(_images())
    layers = [m for m in scn.modules() if isinstance(m, PerScaleBatchNorm2d)]
    assert layers and all(m.scales == (16, 32, 64) for m in layers)
    # Each channel's forward updated its own statistics, once.
    assert all(int(bn.num_batches_tracked) == 1 for m in layers for bn in m.bns.values())


# ---------------------------------------------------------------------------------------------
# MultiLevelResNet
# ---------------------------------------------------------------------------------------------


def test_multi_level_head_widths_keys_and_output() -> None:
    torch.manual_seed(0)
    plain = resnet50(num_classes=7, width=4, stem="small")
    plain_keys = list(plain.state_dict())
    model = MultiLevelResNet(plain)
    # Bottleneck stages at width 4: layer2, layer3, layer4 have 8*4, 16*4, 32*4 channels.
    assert model.fc.in_features == 32 + 64 + 128 and model.fc.out_features == 7
    assert isinstance(model.net.fc, nn.Identity) and isinstance(model.net.avgpool, nn.Identity)
    assert list(model.state_dict()) == [f"net.{k}" for k in plain_keys if not k.startswith("fc.")] + ["fc.weight", "fc.bias"]
    assert model(_images(size=32)).shape == (2, 7)
    levels = model.forward_levels(_images(size=32))
    assert [tuple(v.shape[1:]) for v in levels.values()] == [(16, 32, 32), (32, 16, 16), (64, 8, 8), (128, 4, 4)]
    gem = MultiLevelResNet(resnet18(width=4), ("layer3", "layer4"), num_classes=2, pool="gem")
    assert [k for k in gem.state_dict() if not k.startswith("net.")] == [
        "pools.layer3.p", "pools.layer4.p", "fc.weight", "fc.bias"
    ]
    # torchvision's ResNet is a valid trunk too.
    assert MultiLevelResNet(torchvision.models.resnet18(num_classes=3))(_images(size=32)).shape == (2, 3)


def test_multi_level_trunk_loads_a_plain_resnet_strictly() -> None:
    torch.manual_seed(0)
    source = resnet18(num_classes=5, width=4, stem="small", pool="gem")
    torch.manual_seed(1)
    model = MultiLevelResNet(resnet18(num_classes=5, width=4, stem="small"))
    assert model.load_trunk(source.state_dict()) is model
    state = model.state_dict()
    assert all(torch.equal(state[f"net.{k}"], v) for k, v in source.state_dict().items() if not k.startswith(("fc.", "avgpool.")))
    with pytest.raises(RuntimeError, match="Missing key"):
        model.load_trunk({k: v for k, v in source.state_dict().items() if k != "conv1.weight"})


def test_multi_level_with_only_layer4_is_the_plain_resnet() -> None:
    torch.manual_seed(0)
    plain = resnet18(num_classes=5, width=8, stem="small").eval()
    model = MultiLevelResNet(copy.deepcopy(plain), ("layer4",)).eval()
    model.fc.load_state_dict(plain.fc.state_dict())
    x = _images()
    with torch.no_grad():
        assert torch.equal(model(x), plain(x))


# ---------------------------------------------------------------------------------------------
# msresnet101
# ---------------------------------------------------------------------------------------------


def test_msresnet101_parameter_counts(on_meta) -> None:
    base = count_parameters(on_meta(resnet101, num_classes=10, width=4, stem="small"))
    # Bottleneck channels at width 4: C3 = 32, C4 = 64, C5 = 128; the C5 classifier is the plain one.
    assert count_parameters(on_meta(msresnet101, width=4)) == base
    assert count_parameters(on_meta(msresnet101, width=4, pool="gem")) == base + 1
    assert count_parameters(on_meta(msresnet101, width=4, head="multi-level")) == base + (32 + 64) * 10
    assert count_parameters(on_meta(msresnet101, width=4, head="multi-level", pool="gem")) == base + (32 + 64) * 10 + 3
    assert count_parameters(on_meta(msresnet101, width=4, head="multi-level", levels=("layer4",))) == base
    ml = on_meta(msresnet101, width=4, head="multi-level", levels=("layer3", "layer4"), mode="foveated", scales=(1.0, 2.0))
    assert count_parameters(ml) == base + 64 * 10
    assert (ml.scales, ml.mode, ml.pool, ml.net.levels) == ((1.0, 2.0), "foveated", "max", ("layer3", "layer4"))


def test_msresnet101_composes_resnet101_and_runs() -> None:
    torch.manual_seed(0)
    model = msresnet101(width=4, num_classes=3, scales=(0.5, 1.0), scale_pool="avg")
    assert isinstance(model, ScaleChannelNetwork) and model.net.stage_blocks == (3, 4, 23, 3)
    assert list(model.state_dict())[:2] == ["net.conv1.weight", "net.bn1.weight"]
    model.eval()
    with torch.no_grad():
        assert model(_images(size=32)).shape == (2, 3)
    ml = msresnet101(width=4, head="multi-level")
    assert list(ml.state_dict())[0] == "net.net.conv1.weight" and list(ml.state_dict())[-1] == "net.fc.bias"
    assert msresnet101(width=4, norm="group").net.bn1.__class__ is nn.GroupNorm


# ---------------------------------------------------------------------------------------------
# Bad arguments
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: GeM(p=0), ValueError, "p must be > 0, got 0"),
        (lambda: GeM(p="3"), TypeError, "p must be a number"),
        (lambda: GeM(eps=-1e-6), ValueError, "eps must be > 0"),
        (lambda: resnet18(pool="mean"), ValueError, "unknown pool 'mean'.* Valid values: avg, max, gem"),
        (lambda: resnet18(pool=None), TypeError, "pool must be a string, one of avg, max, gem"),
        (lambda: global_pool("gem2"), ValueError, "unknown pool 'gem2'. Did you mean 'gem'"),
        (lambda: ScaleChannelNetwork("net"), TypeError, "net must be a torch.nn.Module"),
        (lambda: ScaleChannelNetwork(_tiny(), 2.0), TypeError, r"scales must be a sequence of scale factors such as \(0.5, 1.0, 2.0\)"),
        (lambda: ScaleChannelNetwork(_tiny(), ()), ValueError, "scales is empty"),
        (lambda: ScaleChannelNetwork(_tiny(), (1.0, 0)), ValueError, r"scales\[1\] must be > 0, got 0"),
        (lambda: ScaleChannelNetwork(_tiny(), (1.0, "2")), TypeError, r"scales\[1\] must be a number"),
        (lambda: ScaleChannelNetwork(_tiny(), (1.0, 2.0, 1.0)), ValueError, "scales repeats 1;"),
        (lambda: ScaleChannelNetwork(_tiny(), pool="mean"), ValueError, "unknown pool 'mean'.* Valid values: max, avg"),
        (lambda: ScaleChannelNetwork(_tiny(), mode="fovea"), ValueError,
         "unknown mode 'fovea'. Did you mean 'foveated'.* Valid values: rescale, foveated"),
        (lambda: ScaleChannelNetwork(_tiny())(torch.zeros(2, 3, 32, 16)), ValueError, "square images .H == W., got 32x16"),
        (lambda: ScaleChannelNetwork(_tiny())(torch.zeros(3, 32, 32)), ValueError, "unsqueeze"),
        (lambda: ScaleChannelNetwork(_tiny()).channel_logits([1.0]), TypeError, "expected a torch.Tensor"),
        (lambda: ScaleChannelNetwork(_tiny()).channel_sizes(0), ValueError, "size must be >= 1"),
        (lambda: MultiLevelResNet(nn.Linear(2, 2)), ValueError, "net has no conv1, bn1, relu, maxpool, layer1"),
        (lambda: MultiLevelResNet(None), TypeError, "net must be a torch.nn.Module"),
        (lambda: MultiLevelResNet(_tiny(), "layer4"), TypeError, "levels must be a sequence of stage names"),
        (lambda: MultiLevelResNet(_tiny(), ()), ValueError, "levels is empty"),
        (lambda: MultiLevelResNet(_tiny(), ("layer5",)), ValueError,
         r"unknown levels\[0\] 'layer5'.* Valid values: layer1, layer2, layer3, layer4"),
        (lambda: MultiLevelResNet(_tiny(), ("layer4", "layer4")), ValueError, "levels repeats a stage"),
        (lambda: MultiLevelResNet(_tiny(), pool="sum"), ValueError, "unknown pool 'sum'.* Valid values: avg, max, gem"),
        (lambda: MultiLevelResNet(_tiny(), num_classes=0), ValueError, "num_classes must be >= 1, got 0"),
        (lambda: MultiLevelResNet(_tiny())(torch.zeros(1, 1, 32, 32)), ValueError, r"expected a batch of shape \(N, 3, H, W\)"),
        (lambda: MultiLevelResNet(_tiny()).load_trunk([]), TypeError, "state_dict must be a mapping"),
        (lambda: msresnet101(head="multi"), ValueError, "unknown head 'multi'.* Valid values: single, multi-level"),
        (lambda: msresnet101(scale_pool="sum"), ValueError, "unknown scale_pool 'sum'.* Valid values: max, avg"),
        (lambda: msresnet101(mode="zoom"), ValueError, "unknown mode 'zoom'.* Valid values: rescale, foveated"),
        (lambda: msresnet101(pool="mean"), ValueError, "unknown pool 'mean'.* Valid values: avg, max, gem"),
        (lambda: msresnet101(scales=()), ValueError, "scales is empty"),
        (lambda: msresnet101(levels=("layer4",)), ValueError, "levels applies only to head='multi-level'"),
        (lambda: msresnet101(head="multi-level", levels=("C5",)), ValueError, r"unknown levels\[0\] 'C5'"),
        (lambda: msresnet101(width=0), ValueError, "width must be >= 1, got 0"),
        (lambda: msresnet101(depth=101), TypeError, "unknown option.*depth.*valid options are num_classes, width"),
        (lambda: msresnet101(10), TypeError, "positional"),
    ],
)
def test_bad_arguments_raise_clear_errors(call, error, match) -> None:
    with pytest.raises(error, match=match):
        call()


def test_reprs_name_the_settings(on_meta) -> None:
    assert repr(GeM()) == "GeM(p=3, eps=1e-06)"
    assert "(avgpool): GeM(p=?, eps=1e-06)" in repr(on_meta(resnet18, pool="gem"))
    assert "scales=(0.5, 1.0, 2.0), pool='max', mode='rescale'" in repr(ScaleChannelNetwork(_tiny()))
    assert math.isclose(GeM(p=2.5).p.item(), 2.5)


# ---------------------------------------------------------------------------------------------
# Per-channel BatchNorm statistics, and msresnet101 in the recipes and the CLI
# ---------------------------------------------------------------------------------------------


def _digits(n: int = 24, size: int = 32):
    from tutorial_lib.data import load_dataset

    return load_dataset("multiscale-digits", "train", image_size=size, num_samples=n)


def test_recalibrated_channels_give_each_channel_the_statistics_of_its_own_side() -> None:
    from tutorial_lib.multiscale import Resized, recalibrate_at, recalibrated_channels

    data = _digits()
    scn = ScaleChannelNetwork(_tiny(), (0.5, 1.0), pool="max")
    before = copy.deepcopy(scn.state_dict())
    result = recalibrated_channels(scn, data, 32, num_batches=3, batch_size=8)
    assert isinstance(result, Resized) and result.size == 32 and not result.training
    for key, value in scn.state_dict().items():  # the original is untouched
        assert torch.equal(value, before[key]), key
    x = _images(3, 32, seed=1)
    with torch.no_grad():
        logits = result(x)
        # Each channel equals a plain copy recalibrated at that channel's side, applied to that channel's input.
        expected = []
        for scale in (0.5, 1.0):
            plain = recalibrate_at(copy.deepcopy(scn.net), data, round(32 * scale), num_batches=3, batch_size=8).eval()
            expected.append(plain(resize_batch(x, round(32 * scale))))
    torch.testing.assert_close(logits, torch.stack(expected).amax(0), rtol=1e-5, atol=1e-5)


def test_recalibrated_channels_refuse_what_they_cannot_calibrate() -> None:
    from tutorial_lib.multiscale import recalibrated_channels

    data = _digits(8)
    with pytest.raises(TypeError, match="must be a ScaleChannelNetwork"):
        recalibrated_channels(_tiny(), data, 32)
    with pytest.raises(ValueError, match="foveated channels"):
        recalibrated_channels(ScaleChannelNetwork(_tiny(), (0.5, 1.0), mode="foveated"), data, 32)
    with pytest.raises(ValueError, match="repeat"):
        recalibrated_channels(ScaleChannelNetwork(_tiny(), (1.0, 1.01)), data, 32)
    per_scale = ScaleChannelNetwork(_tiny(), (0.5, 1.0))
    convert_to_per_scale_bn(per_scale.net, (16, 32))
    with pytest.raises(ValueError, match="already has per-scale BatchNorm"):
        recalibrated_channels(per_scale, data, 32)


def test_cpu_msresnet101_recipe_builds_the_scale_channel_resnet101() -> None:
    from tutorial_lib.multiscale import Resized

    recipe = get_recipe("cpu-msresnet101")
    with torch.device("meta"):
        model, evaluated = build_run(recipe, num_classes=10)
    assert isinstance(model, ScaleChannelNetwork)
    assert model.scales == tuple(recipe["model"]["scales"]) and model.pool == recipe["model"]["scale_pool"]
    assert [len(stage) for stage in (model.net.layer1, model.net.layer2, model.net.layer3, model.net.layer4)] == [3, 4, 23, 3]
    assert isinstance(evaluated, Resized) and evaluated.size == recipe["eval"]["test_sizes"][0]
    # Test-time channels share the trained network (no copy), with the evaluation's factors.
    assert evaluated.model.net is model.net and evaluated.model.scales == tuple(recipe["eval"]["scales"])


def test_scale_channel_settings_need_msresnet101() -> None:
    with pytest.raises(ValueError, match="applies to arch 'msresnet101' only"):
        build_run(with_overrides(get_recipe("cpu-baseline"), {"model.scales": [0.5, 1.0]}), num_classes=10)
    with pytest.raises(ValueError, match="applies to arch 'msresnet101' only"):
        build_run(with_overrides(get_recipe("cpu-baseline"), {"eval.scales": [0.5, 1.0]}), num_classes=10)
    with pytest.raises(ValueError, match="exactly one test size"):
        with torch.device("meta"):
            build_run(with_overrides(get_recipe("cpu-msresnet101"), {"eval.test_sizes": [32, 64]}), num_classes=10)


def test_per_scale_bn_of_msresnet101_has_one_statistics_set_per_channel_side() -> None:
    recipe = with_overrides(get_recipe("cpu-msresnet101"), {"model.per_scale_bn": True, "fit.train_sizes": [32, 48]})
    with torch.device("meta"):
        model, _ = build_run(recipe, num_classes=10)
    layer = next(m for m in model.modules() if isinstance(m, PerScaleBatchNorm2d))
    expected = sorted({round(size * s) for size in (32, 48) for s in recipe["model"]["scales"]})
    assert list(layer.scales) == expected


def test_inference_macs_counts_every_test_size_and_channel() -> None:
    from tutorial_lib.recipes import inference_macs

    base = inference_macs(get_recipe("cpu-baseline"))
    assert base == count_flops(resnet18(num_classes=10, width=16, stem="small"), 32)["macs"]
    # Four test sizes: the sum of four passes; three channels of msresnet101: the sum of three.
    multi = get_recipe("cpu-multiscale")
    net = resnet18(num_classes=10, width=16, stem="small")
    assert inference_macs(multi) == sum(count_flops(net, s)["macs"] for s in multi["eval"]["test_sizes"])
    ms = get_recipe("cpu-msresnet101")
    trunk = resnet101(num_classes=10, width=4, stem="small", pool="gem")
    assert inference_macs(ms) == sum(count_flops(trunk, round(64 * s))["macs"] for s in ms["eval"]["scales"])
