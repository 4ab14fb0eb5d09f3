"""Every public function that checks its arguments with ``tutorial_lib._validate`` follows one rule:
``TypeError`` for a value of the wrong type, ``ValueError`` for a right-typed value that is not
allowed, and a message that names the argument. Plus the Res2Net checkpoint inference.

Models are built on the meta device wherever only keys and shapes matter, so this file runs in
seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tutorial_lib import blocks, cost, data, env, layers, models, multiscale

# (call, exception, match): each call must raise exactly that exception with a matching message.
BAD_CALLS = {
    # layers
    "conv3x3 float channels": (lambda: layers.conv3x3(8.0, 8), TypeError, "in_planes must be an integer"),
    "conv3x3 zero groups": (lambda: layers.conv3x3(8, 8, groups=0), ValueError, "groups must be >= 1, got 0"),
    "conv1x1 str stride": (lambda: layers.conv1x1(8, 8, "2"), TypeError, "stride must be an integer"),
    "conv1x1 zero out": (lambda: layers.conv1x1(8, 0), ValueError, "out_planes must be >= 1"),
    "conv_output_size float kernel": (lambda: layers.conv_output_size(8, 3.0), TypeError, "kernel_size must be an integer"),
    "conv_output_size bad dilation": (lambda: layers.conv_output_size(8, 3, dilation=(1, 0)), ValueError, r"dilation\[1\] must be >= 1"),
    "conv_output_size int ceil_mode": (lambda: layers.conv_output_size(8, 3, ceil_mode=1), TypeError, "ceil_mode must be True or False"),
    "receptive_field str axis": (lambda: layers.receptive_field(nn.Conv2d(1, 1, 3), axis="0"), TypeError, "axis must be an integer"),
    "receptive_field axis 2": (lambda: layers.receptive_field(nn.Conv2d(1, 1, 3), axis=2), ValueError, r"axis must be 0 \(height\) or 1"),
    "measure float size": (lambda: layers.measure_receptive_field(nn.Conv2d(1, 1, 3), 9.0), TypeError, "input_size must be an integer"),
    "measure 3 sizes": (lambda: layers.measure_receptive_field(nn.Conv2d(1, 1, 3), (9, 9, 9)), ValueError, "input_size must be an int or a pair"),
    "measure zero height": (lambda: layers.measure_receptive_field(nn.Conv2d(1, 1, 3), (0, 9)), ValueError, r"input_size\[0\] must be >= 1"),
    "measure float trials": (lambda: layers.measure_receptive_field(nn.Conv2d(1, 1, 3), 9, trials=1.5), TypeError, "trials must be an integer"),
    "measure negative seed": (lambda: layers.measure_receptive_field(nn.Conv2d(1, 1, 3), 9, seed=-1), ValueError, "seed must be >= 0"),
    "measure float position": (lambda: layers.measure_receptive_field(nn.Conv2d(1, 1, 3), 9, position=(1.0, 2)), TypeError, r"position\[0\] must be an integer"),
    "measure negative position": (lambda: layers.measure_receptive_field(nn.Conv2d(1, 1, 3), 9, position=(0, -1)), ValueError, r"position\[1\] must be >= 0"),
    # blocks
    "BasicBlock float planes": (lambda: blocks.BasicBlock(8, 8.0), TypeError, "planes must be an integer"),
    "BasicBlock zero stride": (lambda: blocks.BasicBlock(8, 8, stride=0), ValueError, "stride must be >= 1"),
    "Bottleneck int stride_in": (lambda: blocks.Bottleneck(32, 8, stride_in=1), TypeError, "stride_in must be a string"),
    "Bottleneck stride_in v2": (lambda: blocks.Bottleneck(32, 8, stride_in="v2"), ValueError, r"unknown stride_in 'v2'.*Valid values: v1, v1.5"),
    "Res2Net str scale": (lambda: blocks.Res2NetBottleneck(64, 16, scale="4"), TypeError, "scale must be an integer"),
    "Res2Net scale 1": (lambda: blocks.Res2NetBottleneck(64, 16, scale=1), ValueError, "scale must be >= 2, got 1"),
    "Res2Net bool base_width": (lambda: blocks.Res2NetBottleneck(64, 16, base_width=True), TypeError, "base_width must be an integer"),
    "projection float planes": (lambda: blocks.projection(8, 16.0), TypeError, "out_planes must be an integer"),
    "projection zero stride": (lambda: blocks.projection(8, 16, 0), ValueError, "stride must be >= 1"),
    # models
    "ResNet layers not a list": (lambda: models.ResNet(blocks.BasicBlock, 18), TypeError, "layers must be a list or tuple"),
    "ResNet 3 stages": (lambda: models.ResNet(blocks.BasicBlock, (2, 2, 2)), ValueError, "blocks of the 4 stages"),
    "ResNet float stage": (lambda: models.ResNet(blocks.BasicBlock, (2, 2.0, 2, 2)), TypeError, r"layers\[1\] must be an integer"),
    "resnet18 int stem": (lambda: models.resnet18(stem=1), TypeError, "stem must be a string"),
    "resnet18 stem typo": (lambda: models.resnet18(stem="smal"), ValueError, r"unknown stem 'smal'. Did you mean 'small'\?"),
    "resnet50 None stride_in": (lambda: models.resnet50(stride_in=None), TypeError, "stride_in must be a string"),
    "resnet18 int zero_init": (lambda: models.resnet18(zero_init_residual=0), TypeError, "zero_init_residual must be True or False"),
    "resnet18 str classes": (lambda: models.resnet18(num_classes="10"), TypeError, "num_classes must be an integer"),
    "create_model int arch": (lambda: models.create_model(101), TypeError, "arch must be a string"),
    "create_model arch typo": (lambda: models.create_model("resnet10l"), ValueError, r"unknown arch 'resnet10l'. Did you mean 'resnet101'\?"),
    "stage_shapes float size": (lambda: models.stage_shapes(nn.Conv2d(3, 3, 1), 32.0), TypeError, "image_size must be an integer"),
    "stage_shapes 3 sizes": (lambda: models.stage_shapes(nn.Conv2d(3, 3, 1), (32, 32, 3)), ValueError, "image_size must be an int or a pair"),
    "stage_shapes zero batch": (lambda: models.stage_shapes(nn.Conv2d(3, 3, 1), 32, batch_size=0), ValueError, "batch_size must be >= 1"),
    "infer_options list": (lambda: models.infer_options([("fc.weight", torch.zeros(1, 1))]), TypeError, "state_dict must be a mapping"),
    "load_weights bytes path": (lambda: models.load_weights(nn.Linear(1, 1), b"x.pth"), TypeError, "path must be a str or os.PathLike"),
    "load_weights float max_listed": (lambda: models.load_weights(nn.Linear(1, 1), "x.pth", max_listed=2.5), TypeError, "max_listed must be an integer"),
    "load_weights zero max_listed": (lambda: models.load_weights(nn.Linear(1, 1), "x.pth", max_listed=0), ValueError, "max_listed must be >= 1"),
    # cost
    "count_parameters int flag": (lambda: cost.count_parameters(nn.Linear(1, 1), 1), TypeError, "trainable_only must be True or False"),
    "count_flops float size": (lambda: cost.count_flops(nn.Conv2d(3, 3, 1), (32.0, 32)), TypeError, r"inputs\[0\] must be an integer"),
    "count_flops zero size": (lambda: cost.count_flops(nn.Conv2d(3, 3, 1), (3, 0, 32)), ValueError, "positive ints"),
    "count_flops str per_module": (lambda: cost.count_flops(nn.Conv2d(3, 3, 1), 8, per_module="yes"), TypeError, "per_module must be True or False"),
    "count_flops int meta": (lambda: cost.count_flops(nn.Conv2d(3, 3, 1), 8, meta=0), TypeError, "meta must be True or False"),
    # multiscale
    "check_sizes float entry": (lambda: multiscale.check_sizes((32, 48.0)), TypeError, r"sizes\[1\] must be an integer"),
    "check_sizes small entry": (lambda: multiscale.check_sizes((32, 4)), ValueError, r"sizes\[1\] must be >= 8, got 4"),
    "RandomResolution float seed": (lambda: multiscale.RandomResolution((32,), seed=0.5), TypeError, "seed must be an integer"),
    "RandomResolution float step": (lambda: multiscale.RandomResolution((32,))(1.0), TypeError, "step must be an integer"),
    "RandomResolution negative step": (lambda: multiscale.RandomResolution((32,))(-1), ValueError, "step must be >= 0"),
    "Progressive str total": (lambda: multiscale.ProgressiveResolution((32, 64), total_steps="9"), TypeError, "total_steps must be an integer"),
    "Progressive negative step": (lambda: multiscale.ProgressiveResolution((32, 64), 9)(-1), ValueError, "step must be >= 0"),
    "resize_batch array": (lambda: multiscale.resize_batch(np.zeros((1, 1, 8, 8)), 4), TypeError, "images must be a torch.Tensor"),
    "resize_batch float size": (lambda: multiscale.resize_batch(torch.zeros(1, 1, 8, 8), 4.0), TypeError, "size must be an integer"),
    "resize_batch zero size": (lambda: multiscale.resize_batch(torch.zeros(1, 1, 8, 8), 0), ValueError, "size must be >= 1"),
    "Resized str size": (lambda: multiscale.Resized(nn.Identity(), "32"), TypeError, "size must be an integer"),
    "Resized zero size": (lambda: multiscale.Resized(nn.Identity(), 0), ValueError, "size must be >= 1"),
    "MultiScaleTTA int flip": (lambda: multiscale.MultiScaleTTA(nn.Identity(), (32,), flip=1), TypeError, "flip must be True or False"),
    "recalibrated_tta str flip": (lambda: multiscale.recalibrated_tta(nn.Identity(), None, (32,), flip="no"), TypeError, "flip must be True or False"),
    "recalibrated_tta small size": (lambda: multiscale.recalibrated_tta(nn.Identity(), None, (4,)), ValueError, r"sizes\[0\] must be >= 8"),
    "PerScaleBatchNorm2d float features": (lambda: multiscale.PerScaleBatchNorm2d(8.0, (32,)), TypeError, "num_features must be an integer"),
    "PerScaleBatchNorm2d zero features": (lambda: multiscale.PerScaleBatchNorm2d(0, (32,)), ValueError, "num_features must be >= 1"),
    "convert_to_per_scale_bn str": (lambda: multiscale.convert_to_per_scale_bn("model", (32,)), TypeError, "model must be a torch.nn.Module"),
    "set_active_scale float": (lambda: multiscale.set_active_scale(nn.Identity(), 32.0), TypeError, "size must be an integer"),
    "set_active_scale zero": (lambda: multiscale.set_active_scale(nn.Identity(), 0), ValueError, "size must be >= 1"),
    # env
    "seed_everything float": (lambda: env.seed_everything(1.0), TypeError, "seed must be an integer"),
    "seed_everything 2**32": (lambda: env.seed_everything(2**32), ValueError, "seed must be >= 0 and <= .*, got 4294967296"),
    "seed_everything int deterministic": (lambda: env.seed_everything(0, deterministic=1), TypeError, "deterministic must be True or False"),
    "choose_device float": (lambda: env.choose_device(0.5), TypeError, "device must be a string"),
    "choose_device tpu": (lambda: env.choose_device("tpu"), ValueError, "cuda, mps, cpu"),
    "set_threads str": (lambda: env.set_threads("2"), TypeError, "num_threads must be an integer"),
    "set_threads zero": (lambda: env.set_threads(0), ValueError, "num_threads must be >= 1, got 0"),
    # data
    "object_size_range float size": (lambda: data.object_size_range("train", 64.0), TypeError, "image_size must be an integer"),
    "object_size_range tiny size": (lambda: data.object_size_range("train", 8), ValueError, "image_size must be >= 16"),
    "object_size_range number fractions": (lambda: data.object_size_range("train", 64, 0.5), TypeError, "object_size must be a pair"),
    "object_size_range str fractions": (lambda: data.object_size_range("train", 64, "0.3"), TypeError, "object_size must be a pair"),
    "object_size_range str fraction": (lambda: data.object_size_range("train", 64, ("0.3", 0.5)), TypeError, r"object_size\[0\] must be a number"),
    "object_size_range 3 fractions": (lambda: data.object_size_range("train", 64, (0.1, 0.2, 0.3)), ValueError, "got 3 values"),
    "object_size_range nan fraction": (lambda: data.object_size_range("train", 64, (float("nan"), 0.5)), ValueError, "must be a finite number"),
    "object_size_range reversed": (lambda: data.object_size_range("train", 64, (0.6, 0.3)), ValueError, "0 < low <= high <= 1"),
    "generate float size": (lambda: data.generate_multiscale_digits("test", image_size=64.0, num_samples=1), TypeError, "image_size must be an integer"),
    "generate size 16": (lambda: data.generate_multiscale_digits("test", image_size=16, num_samples=1), ValueError, "image_size must be >= 32 and <= 256, got 16"),
    "generate size 257": (lambda: data.generate_multiscale_digits("test", image_size=257, num_samples=1), ValueError, "image_size must be >= 32 and <= 256, got 257"),
    "generate bool seed": (lambda: data.generate_multiscale_digits("test", seed=True, num_samples=1), TypeError, "seed must be an integer"),
    "generate zero samples": (lambda: data.generate_multiscale_digits("test", num_samples=0), ValueError, "num_samples must be >= 1"),
    "load_dataset str download": (lambda: data.load_dataset("multiscale-digits", "train", download="no"), TypeError, "download must be True or False"),
    "load_dataset int cache": (lambda: data.load_dataset("multiscale-digits", "train", cache=1), TypeError, "cache must be True or False"),
    "load_dataset size 16": (lambda: data.load_dataset("multiscale-digits", "train", image_size=16, cache=False), ValueError, "image_size must be >= 32 and <= 256"),
    "load_dataset float samples": (lambda: data.load_dataset("multiscale-digits", "train", num_samples=1e3, cache=False), TypeError, "num_samples must be an integer"),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_bad_input_raises_the_documented_error(case: str) -> None:
    call, error, match = BAD_CALLS[case]
    with pytest.raises(error, match=match) as info:
        call()
    assert type(info.value) is error  # not a subclass standing in for the other kind


def test_numpy_integers_are_accepted_as_integers() -> None:
    assert layers.conv_output_size(np.int64(8), np.int32(3)) == 6
    assert multiscale.check_sizes(np.array([32, 48])) == (32, 48)
    assert type(multiscale.check_sizes(np.array([32]))[0]) is int
    assert multiscale.RandomResolution((32,), seed=np.int64(3)).seed == 3
    assert data.object_size_range("train", np.int64(64)) == data.object_size_range("train", 64)


def test_digit_image_size_range_is_what_the_generator_accepts() -> None:
    low, high = data.DIGIT_IMAGE_SIZE_RANGE
    assert (low, high) == (32, 256)
    for size in (low - 1, high + 1):
        with pytest.raises(ValueError, match=f"image_size must be >= {low} and <= {high}"):
            data.generate_multiscale_digits("test", image_size=size, num_samples=1)


def test_object_size_range_works_below_the_generated_sizes() -> None:
    # Notebook 07 tabulates object sizes at test resolutions below DIGIT_IMAGE_SIZE_RANGE (images
    # stored at 64 px, resized to 16 or 24 px), so object_size_range accepts them.
    assert data.object_size_range("train", 16) == (5, 8)
    assert data.object_size_range("test-large", 24) == (17, 22)
    with pytest.raises(ValueError, match="at least 4 px"):
        data.object_size_range("test-small", 16)


def test_forward_is_forward_features_then_the_head() -> None:
    torch.manual_seed(0)
    model = models.resnet18(num_classes=3, width=8, stem="small").eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        head = model.fc(torch.flatten(model.avgpool(model.forward_features(x)), 1))
        assert torch.equal(model(x), head)


@pytest.mark.parametrize(
    "builder, options",
    [
        (models.res2net50_26w_4s, {"num_classes": 10}),
        (models.res2net101_26w_4s, {}),
        (models.res2net50_26w_4s, {"num_classes": 10, "width": 16, "stem": "small", "in_channels": 1}),
    ],
)
def test_infer_options_names_res2net(builder, options) -> None:
    with torch.device("meta"):
        state = builder(**options).state_dict()
    expected = {"width": 64, "in_channels": 3, "stem": "imagenet", "num_classes": 1000}
    assert models.infer_options(state) == {**expected, **options, "arch": builder.__name__}


def test_infer_options_reads_res2net_block_args_of_an_unnamed_variant() -> None:
    with torch.device("meta"):
        model = models.ResNet(blocks.Res2NetBottleneck, [1, 2, 1, 1], 7, block_args={"base_width": 14, "scale": 6})
    options = models.infer_options(model.state_dict())
    assert options["block"] == "Res2NetBottleneck" and options["layers"] == (1, 2, 1, 1)
    assert options["block_args"] == {"base_width": 14, "scale": 6}
    assert "arch" not in options


def test_load_weights_suggests_the_res2net_builder(tmp_path: Path) -> None:
    with torch.device("meta"):
        state = models.res2net50_26w_4s(num_classes=10).state_dict()
        model = models.resnet50(num_classes=10)
    path = tmp_path / "res2net50.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"looks like: tutorial_lib\.models\.res2net50_26w_4s\(num_classes=10\)$"):
        models.load_weights(model, path)


def test_load_weights_suggests_block_args_for_an_unnamed_res2net(tmp_path: Path) -> None:
    with torch.device("meta"):
        state = models.ResNet(blocks.Res2NetBottleneck, [1, 1, 1, 1], 5, block_args={"scale": 3}).state_dict()
        model = models.resnet18(num_classes=5)
    path = tmp_path / "odd.pth"
    torch.save(state, path)
    call = "ResNet(Res2NetBottleneck, [1, 1, 1, 1], num_classes=5, block_args={'base_width': 26, 'scale': 3})"
    with pytest.raises(ValueError) as info:
        models.load_weights(model, path)
    assert call in str(info.value)


@pytest.mark.parametrize("module", [layers, models, blocks, cost, multiscale, env, data])
def test_all_lists_public_names_that_exist(module) -> None:
    assert len(module.__all__) == len(set(module.__all__))
    for name in module.__all__:
        assert not name.startswith("_") and hasattr(module, name), name


def test_env_check_python_is_gone() -> None:
    assert not hasattr(env, "check_python")
