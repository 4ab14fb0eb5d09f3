"""Tests for tutorial_lib.models: ResNet-18 ... 152 are torchvision's networks, plus their options."""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import pytest
import timm
import torch
import torchvision
from torch import nn

from tutorial_lib import models
from tutorial_lib.blocks import BasicBlock, Bottleneck
from tutorial_lib.cost import count_parameters
from tutorial_lib.models import (
    ARCH_NAMES,
    STEM_NAMES,
    ResNet,
    create_model,
    infer_options,
    load_weights,
    resnet18,
    resnet50,
    resnet101,
    stage_shapes,
)

# torchvision's published `num_params` for each depth.
EXPECTED_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}


def _randomize_norm_stats(model: nn.Module, seed: int = 1) -> None:
    """Non-trivial BatchNorm statistics and affine parameters, so eval-mode equality means something."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=generator))
                m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
                m.weight.copy_(1 + 0.1 * torch.randn(m.num_features, generator=generator))
                m.bias.copy_(0.1 * torch.randn(m.num_features, generator=generator))


@pytest.fixture(scope="module")
def torchvision_models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    built = {}
    for name in EXPECTED_PARAMS:
        model = getattr(torchvision.models, name)(weights=None)
        _randomize_norm_stats(model)
        built[name] = model.eval()
    return built


@pytest.fixture(scope="module")
def our_models(on_meta) -> dict[str, nn.Module]:
    # Structure only (counts, keys, shapes); the load test gives each one real storage and loads
    # every tensor from the torchvision model, so no random initialization is needed.
    return {name: on_meta(getattr(models, name)) for name in EXPECTED_PARAMS}


def test_arch_names() -> None:
    assert ARCH_NAMES == (
        "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "res2net50_26w_4s", "res2net101_26w_4s"
    )
    assert STEM_NAMES == ("imagenet", "small")


@pytest.mark.parametrize("name", list(EXPECTED_PARAMS))
def test_parameter_counts_equal_torchvision(name: str, our_models, torchvision_models) -> None:
    assert count_parameters(our_models[name]) == EXPECTED_PARAMS[name]
    assert count_parameters(torchvision_models[name]) == EXPECTED_PARAMS[name]


@pytest.mark.parametrize("name", list(EXPECTED_PARAMS))
def test_torchvision_weights_load_strictly_and_give_identical_outputs(
    name: str, our_models, torchvision_models
) -> None:
    ours, theirs = our_models[name], torchvision_models[name]
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in theirs.state_dict().items()
    }
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours = copy.deepcopy(ours).to_empty(device="cpu")  # real, uninitialized storage: the load fills every tensor
    ours.load_state_dict(theirs.state_dict(), strict=True)
    ours.eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = theirs(x)
        got = ours(x)
    assert (got - expected).abs().max().item() == 0.0


def test_timm_resnet101_loads_strictly_and_gives_identical_outputs(uninitialized) -> None:
    torch.manual_seed(0)
    theirs = timm.create_model("resnet101", pretrained=False)
    _randomize_norm_stats(theirs)
    theirs.eval()
    ours = uninitialized(resnet101)  # the strict load below fills every tensor
    ours.load_state_dict(theirs.state_dict(), strict=True)
    ours.eval()
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert (ours(x) - theirs(x)).abs().max().item() == 0.0


def test_stage_shapes_resnet101_at_224(meta_resnet101) -> None:
    shapes = stage_shapes(meta_resnet101, 224, batch_size=2)
    assert list(shapes) == [
        "conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc"
    ]
    assert shapes["conv1"] == (2, 64, 112, 112)
    assert shapes["maxpool"] == (2, 64, 56, 56)
    assert shapes["layer1"] == (2, 256, 56, 56)
    assert shapes["layer2"] == (2, 512, 28, 28)
    assert shapes["layer3"] == (2, 1024, 14, 14)
    assert shapes["layer4"] == (2, 2048, 7, 7)
    assert shapes["avgpool"] == (2, 2048, 1, 1)
    assert shapes["fc"] == (2, 1000)


def test_stage_shapes_small_stem_and_width(on_meta) -> None:
    model = resnet18(num_classes=10, width=16, stem="small").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    shapes = stage_shapes(model, (32, 48))
    assert shapes["conv1"] == (1, 16, 32, 48)
    assert shapes["maxpool"] == (1, 16, 32, 48)
    assert [shapes[f"layer{i}"] for i in range(1, 5)] == [
        (1, 16, 32, 48), (1, 32, 16, 24), (1, 64, 8, 12), (1, 128, 4, 6)
    ]
    assert shapes["fc"] == (1, 10)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # stage_shapes works on torchvision models too.
    assert stage_shapes(on_meta(torchvision.models.resnet18), 64)["layer4"] == (1, 512, 2, 2)


def test_options_change_the_architecture_as_documented(on_meta, meta_resnet101) -> None:
    small = resnet50(num_classes=10, width=16, stem="small", in_channels=1)
    assert small.conv1.weight.shape == (16, 1, 3, 3)
    assert small.conv1.stride == (1, 1)
    assert isinstance(small.maxpool, nn.Identity)
    assert small.fc.weight.shape == (10, 16 * 8 * 4)
    assert small(torch.randn(2, 1, 32, 32)).shape == (2, 10)
    # The small stem keeps the key names, so only shapes differ from the ImageNet stem.
    assert list(small.state_dict()) == list(resnet50(width=16).state_dict())
    v1 = on_meta(resnet50, stride_in="v1")  # strides and counts only
    assert v1.layer2[0].conv1.stride == (2, 2) and v1.layer2[0].conv2.stride == (1, 1)
    assert v1.layer1[0].conv1.stride == (1, 1)
    assert count_parameters(v1) == EXPECTED_PARAMS["resnet50"]
    gn = resnet18(norm=functools.partial(nn.GroupNorm, 8))
    assert isinstance(gn.bn1, nn.GroupNorm) and isinstance(gn.layer3[0].downsample[1], nn.GroupNorm)
    assert (gn.block, gn.stage_blocks, gn.width, gn.stem) == (BasicBlock, (2, 2, 2, 2), 64, "imagenet")
    assert on_meta(create_model, "resnet152").stage_blocks == (3, 8, 36, 3)
    assert meta_resnet101.block is Bottleneck


def test_forward_features_is_forward_without_the_head() -> None:
    torch.manual_seed(0)
    model = resnet18(num_classes=7, width=8).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        features = model.forward_features(x)
        logits = model(x)
    assert features.shape == (2, 64, 2, 2)
    assert torch.equal(model.fc(torch.flatten(model.avgpool(features), 1)), logits)


def test_zero_init_residual_makes_every_block_start_as_identity() -> None:
    torch.manual_seed(0)
    for builder, last_norm in ((resnet18, "bn2"), (resnet50, "bn3")):
        model = builder(width=8, zero_init_residual=True).eval()
        blocks = [m for m in model.modules() if isinstance(m, (BasicBlock, Bottleneck))]
        assert len(blocks) == sum(model.stage_blocks)
        branch_outputs = []
        for block in blocks:
            assert torch.count_nonzero(getattr(block, last_norm).weight) == 0
            getattr(block, last_norm).register_forward_hook(lambda m, i, out, outs=branch_outputs: outs.append(out.clone()))
        # The other norm layers keep weight 1.
        assert torch.all(model.bn1.weight == 1)
        x = torch.randn(2, 3, 64, 64)
        with torch.no_grad():
            model(x)
        assert len(branch_outputs) == len(blocks)
        assert all(torch.count_nonzero(out) == 0 for out in branch_outputs)
        # So each block outputs relu(shortcut(x)).
        block = model.layer2[1]
        inp = torch.rand(1, block.conv1.in_channels, 8, 8)
        with torch.no_grad():
            assert torch.equal(block(inp.clone()), torch.relu(inp))
    default = resnet50(width=8)
    assert all(torch.all(m.bn3.weight == 1) for m in default.modules() if isinstance(m, Bottleneck))


def test_zero_init_residual_needs_a_norm_with_a_weight() -> None:
    no_affine = functools.partial(nn.BatchNorm2d, affine=False)
    with pytest.raises(ValueError, match="needs a norm layer with a learnable weight"):
        resnet18(width=8, norm=no_affine, zero_init_residual=True)


@pytest.mark.parametrize("builder", [resnet18, resnet50])
def test_every_parameter_receives_a_gradient(builder) -> None:
    torch.manual_seed(0)
    model = builder(num_classes=5, width=8).train()
    x = torch.randn(2, 3, 32, 32)  # layer4 is 1x1: still two values per channel for BatchNorm
    loss = nn.functional.cross_entropy(model(x), torch.tensor([1, 3]))
    loss.backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: resnet18(num_classes=0), ValueError, "num_classes must be >= 1, got 0"),
        (lambda: resnet18(width=0), ValueError, "width must be >= 1, got 0"),
        (lambda: resnet18(width=16.0), TypeError, "width must be an int"),
        (lambda: resnet18(in_channels=0), ValueError, "in_channels must be >= 1"),
        (lambda: resnet18(stem="cifar"), ValueError, "unknown stem 'cifar'. Valid values: imagenet, small"),
        (lambda: resnet18(norm="bn"), ValueError, "unknown norm 'bn'; valid names are 'batch'"),
        (lambda: resnet50(stride_in="v2"), ValueError, "unknown stride_in 'v2'.* Valid values: v1, v1.5"),
        (lambda: resnet18(zero_init_residual=1), TypeError, "zero_init_residual must be True or False"),
        (lambda: resnet18(depth=18), TypeError, "unknown option.*depth.*valid options are num_classes, width"),
        (lambda: resnet18(10), TypeError, "positional"),
        (lambda: create_model("resnet100"), ValueError, "unknown arch 'resnet100'.* Valid values: resnet18, resnet34"),
        (lambda: ResNet(Bottleneck, [3, 4, 23]), ValueError, "blocks of the 4 stages"),
        (lambda: ResNet(Bottleneck, [3, 4, 0, 3]), ValueError, r"layers\[2\] must be >= 1"),
        (lambda: ResNet(nn.Conv2d, [1, 1, 1, 1]), TypeError, "BasicBlock, Bottleneck or Res2NetBottleneck"),
    ],
)
def test_bad_options_raise_clear_errors(call, error, match) -> None:
    with pytest.raises(error, match=match):
        call()


def test_wrong_input_channels_raise_a_clear_error() -> None:
    model = resnet18(width=8)
    with pytest.raises(ValueError, match=r"expected a batch of shape \(N, 3, H, W\), got \(1, 1, 32, 32\)"):
        model(torch.randn(1, 1, 32, 32))
    with pytest.raises(ValueError, match=r"add a batch dimension"):
        model(torch.randn(3, 32, 32))
    gray = resnet18(width=8, in_channels=1)
    with pytest.raises(ValueError, match="in_channels=1"):
        gray.forward_features(torch.randn(1, 3, 32, 32))


# ---------------------------------------------------------------------------------------------
# load_weights
# ---------------------------------------------------------------------------------------------


def test_load_weights_round_trips_torchvision_and_timm_formats(tmp_path: Path, uninitialized) -> None:
    torch.manual_seed(0)
    source = torchvision.models.resnet18(num_classes=10)
    _randomize_norm_stats(source)
    source.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = source(x)
    state = source.state_dict()
    files = {
        "plain.pth": state,
        "nested.pth.tar": {"state_dict": state, "epoch": 3, "arch": "resnet18"},
        "ddp.pt": {f"module.{k}": v for k, v in state.items()},
    }
    for filename, payload in files.items():
        torch.save(payload, tmp_path / filename)
        # Uninitialized storage: only a load that fills every tensor can give the expected output.
        model = load_weights(uninitialized(resnet18, num_classes=10), tmp_path / filename).eval()
        with torch.no_grad():
            assert torch.equal(model(x), expected), filename
    pytest.importorskip("safetensors")
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "model.safetensors"))
    model = load_weights(uninitialized(resnet18, num_classes=10), str(tmp_path / "model.safetensors")).eval()
    with torch.no_grad():
        assert torch.equal(model(x), expected)


def test_load_weights_mismatch_lists_keys_and_suggests_options(tmp_path: Path) -> None:
    path = tmp_path / "small.pth"
    torch.save(resnet18(num_classes=10, width=32, stem="small").state_dict(), path)
    model = resnet50()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError) as info:
        load_weights(model, path, max_listed=3)
    message = str(info.value)
    assert "does not match the model" in message
    assert "missing keys (in the model, not in the checkpoint) (" in message
    assert "\n    layer1.0.conv3.weight\n" in message  # the first key a BasicBlock lacks
    assert "unexpected keys" not in message  # every ResNet-18 key exists in ResNet-50
    assert "conv1.weight: checkpoint (32, 3, 3, 3) vs model (64, 3, 7, 7)" in message
    assert "... and" in message  # long lists are cut at max_listed
    assert "tutorial_lib.models.resnet18(num_classes=10, width=32, stem='small')" in message
    # Nothing was loaded.
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_load_weights_lists_unexpected_keys(tmp_path: Path, on_meta) -> None:
    path = tmp_path / "r50.pth"
    # load_weights compares keys and shapes before it reads a value: a meta checkpoint has both.
    torch.save(on_meta(resnet50, num_classes=10).state_dict(), path)
    with pytest.raises(ValueError) as info:
        load_weights(resnet18(num_classes=10), path)
    message = str(info.value)
    assert "unexpected keys (in the checkpoint, not in the model) (" in message
    assert "\n    layer1.0.conv3.weight\n" in message
    assert "missing keys" not in message
    assert "layer1.0.conv2.weight: checkpoint (64, 64, 3, 3) vs model (64, 64, 3, 3)" not in message
    assert "layer2.0.conv1.weight: checkpoint (128, 256, 1, 1) vs model (128, 64, 3, 3)" in message
    assert "the checkpoint looks like: tutorial_lib.models.resnet50(num_classes=10)" in message


def test_load_weights_mismatch_for_an_unnamed_depth_and_missing_stats(tmp_path: Path, on_meta) -> None:
    # Mismatches are found from keys and shapes before any value is read: meta tensors have both.
    path = tmp_path / "odd.pth"
    torch.save(ResNet(BasicBlock, [1, 1, 1, 1], num_classes=4, in_channels=1).state_dict(), path)
    with pytest.raises(ValueError, match=r"ResNet\(BasicBlock, \[1, 1, 1, 1\], num_classes=4, in_channels=1\)"):
        load_weights(on_meta(resnet18), path)
    gn_path = tmp_path / "gn.pth"
    torch.save(on_meta(resnet18, norm=functools.partial(nn.GroupNorm, 8)).state_dict(), gn_path)
    with pytest.raises(ValueError, match="only normalization statistics are missing"):
        load_weights(on_meta(resnet18), gn_path)


def test_infer_options_reads_the_checkpoint() -> None:
    assert infer_options(resnet101(num_classes=5, width=16).state_dict()) == {
        "arch": "resnet101", "width": 16, "in_channels": 3, "stem": "imagenet", "num_classes": 5
    }
    assert infer_options({}) == {}


def test_load_weights_rejects_bad_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_weights(resnet18(), tmp_path / "absent.pth")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="does not hold a state_dict"):
        load_weights(resnet18(), tmp_path / "list.pth")
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        load_weights("resnet18", tmp_path / "list.pth")


def test_notebook_04_checks(capsys, meta_resnet101) -> None:
    from tutorial_lib import checks

    checks.check_depth_function(lambda blocks, convs: 2 + convs * sum(blocks))
    with pytest.raises(AssertionError, match="ResNet-18 .*count the stem"):
        checks.check_depth_function(lambda blocks, convs: convs * sum(blocks))
    budget = dict(max_params=1_000_000, max_macs=50_000_000, image_size=32, num_classes=10)
    checks.check_small_resnet(resnet101(num_classes=10, width=8, stem="small"), **budget)
    with pytest.raises(AssertionError, match="try a smaller width"):
        checks.check_small_resnet(resnet101(num_classes=10, width=16, stem="small"), **budget)
    with pytest.raises(AssertionError, match="keep the architecture a ResNet-101"):
        checks.check_small_resnet(resnet50(num_classes=10, width=8, stem="small"), **budget)
    with pytest.raises(AssertionError, match="set num_classes=10"):
        checks.check_small_resnet(resnet101(num_classes=9, width=8, stem="small"), **budget)
    predicted = {"layer1": (256, 40, 40), "layer2": (512, 20, 20), "layer3": (1024, 10, 10), "layer4": (2048, 5, 5)}
    checks.check_stage_shapes(predicted, model=meta_resnet101, image_size=160)
    with pytest.raises(AssertionError, match="layer4: .* is not its output shape"):
        checks.check_stage_shapes({**predicted, "layer4": (2048, 4, 4)}, model=meta_resnet101, image_size=160)
    assert capsys.readouterr().out.count("Correct:") == 3
