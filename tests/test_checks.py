"""Tests for tutorial_lib.checks: every exercise check passes the right answer and fails a wrong one with its hint.

The right answers are the notebooks' solutions; the wrong ones are the slips each check's hint names.
Every check must also leave the learner's session alone: torch's global random state unchanged, and
a learner's model in the train/eval mode it had.
"""

from __future__ import annotations

import copy
import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tutorial_lib import checks
from tutorial_lib.blocks import BasicBlock, projection
from tutorial_lib.checks import prove_equal
from tutorial_lib.data import OBJECT_SIZE_FRACTIONS
from tutorial_lib.models import resnet18, resnet50, resnet101
from tutorial_lib.multiscale import resize_batch
from tutorial_lib.norm import BatchNorm2d, randomize_norm

# --------------------------------------------------------------------------------------------------
# 00 setup
# --------------------------------------------------------------------------------------------------

BYTES = {"batch": 128, "channels": 3, "size": 64, "bytes_per_value": 4}


def test_check_batch_bytes(capsys) -> None:
    checks.check_batch_bytes(128 * 3 * 64 * 64 * 4 / 2**20, **BYTES)
    assert "Correct: 6.00 MiB" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="megabytes"):
        checks.check_batch_bytes(128 * 3 * 64 * 64 * 4 / 1e6, **BYTES)
    with pytest.raises(AssertionError, match="multiply by 4"):
        checks.check_batch_bytes(128 * 3 * 64 * 64 / 2**20, **BYTES)
    with pytest.raises(AssertionError, match="count values"):
        checks.check_batch_bytes(128 * 64 * 64 * 4 / 2**20, **BYTES)
    with pytest.raises(AssertionError, match="store a number"):
        checks.check_batch_bytes("6 MiB", **BYTES)
    with pytest.raises(AssertionError, match="finite number"):
        checks.check_batch_bytes(float("nan"), **BYTES)


# --------------------------------------------------------------------------------------------------
# 01 convolution and pooling
# --------------------------------------------------------------------------------------------------


def _output_size(size: int, kernel_size: int, stride: int, padding: int, dilation: int) -> int:
    span = dilation * (kernel_size - 1) + 1
    return (size + 2 * padding - span) // stride + 1


