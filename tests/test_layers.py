"""Tests for tutorial_lib.layers: conv helpers, output-size and receptive-field arithmetic.

The arithmetic is checked against what real PyTorch layers do: output sizes against the shapes
modules produce, receptive fields against the input pixels that one output pixel's gradient
reaches.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torchvision
from torch import nn

from tutorial_lib import layers
from tutorial_lib.blocks import Bottleneck, projection
from tutorial_lib.layers import (
    ReceptiveField,
    conv1x1,
    conv3x3,
    conv_output_size,
    format_receptive_fields,
    measure_receptive_field,
    receptive_field,
)
from tutorial_lib.models import resnet50

# ---------------------------------------------------------------------------------------------
# conv3x3 / conv1x1
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args", [(16, 32), (16, 32, 2), (16, 32, 1, 4), (16, 32, 2, 1, 2)]
)
def test_conv3x3_matches_torchvision(args: tuple[int, ...]) -> None:
    ours = conv3x3(*args)
    theirs = torchvision.models.resnet.conv3x3(*args)
    assert repr(ours) == repr(theirs)
    assert ours.weight.shape == theirs.weight.shape
    assert ours.bias is None


@pytest.mark.parametrize("args", [(16, 32), (16, 64, 2)])
def test_conv1x1_matches_torchvision(args: tuple[int, ...]) -> None:
    ours = conv1x1(*args)
    theirs = torchvision.models.resnet.conv1x1(*args)
    assert repr(ours) == repr(theirs)
    assert ours.bias is None


def test_conv3x3_keeps_size_at_stride_1_and_halves_at_stride_2() -> None:
    x = torch.randn(1, 4, 15, 16)
    assert conv3x3(4, 8)(x).shape == (1, 8, 15, 16)
    assert conv3x3(4, 8, dilation=3)(x).shape == (1, 8, 15, 16)
    assert conv3x3(4, 8, stride=2)(x).shape == (1, 8, 8, 8)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: conv3x3(0, 8), ValueError, "in_planes must be >= 1"),
        (lambda: conv3x3(8, 8, stride=0), ValueError, "stride must be >= 1"),
        (lambda: conv3x3(6, 8, groups=4), ValueError, "divisible by groups"),
        (lambda: conv1x1(8.0, 8), TypeError, "in_planes must be an int"),
        (lambda: conv1x1(8, True), TypeError, "out_planes must be an int"),
    ],
)
def test_conv_helpers_reject_bad_input(call, error, match) -> None:
    with pytest.raises(error, match=match):
        call()


# ---------------------------------------------------------------------------------------------
# conv_output_size
# ---------------------------------------------------------------------------------------------


def test_conv_output_size_resnet_stem() -> None:
    assert conv_output_size(224, 7, stride=2, padding=3) == 112
    assert conv_output_size(112, 3, stride=2, padding=1) == 56
    assert conv_output_size((224, 160), 7, 2, 3) == (112, 80)


def test_conv_output_size_matches_conv2d_for_a_grid_of_settings() -> None:
    checked = 0
    for size, kernel, stride, padding, dilation in itertools.product(
        (5, 8, 13), (1, 2, 3, 5), (1, 2, 3), (0, 1, 2), (1, 2)
    ):
        if dilation * (kernel - 1) + 1 > size + 2 * padding:
            continue
        conv = nn.Conv2d(1, 1, kernel, stride=stride, padding=padding, dilation=dilation)
        expected = conv(torch.zeros(1, 1, size, size)).shape[-1]
        assert conv_output_size(size, kernel, stride, padding, dilation) == expected, (
            size, kernel, stride, padding, dilation)
        checked += 1
    assert checked > 150


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_conv_output_size_matches_pooling_layers(ceil_mode: bool) -> None:
    checked = 0
    for size, kernel, stride, dilation in itertools.product((5, 6, 7, 12, 13), (2, 3, 4), (1, 2, 3), (1, 2)):
        for padding in range(kernel // 2 + 1):  # PyTorch allows padding <= kernel / 2
            if dilation * (kernel - 1) + 1 > size + 2 * padding:
                continue
            x = torch.zeros(1, 1, size, size)
            pool = nn.MaxPool2d(kernel, stride, padding, dilation=dilation, ceil_mode=ceil_mode)
            got = conv_output_size(size, kernel, stride, padding, dilation, ceil_mode=ceil_mode)
            assert got == pool(x).shape[-1], (size, kernel, stride, padding, dilation)
            if dilation == 1:
                avg = nn.AvgPool2d(kernel, stride, padding, ceil_mode=ceil_mode)
                assert got == avg(x).shape[-1], (size, kernel, stride, padding)
            checked += 1
    assert checked > 100


def test_conv_output_size_rectangular_and_per_axis_arguments() -> None:
    conv = nn.Conv2d(1, 1, kernel_size=(3, 5), stride=(1, 2), padding=(0, 2), dilation=(2, 1))
    x = torch.zeros(1, 1, 17, 30)
    assert conv_output_size((17, 30), (3, 5), (1, 2), (0, 2), (2, 1)) == tuple(conv(x).shape[-2:])


def test_conv_output_size_string_padding() -> None:
    assert conv_output_size(17, 5, padding="same") == 17
    assert conv_output_size((17, 9), 3, padding="same") == (17, 9)
    assert conv_output_size(17, 5, padding="valid") == 13


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(size=4, kernel_size=7), ValueError, "kernel spans 7 pixels"),
        (dict(size=5, kernel_size=3, dilation=3), ValueError, "kernel spans 7 pixels"),
        (dict(size=0, kernel_size=3), ValueError, "size must be >= 1"),
        (dict(size=8, kernel_size=3, stride=0), ValueError, "stride must be >= 1"),
        (dict(size=8, kernel_size=3, padding=-1), ValueError, "padding must be >= 0"),
        (dict(size=8.0, kernel_size=3), TypeError, "size must be an int"),
        (dict(size=(8, 8), kernel_size=(3, 3, 3)), ValueError, "kernel_size has 3 entries"),
        (dict(size=8, kernel_size=3, padding="full"), ValueError, "'valid' or 'same'"),
        (dict(size=8, kernel_size=3, stride=2, padding="same"), ValueError, "needs stride 1"),
        (dict(size=8, kernel_size=3, ceil_mode=1), TypeError, "ceil_mode must be True or False"),
    ],
)
def test_conv_output_size_rejects_bad_input(kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        conv_output_size(**kwargs)


# ---------------------------------------------------------------------------------------------
# receptive_field against measurement
# ---------------------------------------------------------------------------------------------


def _assert_matches_measurement(model: nn.Module, input_size: int, in_channels: int) -> ReceptiveField:
    """Compare the last row of receptive_field with the gradient measurement at the centre pixel."""
    last = receptive_field(model)[-1]
    with torch.no_grad():
        out = model.eval()(torch.zeros(1, in_channels, input_size, input_size))
    row = out.shape[-2] // 2
    measured = measure_receptive_field(model, input_size, in_channels=in_channels, trials=3)
    # The measurement is the whole field only if the field lies inside the image.
    centre = last.start + row * last.jump
    assert centre - (last.size - 1) / 2 >= 0 and centre + (last.size - 1) / 2 < input_size
    assert measured.height == last.size
    assert measured.width == last.size
    assert measured.top == centre - (last.size - 1) / 2
    return last


@pytest.mark.parametrize(
    "stack",
    [
        [nn.Conv2d(2, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)],
        [nn.Conv2d(2, 4, 5, stride=2, padding=2), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2, padding=1)],
        [nn.Conv2d(2, 4, 3, dilation=2, padding=2), nn.AvgPool2d(2), nn.Conv2d(4, 4, 3)],
        [nn.Conv2d(2, 4, 4, stride=2, padding=1), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 2, stride=3)],
        [nn.Conv2d(2, 4, 3), nn.AvgPool2d(3, stride=2, padding=1), nn.Conv2d(4, 4, 3, stride=2, dilation=3)],
    ],
)
def test_receptive_field_matches_gradient_measurement(stack: list[nn.Module]) -> None:
    torch.manual_seed(0)
    _assert_matches_measurement(nn.Sequential(*stack), 61, in_channels=2)


def test_receptive_field_of_the_resnet_stem_and_first_stage_matches_measurement() -> None:
    torch.manual_seed(0)
    model = resnet50()
    stem = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool)
    rows = receptive_field(stem)
    assert [(r.size, r.jump, r.start) for r in rows] == [(7, 2, 0.0), (11, 4, 0.0)]
    _assert_matches_measurement(stem, 64, in_channels=3)
    first_stage = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool, model.layer1)
    last = _assert_matches_measurement(first_stage, 96, in_channels=3)
    assert (last.size, last.jump) == (35, 4)


def test_receptive_field_of_a_strided_bottleneck_is_its_main_path() -> None:
    torch.manual_seed(0)
    for stride_in in ("v1", "v1.5"):
        block = Bottleneck(16, 8, stride=2, downsample=projection(16, 32, 2), stride_in=stride_in)
        rows = receptive_field(block)
        assert [r.name for r in rows] == ["conv1", "conv2", "conv3"]
        last = _assert_matches_measurement(block, 21, in_channels=16)
        # v1 strides before the 3x3, so the 3x3 steps over 2 input pixels per tap.
        assert (last.size, last.jump) == ((5, 2) if stride_in == "v1" else (3, 2))


def test_receptive_field_of_resnet_names_and_stops_at_global_pooling(on_meta) -> None:
    rows = receptive_field(on_meta(resnet50))  # reads the layers' hyperparameters only
    assert rows[0].name == "conv1" and rows[1].name == "maxpool"
    assert rows[-1].name == "layer4.2.conv3"
    assert not any("downsample" in r.name for r in rows)
    assert rows[-1].jump == 32
    # Each 3x3 adds 2 * (the jump at its input): stem 1 + 6 + 2*2, then layer1 3 blocks at jump 4;
    # in v1.5 the first 3x3 of a stage runs before its stride, in v1 after it.
    v15 = 1 + 6 + 4 + 3 * 8 + (8 + 3 * 16) + (16 + 5 * 32) + (32 + 2 * 64)
    v1 = 1 + 6 + 4 + 3 * 8 + 4 * 16 + 6 * 32 + 3 * 64
    assert rows[-1].size == v15 == 427
    assert receptive_field(on_meta(resnet50, stride_in="v1"))[-1].size == v1 == 483


def test_receptive_field_accepts_a_list_and_uses_the_requested_axis() -> None:
    stack = [nn.Conv2d(1, 1, (1, 5)), nn.Conv2d(1, 1, (3, 1), stride=(2, 1))]
    height = receptive_field(stack, axis=0)
    width = receptive_field(stack, axis=1)
    assert [r.name for r in height] == ["0", "1"]
    assert (height[-1].size, height[-1].jump) == (3, 2)
    assert (width[-1].size, width[-1].jump) == (5, 1)


def test_receptive_field_same_padding_and_odd_start() -> None:
    rows = receptive_field([nn.Conv2d(1, 1, 4, padding="same"), nn.Conv2d(1, 1, 2, stride=2)])
    # 'same' with an even kernel pads 1 on the left: the first window covers pixels -1..2.
    assert rows[0].padding == 1 and rows[0].start == 0.5
    assert rows[1].start == 1.0 and rows[1].size == 5


@pytest.mark.parametrize(
    "model, kwargs, error, match",
    [
        (nn.ConvTranspose2d(1, 1, 3), {}, TypeError, "ConvTranspose2d"),
        (nn.Sequential(nn.Conv2d(1, 1, 3), nn.Upsample(scale_factor=2)), {}, TypeError, "Upsample"),
        (nn.Conv2d(1, 1, 3), {"axis": 2}, ValueError, "axis must be 0"),
        ("conv", {}, TypeError, "nn.Module"),
        ([nn.Conv2d(1, 1, 3), "relu"], {}, TypeError, r"model\[1\]"),
        (nn.Sequential(nn.ReLU(), nn.Flatten()), {}, ValueError, "no Conv2d"),
    ],
)
def test_receptive_field_rejects_what_it_cannot_model(model, kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        receptive_field(model, **kwargs)


def test_format_receptive_fields_prints_one_line_per_layer() -> None:
    rows = receptive_field([nn.Conv2d(3, 8, 7, 2, 3), nn.MaxPool2d(3, 2, 1)])
    table = format_receptive_fields(rows)
    lines = table.splitlines()
    assert len(lines) == 3
    assert lines[2].split() == ["1", "MaxPool2d", "3", "2", "1", "1", "11", "4", "0.0"]
    with pytest.raises(TypeError, match="ReceptiveField"):
        format_receptive_fields([("conv", 3)])


def test_measure_receptive_field_leaves_the_model_untouched() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    field = measure_receptive_field(model, 9, position=(0, 0))
    assert (field.height, field.width, field.top, field.left) == (3, 3, 0, 0)
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_measure_receptive_field_rejects_bad_input() -> None:
    conv = nn.Conv2d(1, 1, 3)
    with pytest.raises(ValueError, match="outside the output"):
        measure_receptive_field(conv, 9, position=(7, 0))
    with pytest.raises(ValueError, match="pass in_channels"):
        measure_receptive_field(nn.ReLU(), 9)
    with pytest.raises(ValueError, match=r"must be \(N, C, H, W\)"):
        measure_receptive_field(nn.Sequential(nn.Conv2d(1, 1, 3), nn.Flatten()), 9)
    with pytest.raises(TypeError, match="nn.Module"):
        measure_receptive_field(layers, 9)


# ---------------------------------------------------------------------------------------------
# The notebook-01 exercise checks (tutorial_lib.checks) accept right answers and explain wrong ones
# ---------------------------------------------------------------------------------------------


def test_notebook_01_checks(capsys) -> None:
    from tutorial_lib import checks

    checks.check_output_size_function(lambda n, k, s, p, d: conv_output_size(n, k, s, p, d))
    with pytest.raises(AssertionError, match="floor division"):
        checks.check_output_size_function(lambda n, k, s, p, d: (n + 2 * p - d * (k - 1) - 1) / s + 1)
    with pytest.raises(AssertionError, match="dilated kernel"):
        checks.check_output_size_function(lambda n, k, s, p, d: (n + 2 * p - k) // s + 1)

    def receptive(layers):
        size, jump = 1, 1
        for k, s in layers:
            size, jump = size + (k - 1) * jump, jump * s
        return size, jump

    checks.check_receptive_field_function(receptive)
    with pytest.raises(AssertionError, match=r"\(k - 1\) \* jump_so_far"):
        checks.check_receptive_field_function(lambda layers: (1 + sum(k - 1 for k, _ in layers), 1))

    def conv_cost(c_in, c_out, k, out, bias):
        return c_out * c_in * k * k + (c_out if bias else 0), c_out * c_in * k * k * out * out

    checks.check_conv_cost_function(conv_cost)
    with pytest.raises(AssertionError, match="that is FLOPs"):
        checks.check_conv_cost_function(lambda *a: (conv_cost(*a)[0], 2 * conv_cost(*a)[1]))
    with pytest.raises(AssertionError, match="only when bias=True"):
        checks.check_conv_cost_function(lambda ci, co, k, o, b: (co * ci * k * k + co, conv_cost(ci, co, k, o, b)[1]))
    with pytest.raises(AssertionError, match="raised ZeroDivisionError"):
        checks.check_conv_cost_function(lambda *a: 1 / 0)
    assert capsys.readouterr().out.count("Correct:") == 3


# ---------------------------------------------------------------------------------------------
# Multi-branch blocks: refused, never silently wrong
# ---------------------------------------------------------------------------------------------


def test_receptive_field_refuses_res2net_blocks_and_points_to_the_measurement() -> None:
    from tutorial_lib.blocks import Res2NetBottleneck
    from tutorial_lib.models import res2net50_26w_4s

    # A stage block runs its three stride-2 3x3 convolutions and its stride-2 pool side by side;
    # walking them in registration order would chain all four (31 px at jump 16 instead of 3 px at
    # jump 2, the numbers the walk gave before it refused such blocks).
    stage = Res2NetBottleneck(16, 8, stride=2, downsample=projection(16, 32, 2))
    for model, where in (
        (stage, "Res2NetBottleneck"),
        (Res2NetBottleneck(32, 8), "Res2NetBottleneck"),
        (res2net50_26w_4s(width=4, stem="small"), r"layer1\.0 \(Res2NetBottleneck\)"),
        ([nn.Conv2d(3, 16, 3), stage], r"1 \(Res2NetBottleneck\)"),
    ):
        with pytest.raises(TypeError, match=where + ".*'convs'.*measure_receptive_field"):
            receptive_field(model)
    # The measurement it points to does handle the block: every group of a stage block sees 3 px.
    assert measure_receptive_field(stage, 15, trials=3).height == 3


def test_receptive_field_accepts_containers_of_pointwise_layers_and_a_top_level_module_list() -> None:
    class PerBranchNorm(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)
            self.bns = nn.ModuleDict({"32": nn.BatchNorm2d(2), "64": nn.BatchNorm2d(2)})

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.bns["32"](self.conv(x))

    assert [r.name for r in receptive_field(PerBranchNorm())] == ["conv"]
    # A ModuleList passed as the model itself is a list of layers applied in order, as documented.
    rows = receptive_field(nn.ModuleList([nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 3)]))
    assert rows[-1].size == 5


def test_effective_receptive_field_of_one_conv_is_its_kernel() -> None:
    from tutorial_lib.layers import effective_receptive_field

    conv = nn.Conv2d(1, 1, 5, padding=2, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    field = effective_receptive_field(conv, 15, mass=1.0)
    assert field.theoretical == 5 and field.side == 5
    assert abs(float(field.gradient.sum()) - 1.0) < 1e-5


def test_effective_receptive_field_is_smaller_than_the_theoretical_one() -> None:
    from tutorial_lib.layers import effective_receptive_field

    torch.manual_seed(0)
    stack = nn.Sequential(*[m for _ in range(6) for m in (nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())])
    stack[0] = nn.Conv2d(1, 4, 3, padding=1)
    field = effective_receptive_field(stack, 31, mass=0.5, trials=4)
    assert field.theoretical == 13
    assert field.side < field.theoretical
    assert effective_receptive_field(stack, 31, mass=1.0, trials=4).side == 13


def test_effective_receptive_field_rejects_bad_input() -> None:
    from tutorial_lib.layers import effective_receptive_field

    conv = nn.Conv2d(1, 1, 3)
    with pytest.raises(ValueError, match="mass"):
        effective_receptive_field(conv, 9, mass=0.0)
    with pytest.raises(TypeError, match="model"):
        effective_receptive_field("conv", 9)
    with pytest.raises(ValueError, match="4-D|N, C, H, W"):
        effective_receptive_field(nn.Sequential(nn.Conv2d(1, 1, 3), nn.Flatten()), 9)
