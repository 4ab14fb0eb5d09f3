"""Tests for tutorial_lib.cost: parameter counts and MACs/FLOPs."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from tutorial_lib.cost import count_flops, count_parameters
from tutorial_lib.models import resnet18, resnet50, resnet101


def test_count_parameters_small_modules() -> None:
    assert count_parameters(nn.Conv2d(3, 8, 3, bias=False)) == 8 * 3 * 3 * 3
    assert count_parameters(nn.Conv2d(3, 8, 3)) == 8 * 3 * 3 * 3 + 8
    # BatchNorm: weight and bias are parameters; running statistics are buffers.
    assert count_parameters(nn.BatchNorm2d(8)) == 16


def test_count_parameters_trainable_only_and_shared_weights() -> None:
    frozen = nn.Linear(4, 4)
    frozen.requires_grad_(False)
    model = nn.Sequential(frozen, nn.Linear(4, 2))
    assert count_parameters(model) == 20 + 10
    assert count_parameters(model, trainable_only=True) == 10
    shared = nn.Linear(3, 3)
    assert count_parameters(nn.Sequential(shared, shared)) == 12
    with pytest.raises(TypeError, match="trainable_only must be True or False"):
        count_parameters(model, "yes")
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        count_parameters([shared])


def test_count_flops_of_a_convolution_follows_the_formula() -> None:
    conv = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
    result = count_flops(conv, (3, 224, 224))
    # One MAC per weight per output pixel: C_out * C_in * k * k * H_out * W_out.
    assert result["macs"] == 64 * 3 * 7 * 7 * 112 * 112
    assert result["flops"] == 2 * result["macs"]
    linear = nn.Linear(2048, 1000)
    assert count_flops(linear, torch.empty(4, 2048))["macs"] == 4 * 2048 * 1000


def test_resnet101_gmacs_at_224_v15_and_v1(on_meta, meta_resnet101) -> None:
    # count_flops runs on the meta device anyway; building there too skips the random initialization.
    v15 = count_flops(meta_resnet101, 224)
    assert round(v15["macs"] / 1e9, 2) == 7.80
    assert round(v15["flops"] / 1e9, 1) == 15.6
    assert v15["macs"] == count_flops(on_meta(torchvision.models.resnet101), 224)["macs"]
    v1 = count_flops(on_meta(resnet101, stride_in="v1"), 224)
    assert round(v1["macs"] / 1e9, 2) == 7.57


def test_input_forms_agree_and_scale_with_batch() -> None:
    model = resnet18(width=8)
    single = count_flops(model, 64)["macs"]
    assert count_flops(model, (64, 64))["macs"] == single
    assert count_flops(model, (3, 64, 64))["macs"] == single
    assert count_flops(model, [3, 64, 64])["macs"] == single
    assert count_flops(model, (4, 3, 64, 64))["macs"] == 4 * single
    assert count_flops(model, torch.randn(2, 3, 64, 64))["macs"] == 2 * single
    gray = resnet18(width=8, in_channels=1)
    assert count_flops(gray, 64)["macs"] < single


def test_meta_and_real_counts_agree_and_leave_the_model_untouched() -> None:
    model = resnet18(width=8).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    meta = count_flops(model, 32)
    real = count_flops(model, 32, meta=False)
    assert meta == real
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_per_module_breakdown_adds_up() -> None:
    model = resnet50(width=16)
    result = count_flops(model, 64, per_module=True)
    by_module = result["by_module"]
    assert by_module[""] == result["macs"]
    leaves = [name for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert sum(by_module[name] for name in leaves) == result["macs"]
    assert sum(by_module[f"layer{i}"] for i in range(1, 5)) + by_module["conv1"] + by_module["fc"] == result["macs"]
    assert by_module["conv1"] == 16 * 3 * 49 * 32 * 32


@pytest.mark.parametrize(
    "inputs, error, match",
    [
        ("224", TypeError, "inputs must be a tensor"),
        (0, ValueError, "positive ints"),
        ((1, 2, 3, 4, 5), ValueError, r"\(N, C, H, W\)"),
        ((224,), ValueError, "image size"),
    ],
)
def test_count_flops_rejects_bad_input(inputs, error, match) -> None:
    with pytest.raises(error, match=match):
        count_flops(resnet18(width=8), inputs)


def test_count_flops_errors_name_the_way_out() -> None:
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        count_flops("resnet18", 224)
    with pytest.raises(ValueError, match="pass an example input tensor"):
        count_flops(nn.Linear(3, 3), 224)
    # A wrong channel count is reported by the model itself.
    with pytest.raises(ValueError, match=r"expected a batch of shape \(N, 3, H, W\)"):
        count_flops(resnet18(width=8), (1, 64, 64))

    class ReadsValues(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * float(x.sum().item() > 0)

    with pytest.raises(RuntimeError, match="meta=False"):
        count_flops(ReadsValues(), torch.ones(1, 3))
    assert count_flops(ReadsValues(), torch.ones(1, 3), meta=False) == {"macs": 0, "flops": 0}