def test_check_output_size_function() -> None:
    checks.check_output_size_function(_output_size)
    with pytest.raises(AssertionError, match=r"floor division \(//\)"):
        checks.check_output_size_function(lambda n, k, s, p, d: (n + 2 * p - d * (k - 1) - 1) / s + 1)
    with pytest.raises(AssertionError, match=r"dilated kernel spans d\*\(k-1\)\+1"):
        checks.check_output_size_function(lambda n, k, s, p, d: (n + 2 * p - k) // s + 1)
    with pytest.raises(AssertionError, match="count the \\+1"):
        checks.check_output_size_function(lambda n, k, s, p, d: (n + 2 * p - d * (k - 1) - 1) // s)
    with pytest.raises(AssertionError, match="your function raised ZeroDivisionError"):
        checks.check_output_size_function(lambda *args: 1 // 0)


def test_checks_turn_the_unanswered_stub_into_a_hint() -> None:
    # A student copy's stub (nbgrader): the function exists but raises NotImplementedError.
    def output_size(size, kernel_size, stride, padding, dilation):
        # YOUR CODE HERE
        raise NotImplementedError()

    with pytest.raises(AssertionError, match=r"output_size is not written yet.*raise NotImplementedError\(\)") as info:
        checks.check_output_size_function(output_size)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def _receptive(layers: list[tuple[int, int]]) -> tuple[int, int]:
    size, jump = 1, 1
    for kernel_size, stride in layers:
        size += (kernel_size - 1) * jump
        jump *= stride
    return size, jump


def test_check_receptive_field_function() -> None:
    checks.check_receptive_field_function(_receptive)
    with pytest.raises(AssertionError, match="multiplies jump by its stride"):
        checks.check_receptive_field_function(lambda layers: (1 + sum(k - 1 for k, _ in layers), 1))
    with pytest.raises(AssertionError, match=r"return a pair \(receptive_field, jump\)"):
        checks.check_receptive_field_function(lambda layers: _receptive(layers)[0])
    with pytest.raises(AssertionError, match="pass your function itself"):
        checks.check_receptive_field_function(_receptive([(3, 1)]))


def _conv_cost(c_in: int, c_out: int, kernel_size: int, out_size: int, bias: bool) -> tuple[int, int]:
    weights = c_out * c_in * kernel_size * kernel_size
    return weights + (c_out if bias else 0), weights * out_size * out_size


def test_check_conv_cost_function() -> None:
    checks.check_conv_cost_function(_conv_cost)
    with pytest.raises(AssertionError, match="that is FLOPs"):
        checks.check_conv_cost_function(lambda *a: (_conv_cost(*a)[0], 2 * _conv_cost(*a)[1]))
    with pytest.raises(AssertionError, match="only when bias=True"):
        checks.check_conv_cost_function(lambda ci, co, k, o, b: (co * ci * k * k + co, _conv_cost(ci, co, k, o, b)[1]))
    with pytest.raises(AssertionError, match=r"return a pair \(params, macs\)"):
        checks.check_conv_cost_function(lambda *a: sum(_conv_cost(*a)))


# --------------------------------------------------------------------------------------------------
# 02 residual blocks
# --------------------------------------------------------------------------------------------------


def _shortcut(inplanes: int, planes: int, stride: int) -> nn.Module:
    if stride == 1 and inplanes == planes:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(inplanes, planes, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(planes))


def _conv_bn(inplanes: int, planes: int, stride: int, **conv: object) -> nn.Module:
    return nn.Sequential(nn.Conv2d(inplanes, planes, stride=stride, **conv), nn.BatchNorm2d(planes))


@pytest.mark.parametrize(
    "fn, match",
    [
        (lambda i, p, s: nn.Identity(), "needs a 1x1 nn.Conv2d"),
        (lambda i, p, s: _conv_bn(i, p, s, kernel_size=1, bias=False), "the identity: return nn.Identity"),
        (lambda i, p, s: _shortcut(i, p, s) if (s, i) == (1, p) else _conv_bn(i, p, s, kernel_size=3, bias=False),
         "use a 1x1 convolution"),
        (lambda i, p, s: _shortcut(i, p, s) if (s, i) == (1, p) else _conv_bn(i, p, 1, kernel_size=1, bias=False),
         "must use the block's stride"),
        (lambda i, p, s: _shortcut(i, p, s) if (s, i) == (1, p) else _conv_bn(i, p, s, kernel_size=1),
         "pass bias=False"),
        (lambda i, p, s: _shortcut(i, p, s) if (s, i) == (1, p) else nn.Conv2d(i, p, 1, s, bias=False),
         r"follow the convolution with nn.BatchNorm2d"),
        (lambda i, p, s: _shortcut(i, p, s) if (s, i) == (1, p) else _conv_bn(i, p, s, kernel_size=1, padding=1, bias=False),
         "a 1x1 convolution needs no padding"),
        (lambda i, p, s: _shortcut(i, p, s) if (s, i) == (1, p) else nn.Sequential(*_shortcut(i, p, s), nn.ReLU()),
         "different outputs in train mode"),
        (lambda i, p, s: _shortcut(i, p, s) if (s, i) == (1, p) else nn.Sequential(
            nn.Conv2d(i, p, 1, s, bias=False), nn.BatchNorm2d(p, momentum=0.5)), "different outputs in eval mode"),
    ],
    ids=["always-identity", "never-identity", "3x3", "stride-1", "bias", "no-bn", "padding", "extra-relu", "momentum"],
)
def test_check_shortcut_function(fn, match) -> None:
    checks.check_shortcut_function(_shortcut)
    with pytest.raises(AssertionError, match=match):
        checks.check_shortcut_function(fn)


def _zero_init_last_bn(block: BasicBlock) -> None:
    nn.init.zeros_(block.bn2.weight)


def _zero_first_bn(block: BasicBlock) -> None:
    nn.init.zeros_(block.bn1.weight)


def _zero_bn2_and_conv2(block: BasicBlock) -> None:
    nn.init.zeros_(block.bn2.weight)
    nn.init.zeros_(block.conv2.weight)


def _zero_a_copy(block: BasicBlock) -> BasicBlock:
    block = copy.deepcopy(block)
    nn.init.zeros_(block.bn2.weight)
    return block


def test_check_zero_init_function() -> None:
    checks.check_zero_init_function(_zero_init_last_bn)
    with pytest.raises(AssertionError, match=r"must be all zeros \(you changed \['bn1.weight'\] instead\)"):
        checks.check_zero_init_function(_zero_first_bn)
    with pytest.raises(AssertionError, match=r"only bn2.weight should change, but \['conv2.weight'\]"):
        checks.check_zero_init_function(_zero_bn2_and_conv2)
    with pytest.raises(AssertionError, match="change the block in place"):
        checks.check_zero_init_function(_zero_a_copy)


class _PreActBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 bn1_channels: int | None = None, order: str = "pre", relu_after: bool = False, add: bool = True):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(bn1_channels or inplanes)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.downsample, self.order, self.relu_after, self.add = downsample, order, relu_after, add

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.order == "pre":
            out = F.relu(self.bn1(x))
            shortcut = x if self.downsample is None else self.downsample(out)
            out = self.conv2(F.relu(self.bn2(self.conv1(out))))
        else:  # post-activation order
            shortcut = x if self.downsample is None else self.downsample(x)
            out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        out = out + shortcut if self.add else out
        return F.relu(out) if self.relu_after else out


class _PreActStub(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        raise NotImplementedError()


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda i, p, s, d: _PreActBlock(i, p, s, d, relu_after=True), "remove the ReLU after the addition"),
        (lambda i, p, s, d: _PreActBlock(i, p, s, d, add=False), "add the shortcut"),
        (lambda i, p, s, d: _PreActBlock(i, p, s, d, order="post"), "post-activation order"),
        (lambda i, p, s, d: _PreActBlock(i, p, s, d, bn1_channels=p), r"nn.BatchNorm2d\(8\)|nn.BatchNorm2d\(16\)"),
        (_PreActStub, "not written yet"),
    ],
    ids=["relu-after-add", "no-shortcut", "post-order", "bn1-planes", "stub"],
)
def test_check_preact_block(make, match) -> None:
    checks.check_preact_block(_PreActBlock)
    with pytest.raises(AssertionError, match=match):
        checks.check_preact_block(make)


# --------------------------------------------------------------------------------------------------
# 03 bottleneck blocks (the parameter-count check also has tests in test_blocks.py)
# --------------------------------------------------------------------------------------------------


