"""Res2Net (Gao et al., TPAMI 2021): keys, counts and outputs equal timm's; the block's hierarchy."""

from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

from tutorial_lib.blocks import Bottleneck, Res2NetBottleneck, projection
from tutorial_lib.cost import count_parameters
from tutorial_lib.models import create_model, res2net50_26w_4s, res2net101_26w_4s


def _randomize_bn_statistics(state_dict):
    generator = torch.Generator().manual_seed(0)
    for key, value in state_dict.items():
        if key.endswith("running_mean"):
            value.copy_(torch.rand(value.shape, generator=generator) - 0.5)
        elif key.endswith("running_var"):
            value.copy_(torch.rand(value.shape, generator=generator) + 0.5)
    return state_dict


@pytest.mark.parametrize(
    "name, builder, params",
    [("res2net50_26w_4s", res2net50_26w_4s, 25_699_120), ("res2net101_26w_4s", res2net101_26w_4s, 45_206_688)],
)
def test_timm_weights_load_strictly_and_give_identical_outputs(name, builder, params, uninitialized):
    reference = timm.create_model(name, pretrained=False).eval()
    model = uninitialized(builder).eval()  # the strict load below fills every tensor
    assert count_parameters(model) == count_parameters(reference) == params
    state = _randomize_bn_statistics(reference.state_dict())
    assert list(model.state_dict()) == list(state)
    model.load_state_dict(state, strict=True)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))


def test_res2net_block_shapes_and_keys():
    block = Res2NetBottleneck(256, 128, stride=2, downsample=projection(256, 512, 2))
    assert block.width == 52 and len(block.convs) == 3 and len(block.bns) == 3
    assert isinstance(block.pool, nn.AvgPool2d)
    assert tuple(block(torch.rand(1, 256, 16, 16)).shape) == (1, 512, 8, 8)
    inner = Res2NetBottleneck(512, 128)
    assert inner.pool is None and not inner.is_first
    assert {"convs.0.weight", "bns.2.running_var", "conv3.weight", "bn3.weight"} <= set(inner.state_dict())


def test_groups_are_chained_hierarchically_in_inner_blocks():
    # Eq. 1: y_i = K_i(x_i + y_{i-1}). Perturbing only the first group must change every convolved
    # group's output in an inner block, and none but the first in a stage (is_first) block.
    torch.manual_seed(0)
    for stage_block, expected in ((False, [True, True, True]), (True, [True, False, False])):
        block = Res2NetBottleneck(64, 16, downsample=projection(64, 64) if stage_block else None, base_width=64, scale=4).eval()
        outputs = {}
        for i, conv in enumerate(block.convs):
            conv.register_forward_hook(lambda m, a, out, i=i, outs=outputs: outs.__setitem__(i, out.clone()))
        x = torch.rand(1, 64, 8, 8)
        with torch.no_grad():
            block(x)
            first = dict(outputs)
            # perturb the first group after conv1 by perturbing bn1's shift for those channels
            block.bn1.bias.data[: block.width] += 1.0
            block(x)
        changed = [not torch.equal(first[i], outputs[i]) for i in range(3)]
        assert changed == expected


def test_zero_init_residual_covers_res2net_blocks():
    model = res2net50_26w_4s(width=16, zero_init_residual=True)
    blocks = [m for m in model.modules() if isinstance(m, Res2NetBottleneck)]
    assert len(blocks) == 16
    assert all(torch.count_nonzero(b.bn3.weight) == 0 for b in blocks)


def test_res2net_at_cpu_width_trains_a_step():
    model = res2net50_26w_4s(num_classes=10, width=16, stem="small")
    out = model(torch.rand(4, 3, 32, 32))
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize(
    "kwargs, match",
    [({"scale": 1}, "scale must be >= 2"), ({"base_width": 0}, "base_width"), ({"base_width": 1, "scale": 4}, "raise base_width")],
)
def test_bad_block_arguments(kwargs, match):
    planes = 16 if kwargs.get("base_width") != 1 else 8
    with pytest.raises(ValueError, match=match):
        Res2NetBottleneck(planes * 4, planes, **kwargs)


def test_unknown_arch_lists_res2net():
    with pytest.raises(ValueError, match="res2net101_26w_4s"):
        create_model("res2net")
    assert Bottleneck.expansion == Res2NetBottleneck.expansion == 4