def _bottleneck_params(inplanes: int, planes: int, stride: int) -> int:
    out = 4 * planes
    convs = inplanes * planes + 9 * planes * planes + planes * out
    norms = 2 * (planes + planes + out)
    shortcut = inplanes * out + 2 * out if (stride != 1 or inplanes != out) else 0
    return convs + norms + shortcut


def test_check_bottleneck_params_function() -> None:
    checks.check_bottleneck_params_function(_bottleneck_params)
    with pytest.raises(AssertionError, match="needs a projection shortcut"):
        checks.check_bottleneck_params_function(
            lambda i, p, s: _bottleneck_params(i, p, s) - (i * 4 * p + 8 * p if (s != 1 or i != 4 * p) else 0))
    with pytest.raises(AssertionError, match="count BatchNorm too"):
        checks.check_bottleneck_params_function(lambda i, p, s: _bottleneck_params(i, p, s) - 2 * 6 * p)


def test_check_v1_saving() -> None:
    checks.check_v1_saving(512 * 256 * (28 * 28 - 14 * 14), inplanes=512, planes=256, size=28)
    with pytest.raises(AssertionError, match="only conv1 changes"):
        checks.check_v1_saving(512 * 256 * 28 * 28, inplanes=512, planes=256, size=28)


# --------------------------------------------------------------------------------------------------
# 04 building ResNet-101
# --------------------------------------------------------------------------------------------------


def test_check_depth_function() -> None:
    checks.check_depth_function(lambda blocks, convs: 1 + convs * sum(blocks) + 1)
    with pytest.raises(AssertionError, match="count the stem convolution"):
        checks.check_depth_function(lambda blocks, convs: convs * sum(blocks) + 1)


BUDGET = {"max_params": 1_000_000, "max_macs": 50_000_000, "image_size": 32, "num_classes": 10}


def test_check_small_resnet_and_the_model_keeps_its_mode() -> None:
    model = resnet101(num_classes=10, width=8, stem="small")
    model.train()
    model.layer1.eval()  # a mixed state, restored module by module
    checks.check_small_resnet(model, **BUDGET)
    assert model.training and model.layer2.training and not model.layer1.training
    assert not any(m.training for m in model.layer1.modules())
    with pytest.raises(AssertionError, match="parameters > 1,000,000"):
        checks.check_small_resnet(resnet101(num_classes=10, width=16, stem="small"), **BUDGET)
    with pytest.raises(AssertionError, match="39 MMACs > 10: reduce the width"):
        checks.check_small_resnet(resnet101(num_classes=10, width=8, stem="small"), **{**BUDGET, "max_macs": 10_000_000})
    with pytest.raises(AssertionError, match=r"keep the architecture a ResNet-101"):
        checks.check_small_resnet(resnet50(num_classes=10, width=8, stem="small"), **BUDGET)
    with pytest.raises(AssertionError, match="set num_classes=10"):
        checks.check_small_resnet(resnet101(num_classes=9, width=8, stem="small"), **BUDGET)
    with pytest.raises(AssertionError, match=r"tutorial_lib.models.resnet101\(...\), got Sequential"):
        checks.check_small_resnet(nn.Sequential(), **BUDGET)


def test_check_stage_shapes() -> None:
    model = resnet101(width=8)  # the check reads the shapes off any model: a narrow one builds faster
    predicted = {"layer1": (32, 40, 40), "layer2": (64, 20, 20), "layer3": (128, 10, 10), "layer4": (256, 5, 5)}
    checks.check_stage_shapes(predicted, model=model, image_size=160)
    with pytest.raises(AssertionError, match=r"layer4: \(256, 4, 4\) is not its output shape; the channels are right"):
        checks.check_stage_shapes({**predicted, "layer4": (256, 4, 4)}, model=model, image_size=160)
    with pytest.raises(AssertionError, match=r"layer3: None is not its output shape"):
        checks.check_stage_shapes({k: v for k, v in predicted.items() if k != "layer3"}, model=model, image_size=160)
    with pytest.raises(AssertionError, match=r"layer1: 32 is not its output shape"):
        checks.check_stage_shapes({**predicted, "layer1": 32}, model=model, image_size=160)
    with pytest.raises(AssertionError, match="store a dict"):
        checks.check_stage_shapes(list(predicted.values()), model=model, image_size=160)


# --------------------------------------------------------------------------------------------------
# 05 inter-layer normalization
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bn_cls", [nn.BatchNorm2d, BatchNorm2d], ids=["torch", "scratch"])
def test_check_bn_fold_and_the_layer_keeps_its_mode(bn_cls) -> None:
    bn = randomize_norm(bn_cls(6), seed=1)
    bn.train()
    with torch.no_grad():
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        shift = bn.bias - bn.running_mean * scale
    checks.check_bn_fold(scale, shift, bn)
    assert bn.training
    with pytest.raises(AssertionError, match="include the learned weight"):
        checks.check_bn_fold(scale / bn.weight.detach(), shift, bn)
    with pytest.raises(AssertionError, match=r"add eps to the running variance.*sqrt\(running_var \+ eps\)"):
        checks.check_bn_fold(bn.weight.detach() / torch.sqrt(bn.running_var), shift, bn)
    with torch.no_grad():  # the same numbers computed another way (rsqrt, float64) pass
        checks.check_bn_fold((bn.weight.double() * torch.rsqrt(bn.running_var.double() + bn.eps)).float(), shift, bn)
    with pytest.raises(AssertionError, match="the shift is bias - running_mean"):
        checks.check_bn_fold(scale, bn.bias.detach() - bn.running_mean, bn)
    with pytest.raises(AssertionError, match="use the running statistics"):
        checks.check_bn_fold(bn.weight.detach().clone(), bn.bias.detach().clone(), bn)
    with pytest.raises(AssertionError, match=r"shape \(6,\), one value per channel"):
        checks.check_bn_fold(scale.view(1, 6, 1, 1), shift, bn)
    with pytest.raises(AssertionError, match="scale must be a tensor"):
        checks.check_bn_fold(scale.tolist(), shift, bn)
    assert bn.training
    with pytest.raises(TypeError, match="bn must be a BatchNorm layer"):
        checks.check_bn_fold(scale, shift, nn.GroupNorm(2, 6))


def _group_norm_forward(x: torch.Tensor, num_groups: int, eps: float = 1e-5) -> torch.Tensor:
    n, c, h, w = x.shape
    grouped = x.reshape(n, num_groups, (c // num_groups) * h * w)
    mean = grouped.mean(dim=-1, keepdim=True)
    var = grouped.var(dim=-1, correction=0, keepdim=True)
    return ((grouped - mean) / torch.sqrt(var + eps)).reshape(n, c, h, w)


def _batch_norm_forward(x: torch.Tensor, num_groups: int, eps: float = 1e-5) -> torch.Tensor:
    mean, var = x.mean(dim=(0, 2, 3), keepdim=True), x.var(dim=(0, 2, 3), correction=0, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)


def _unbiased_forward(x: torch.Tensor, num_groups: int, eps: float = 1e-5) -> torch.Tensor:
    grouped = x.reshape(len(x), num_groups, -1)
    return ((grouped - grouped.mean(-1, keepdim=True)) / torch.sqrt(grouped.var(-1, keepdim=True) + eps)).reshape(x.shape)


def test_check_group_norm_function() -> None:
    checks.check_group_norm_function(_group_norm_forward)
    with pytest.raises(AssertionError, match="that is BatchNorm"):
        checks.check_group_norm_function(_batch_norm_forward)
    with pytest.raises(AssertionError, match="every channel shares one group"):
        checks.check_group_norm_function(lambda x, g, eps: F.instance_norm(x, eps=eps))
    with pytest.raises(AssertionError, match=r"biased variance \(correction=0\)"):
        checks.check_group_norm_function(_unbiased_forward)
    with pytest.raises(AssertionError, match=r"wrong for eps=4.0: .*sqrt\(var \+ eps\)"):
        checks.check_group_norm_function(lambda x, g, eps: _group_norm_forward(x, g, 1e-5))
    with pytest.raises(AssertionError, match="return a tensor shaped like x"):
        checks.check_group_norm_function(lambda x, g, eps: _group_norm_forward(x, g, eps).flatten(1))


_ZERO_INIT_PREDICTION = {"conv1.weight": "zero", "bn1.weight": "zero", "conv2.weight": "zero",
                         "bn2.weight": "nonzero", "bn2.bias": "nonzero"}


def _branch_gradient_norms(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    model.zero_grad()
    F.cross_entropy(model(images), labels).backward()
    block = dict(model.layer1[0].named_parameters())
    return {name: block[name].grad.norm().item() for name in checks.ZERO_INIT_GRAD_PARAMS}


def _accumulating_norms(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    F.cross_entropy(model(images), labels).backward()  # no zero_grad: the second call doubles
    block = dict(model.layer1[0].named_parameters())
    return {name: block[name].grad.norm().item() for name in checks.ZERO_INIT_GRAD_PARAMS}


def test_check_zero_init_gradients() -> None:
    checks.check_zero_init_gradients(_ZERO_INIT_PREDICTION, _branch_gradient_norms)
    # The common wrong guess: the last convolution gets a gradient because it is "after" nothing.
    with pytest.raises(AssertionError, match=r"prediction was wrong for \['conv2.weight'\].*chain rule"):
        checks.check_zero_init_gradients({**_ZERO_INIT_PREDICTION, "conv2.weight": "nonzero"}, _branch_gradient_norms)
    with pytest.raises(AssertionError, match=r"predict 'zero' or 'nonzero' for \['bn2.bias'\]"):
        checks.check_zero_init_gradients({**_ZERO_INIT_PREDICTION, "bn2.bias": None}, _branch_gradient_norms)
    with pytest.raises(AssertionError, match="exactly the keys"):
        checks.check_zero_init_gradients({"conv1.weight": "zero"}, _branch_gradient_norms)
    with pytest.raises(AssertionError, match="gradients accumulated.*zero_grad"):
        checks.check_zero_init_gradients(_ZERO_INIT_PREDICTION, _accumulating_norms)
    with pytest.raises(AssertionError, match="bn2.weight: you measured"):
        checks.check_zero_init_gradients(_ZERO_INIT_PREDICTION, lambda m, x, y: {**_branch_gradient_norms(m, x, y), "bn2.weight": 1.0})
    with pytest.raises(AssertionError, match="return a dict with the keys"):
        checks.check_zero_init_gradients(_ZERO_INIT_PREDICTION, lambda m, x, y: list(_branch_gradient_norms(m, x, y).values()))
    with pytest.raises(AssertionError, match="is not written yet"):
        checks.check_zero_init_gradients(_ZERO_INIT_PREDICTION, _stub)


# --------------------------------------------------------------------------------------------------
# 06 multi-scale architectures
# --------------------------------------------------------------------------------------------------


def test_check_fpn_level_function() -> None:
    checks.check_fpn_level_function(lambda w, h: min(5, max(2, math.floor(4 + math.log2(math.sqrt(w * h) / 224)))))
    with pytest.raises(AssertionError, match="clamp the result"):
        checks.check_fpn_level_function(lambda w, h: math.floor(4 + math.log2(math.sqrt(w * h) / 224)))
    with pytest.raises(AssertionError, match=r"geometric mean sqrt\(width \* height\)"):
        checks.check_fpn_level_function(lambda w, h: min(5, max(2, math.floor(4 + math.log2(max(w, h) / 224)))))
    with pytest.raises(AssertionError, match="take the floor"):
        checks.check_fpn_level_function(lambda w, h: min(5, max(2, round(4 + math.log2(math.sqrt(w * h) / 224)))))


def _res2net_params(inplanes: int, planes: int, stride: int, base_width: int, scale: int) -> int:
    width = planes * base_width // 64
    out = planes * 4
    conv1 = inplanes * width * scale + 2 * width * scale
    convs = (scale - 1) * (9 * width * width + 2 * width)
    conv3 = width * scale * out + 2 * out
    shortcut = inplanes * out + 2 * out if stride != 1 or inplanes != out else 0
    return conv1 + convs + conv3 + shortcut


def test_check_res2net_params_function() -> None:
    checks.check_res2net_params_function(_res2net_params)
    with pytest.raises(AssertionError, match="there are scale - 1 = 3 3x3 convolutions"):
        checks.check_res2net_params_function(
            lambda i, p, st, bw, sc: _res2net_params(i, p, st, bw, sc) + 9 * (p * bw // 64) ** 2 + 2 * (p * bw // 64))
    with pytest.raises(AssertionError, match="needs a projection shortcut"):
        checks.check_res2net_params_function(
            lambda i, p, st, bw, sc: _res2net_params(i, p, st, bw, sc) - (i * 4 * p + 8 * p if st != 1 or i != 4 * p else 0))
    with pytest.raises(AssertionError, match="return the count as an int"):
        checks.check_res2net_params_function(lambda *a: float(_res2net_params(*a)))


# --------------------------------------------------------------------------------------------------
# 07 multi-scale training
# --------------------------------------------------------------------------------------------------


def _test_size_for(split: str, train_size: int, candidates, *, centre=None, log: bool = True) -> int:
    centre = centre or (lambda low, high: math.sqrt(low * high))
    ideal = train_size * centre(*OBJECT_SIZE_FRACTIONS["train"]) / centre(*OBJECT_SIZE_FRACTIONS[split])
    return min(candidates, key=lambda size: (abs(math.log(size / ideal)) if log else abs(size - ideal), size))


def test_check_test_size_function() -> None:
    checks.check_test_size_function(_test_size_for)
    with pytest.raises(AssertionError, match="the wrong way round"):
        checks.check_test_size_function(lambda split, t, c: _test_size_for({"test-small": "test-large", "test-large": "test-small"}.get(split, split), t, c))
    with pytest.raises(AssertionError, match=r"geometric centre sqrt\(low \* high\)"):
        checks.check_test_size_function(lambda *a: _test_size_for(*a, centre=lambda low, high: (low + high) / 2))
    with pytest.raises(AssertionError, match="compare sizes on a log scale"):
        checks.check_test_size_function(lambda *a: _test_size_for(*a, log=False))


def _average_softmax(model: nn.Module, images: torch.Tensor, sizes) -> torch.Tensor:
    return torch.stack([F.softmax(model(resize_batch(images, size)), dim=1) for size in sizes]).mean(dim=0)


def test_check_average_softmax_function_and_the_model_keeps_its_mode() -> None:
    torch.manual_seed(0)
    model = randomize_norm(resnet18(width=4, stem="small", num_classes=10), seed=2)
    model.train()
    images = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    sizes = (12, 16, 24)
    checks.check_average_softmax_function(_average_softmax, model, images, sizes)
    assert all(m.training for m in model.modules())
    with pytest.raises(AssertionError, match="one resolution's softmax"):
        checks.check_average_softmax_function(lambda m, x, s: _average_softmax(m, x, s[:1]), model, images, sizes)
    with pytest.raises(AssertionError, match="average softmax outputs, not logits"):
        checks.check_average_softmax_function(
            lambda m, x, s: torch.stack([m(resize_batch(x, size)) for size in s]).mean(0), model, images, sizes)
    with pytest.raises(AssertionError, match="not quite"):
        checks.check_average_softmax_function(
            lambda m, x, s: F.softmax(torch.stack([m(resize_batch(x, size)) for size in s]).mean(0), dim=1),
            model, images, sizes)
    with pytest.raises(AssertionError, match=r"shape \(4, 10\)"):
        checks.check_average_softmax_function(lambda m, x, s: _average_softmax(m, x, s).T, model, images, sizes)
    assert all(m.training for m in model.modules())


def test_check_average_softmax_function_fails_wrong_answers_on_a_size_blind_model() -> None:
    # Mean colour -> logits: every resolution gives (almost) the same softmax, so only the check's own
    # size-dependent stand-in model can show that one size is not the average.
    torch.manual_seed(0)
    model = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 10))
    images = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    checks.check_average_softmax_function(_average_softmax, model, images, (12, 16, 24))
    with pytest.raises(AssertionError, match="one resolution's softmax"):
        checks.check_average_softmax_function(lambda m, x, s: _average_softmax(m, x, s[-1:]), model, images, (12, 16, 24))
    with pytest.raises(AssertionError, match="not quite"):
        checks.check_average_softmax_function(
            lambda m, x, s: F.softmax(torch.stack([m(resize_batch(x, size)) for size in s]).mean(0), dim=1),
            model, images, (12, 16, 24))


# --------------------------------------------------------------------------------------------------
# 08 tuning
# --------------------------------------------------------------------------------------------------


def _smooth(losses: list[float], beta: float, *, correct: bool = True) -> list[float]:
    average, out = 0.0, []
    for t, loss in enumerate(losses, start=1):
        average = beta * average + (1 - beta) * loss
        out.append(average / (1 - beta**t) if correct else average)
    return out


def test_check_smooth_losses_function() -> None:
    checks.check_smooth_losses_function(_smooth)
    with pytest.raises(AssertionError, match="plain moving average"):
        checks.check_smooth_losses_function(lambda losses, beta: _smooth(losses, beta, correct=False))
    with pytest.raises(AssertionError, match="one smoothed value per loss: 7 losses, 6 values"):
        checks.check_smooth_losses_function(lambda losses, beta: _smooth(losses, beta)[1:])
    with pytest.raises(AssertionError, match=r"then avg / \(1 - beta \*\* t\), t from 1"):
        checks.check_smooth_losses_function(lambda losses, beta: [x / (1 - beta ** (t + 2)) for t, x in
                                                                  enumerate(_smooth(losses, beta, correct=False))])
    with pytest.raises(AssertionError, match="a list of floats"):
        checks.check_smooth_losses_function(lambda losses, beta: None)


def _warmup(step: int, warmup_steps: int) -> float:
    return 1.0 if step >= warmup_steps else (step + 1) / (warmup_steps + 1)


def _warmup_stub(step: int, warmup_steps: int) -> float:
    raise NotImplementedError()


@pytest.mark.parametrize(("fn", "match"), [
    (lambda s, w: 1.0 if s >= w else s / w, "step 0 gets the factor 0"),
    (lambda s, w: 1.0 if s >= w else (s + 1) / w, "one step early"),
    (lambda s, w: (s + 1) / (w + 1), "the factor is 1.0"),
    (lambda s, w: 1.0 if s >= w else ((s + 1) / (w + 1)) ** 2, "solve for d"),
    (lambda s, w: 1.0 if s >= w else 0.5 + 0.5 * (s + 1) / (w + 1), "solve for d"),
    (lambda s, w: None, "as a number"),
    (_warmup_stub, "not written yet"),
])
def test_check_warmup_factor_function(fn, match) -> None:
    checks.check_warmup_factor_function(_warmup)
    with pytest.raises(AssertionError, match=match):
        checks.check_warmup_factor_function(fn)


def _param_groups(model: nn.Module, weight_decay: float, *, copies: bool = False) -> list[dict]:
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (decay if parameter.ndim > 1 else no_decay).append(parameter.detach().clone() if copies else parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def test_check_param_groups_function_passes_the_right_answer() -> None:  # about 1.5 s: a full ResNet-101
    checks.check_param_groups_function(_param_groups)


@pytest.mark.parametrize(
    "fn, match",
    [
        (lambda m, wd: _param_groups(m, wd)[::-1], "the first group decays"),
        (lambda m, wd: [{"params": list(m.parameters()), "weight_decay": wd}], "return a list of two dicts"),
        (lambda m, wd: [{"params": [p for p in m.parameters() if p.ndim > 1], "weight_decay": wd},
                        {"params": [p for p in m.parameters() if p.ndim == 1], "weight_decay": 0.0}],
         "leave out parameters with requires_grad=False"),
        (lambda m, wd: [{"params": [p for n, p in m.named_parameters() if "bn" not in n and p.requires_grad], "weight_decay": wd},
                        {"params": [p for n, p in m.named_parameters() if "bn" in n and p.requires_grad], "weight_decay": 0.0}],
         "split by shape: 1-D tensors"),
        (lambda m, wd: _param_groups(m, wd, copies=True), "not copies"),
        (lambda m, wd: [{"params": list(m.parameters()), "weight_decay": wd}, {"params": [m.fc.weight], "weight_decay": 0.0}],
         "appears twice"),
    ],
    ids=["swapped", "one-group", "frozen-included", "split-by-name", "copies", "twice"],
)
def test_check_param_groups_function_fails_wrong_answers(fn, match) -> None:
    with pytest.raises(AssertionError, match=match):
        checks.check_param_groups_function(fn)


# --------------------------------------------------------------------------------------------------
# prove_equal: an inline block equals the package's
# --------------------------------------------------------------------------------------------------


class InlineBasicBlock(nn.Module):
    """Notebook 02's block, written out: the attribute names are the package block's state_dict keys."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 momentum: float = 0.1, bias: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, padding=1, bias=bias)
        self.bn2 = nn.BatchNorm2d(planes, momentum=momentum)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


def _pair(**inline_options: object) -> tuple[nn.Module, nn.Module, torch.Tensor]:
    reference = randomize_norm(BasicBlock(8, 16, 2, projection(8, 16, 2)))
    inline = InlineBasicBlock(8, 16, 2, projection(8, 16, 2), **inline_options)
    return inline, reference, torch.randn(4, 8, 6, 6, generator=torch.Generator().manual_seed(0))


def test_prove_equal_passes_restores_modes_and_leaves_the_reference_alone() -> None:
    inline, reference, x = _pair()
    reference.eval()
    inline.train()
    inline.bn1.eval()
    before = {k: v.clone() for k, v in reference.state_dict().items()}
    summary = prove_equal(inline, reference, x)
    assert summary == "3,680 parameters each, strict load ok, bit-identical outputs in train and eval mode"
    assert not any(m.training for m in reference.modules())
    assert inline.training and inline.bn2.training and not inline.bn1.training
    for key, value in reference.state_dict().items():  # the training-mode pass's update is undone...
        assert torch.equal(value, before[key]), key
        assert torch.equal(inline.state_dict()[key], before[key]), key  # ... and the inline block holds the same


def test_prove_equal_runs_both_modules_on_the_same_random_numbers() -> None:
    inline = nn.Sequential(nn.Linear(6, 6), nn.Dropout(0.5))
    reference = nn.Sequential(nn.Linear(6, 6), nn.Dropout(0.5))
    assert "42 parameters each" in prove_equal(inline, reference, torch.ones(3, 6))


def test_prove_equal_fails_on_a_perturbed_weight() -> None:
    inline, reference, x = _pair()

    def perturb(module: nn.Module, args: tuple) -> None:  # survives the load: runs at every forward
        with torch.no_grad():
            module.weight[0, 0, 1, 1] += 1e-3

    inline.conv2.register_forward_pre_hook(perturb)
    with pytest.raises(AssertionError, match=r"outputs differ in train mode: max \|difference\| = [0-9.e-]+, [0-9,]+ of 576 "
                                             r"values differ; same weights, so the forward pass differs"):
        prove_equal(inline, reference, x)


def test_prove_equal_fails_on_eval_mode_only_differences() -> None:
    inline, reference, x = _pair(momentum=0.5)  # same training-mode output, other running statistics
    with pytest.raises(AssertionError, match=r"outputs differ in eval mode: .*training mode agrees"):
        prove_equal(inline, reference, x)


def test_prove_equal_fails_on_parameter_counts_and_keys() -> None:
    inline, reference, x = _pair(bias=True)
    with pytest.raises(AssertionError, match=r"parameter counts differ: inline 3,696, reference 3,680 \(\+16\)"):
        prove_equal(inline, reference, x)
    inline, reference, x = _pair()
    inline.norm1 = inline.bn1  # the same module under a second name: one more set of keys
    del inline.bn1
    with pytest.raises(AssertionError, match="do not load into the inline module with strict=True"):
        prove_equal(inline, reference, x)
    with pytest.raises(TypeError, match="x must be a tensor"):
        prove_equal(inline, reference, x.tolist())
    with pytest.raises(TypeError, match=r"reference must be an nn\.Module"):
        prove_equal(inline, reference.state_dict(), x)


# --------------------------------------------------------------------------------------------------
# The learner's random state
# --------------------------------------------------------------------------------------------------


def _small_resnet_call():
    model = resnet101(num_classes=10, width=8, stem="small")
    return lambda: checks.check_small_resnet(model, **BUDGET)


def _prove_equal_call():
    inline, reference, x = _pair()
    return lambda: prove_equal(inline, reference, x)


@pytest.mark.parametrize(
    "make_call",  # builds what the check needs (drawing from the global generator), returns the call
    [
        lambda: lambda: checks.check_output_size_function(_output_size),
        lambda: lambda: checks.check_conv_cost_function(_conv_cost),
        lambda: lambda: checks.check_bottleneck_params_function(_bottleneck_params),
        lambda: lambda: checks.check_v1_saving(512 * 256 * (28 * 28 - 14 * 14), inplanes=512, planes=256, size=28),
        lambda: lambda: checks.check_res2net_params_function(_res2net_params),
        lambda: lambda: checks.check_zero_init_function(_zero_init_last_bn),
        lambda: lambda: checks.check_shortcut_function(_shortcut),
        _small_resnet_call,
        _prove_equal_call,
    ],
    ids=["output-size", "conv-cost", "bottleneck", "v1", "res2net", "zero-init", "shortcut", "small-resnet", "prove-equal"],
)
def test_checks_neither_reseed_nor_advance_the_global_random_state(make_call) -> None:
    call = make_call()
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    call()
    assert torch.equal(torch.get_rng_state(), before)


def test_checks_draw_the_same_numbers_whatever_the_global_state(capsys) -> None:
    torch.manual_seed(1)
    checks.check_zero_init_function(_zero_init_last_bn)
    torch.manual_seed(2)
    checks.check_zero_init_function(_zero_init_last_bn)
    assert capsys.readouterr().out.count("Correct:") == 2


def test_claim_passes_silently_when_the_text_holds(capsys):
    checks.claim(True, "the network learned")
    checks.claim(np.bool_(True), "NumPy truth values work too")
    assert capsys.readouterr().out == ""


def test_claim_stops_with_the_sentence_and_the_way_out(monkeypatch):
    monkeypatch.delenv(checks.CLAIMS_ENV, raising=False)
    with pytest.raises(AssertionError, match=r"does not hold for this run: gain > 0.2; here 0.050\..*TUTORIAL_CLAIMS=warn"):
        checks.claim(0.05 > 0.2, "gain > 0.2; here 0.050")


def test_claim_only_warns_when_asked(monkeypatch, capsys):
    monkeypatch.setenv(checks.CLAIMS_ENV, "warn")
    checks.claim(False, "gain > 0.2; here 0.050")
    assert capsys.readouterr().out == "Warning: the text does not hold for this run: gain > 0.2; here 0.050\n"


def test_claim_needs_a_message():
    with pytest.raises(TypeError, match="message"):
        checks.claim(True, "")


# --- issue 13 exercises: 00 median timing, 01 uniform stack (effective receptive field), 04 extra block


def _stub(*args: object) -> object:
    raise NotImplementedError()


def _median_time(work, repeats: int, *, warm_up: bool = True, pick: str = "median") -> float:
    import time

    if warm_up:
        work()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return {"median": sorted(times)[len(times) // 2], "mean": sum(times) / len(times), "first": times[0] * 1e-3,
            "first_call": times[0], "min": min(times), "last": times[-1]}[pick]


def test_check_median_time_function(capsys) -> None:
    checks.check_median_time_function(_median_time)
    assert "Correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="looks like a mean"):
        checks.check_median_time_function(lambda work, n: _median_time(work, n, pick="mean"))
    with pytest.raises(AssertionError, match="call it once untimed"):
        checks.check_median_time_function(lambda work, n: _median_time(work, n, warm_up=False))
    with pytest.raises(AssertionError, match="faster than the 2 ms"):
        checks.check_median_time_function(lambda work, n: _median_time(work, n, pick="first"))
    # Sleeps run long on a busy machine, so which hint these three get can vary; each must still fail.
    for pick in ("first_call", "min", "last"):
        with pytest.raises(AssertionError):
            checks.check_median_time_function(lambda work, n, pick=pick: _median_time(work, n, pick=pick))
    with pytest.raises(AssertionError, match="not written yet"):
        checks.check_median_time_function(_stub)


def _uniform_stack(depth: int, *, padding: int = 1, weight: float = 1 / 9, relu: bool = False) -> nn.Module:
    layers: list[nn.Module] = []
    for _ in range(depth):
        conv = nn.Conv2d(1, 1, 3, padding=padding, bias=False)
        with torch.no_grad():
            conv.weight.fill_(weight)
        layers += [conv, nn.ReLU()] if relu else [conv]
    return nn.Sequential(*layers)


def test_check_uniform_stack_function(capsys) -> None:
    sides = checks.check_uniform_stack_function(_uniform_stack, depths=(4, 16), predicted={4: 9})
    out = capsys.readouterr().out
    assert "you predicted 9 px" in out and "Correct" in out
    assert sides[4] < 9 and sides[16] < 33 and sides[4] < sides[16]
    with pytest.raises(AssertionError, match="padding=1"):
        checks.check_uniform_stack_function(lambda d: _uniform_stack(d, padding=0), depths=(4,))
    with pytest.raises(AssertionError, match="1/9"):
        checks.check_uniform_stack_function(lambda d: _uniform_stack(d, weight=0.5), depths=(4,))
    with pytest.raises(AssertionError, match="only convolutions"):
        checks.check_uniform_stack_function(lambda d: _uniform_stack(d, relu=True), depths=(4,))
    with pytest.raises(AssertionError, match="needs 4"):
        checks.check_uniform_stack_function(lambda d: _uniform_stack(d + 1), depths=(4,))
    with pytest.raises(AssertionError, match="not written yet"):
        checks.check_uniform_stack_function(_stub, depths=(4,))


def _extra_block(stage: int, *, norms: bool = True, flops: bool = False, grow: bool = False) -> tuple[int, int]:
    planes, side = 64 * 2 ** (stage - 1), 56 // 2 ** (stage - 1)
    macs = 17 * planes * planes * (56 * 56 if grow else side * side)
    return 17 * planes * planes + (12 * planes if norms else 0), macs * (2 if flops else 1)


def test_check_extra_block_cost_function(capsys) -> None:
    checks.check_extra_block_cost_function(_extra_block)
    assert "in every stage" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="BatchNorm weights and biases"):
        checks.check_extra_block_cost_function(lambda s: _extra_block(s, norms=False))
    with pytest.raises(AssertionError, match="that is FLOPs"):
        checks.check_extra_block_cost_function(lambda s: _extra_block(s, flops=True))
    with pytest.raises(AssertionError, match="the side halves"):
        checks.check_extra_block_cost_function(lambda s: _extra_block(s, grow=True))
    with pytest.raises(AssertionError, match="not written yet"):
        checks.check_extra_block_cost_function(_stub)


def _best_pair(score, candidates):
    return max(itertools.combinations(candidates, 2), key=score)


def test_check_best_pair_function(capsys) -> None:
    checks.check_best_pair_function(_best_pair)
    assert "Correct" in capsys.readouterr().out
    checks.check_best_pair_function(lambda score, c: tuple(reversed(_best_pair(score, c))))   # either order
    with pytest.raises(AssertionError, match="max, not min"):
        checks.check_best_pair_function(lambda score, c: min(itertools.combinations(c, 2), key=score))
    with pytest.raises(AssertionError, match="good pair but not the best"):
        checks.check_best_pair_function(lambda score, c: (32, 48))
    with pytest.raises(AssertionError, match="score every pair"):
        checks.check_best_pair_function(lambda score, c: (c[1], c[3]))
    with pytest.raises(AssertionError, match="taken from candidates"):
        checks.check_best_pair_function(lambda score, c: (24, 64))   # ignores candidates and score
    with pytest.raises(AssertionError, match="two different sizes"):
        checks.check_best_pair_function(lambda score, c: (c[0], c[0]))
    with pytest.raises(AssertionError, match="a pair of sizes"):
        checks.check_best_pair_function(lambda score, c: c[0])
    with pytest.raises(AssertionError, match="not written yet"):
        checks.check_best_pair_function(_stub)
