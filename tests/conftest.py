"""Shared fixtures for the unit tests.

Full-width networks (ResNet-101 has 44.5 M parameters) cost about a second each to build on a
2-core CPU, almost all of it in the random initialization. Where a test needs only shapes,
state_dict keys, parameter counts or MACs, it builds the network on PyTorch's ``meta`` device
(no storage, no arithmetic) with the ``on_meta`` fixture; tests that compare values keep real tensors.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tutorial_lib import models


def _on_meta(builder, *args, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return builder(*args, **kwargs)


@pytest.fixture(scope="session")
def on_meta():
    """``on_meta(builder, *args, **kwargs)``: the network with every parameter and buffer on the meta device."""
    return _on_meta


@pytest.fixture(scope="session")
def uninitialized():
    """``uninitialized(builder, *args, **kwargs)``: the network on the CPU with uninitialized storage.

    Only for a network whose every tensor a strict ``load_state_dict`` overwrites before it is
    used (its state_dict holds all its parameters and buffers): it skips the random initialization.
    """
    return lambda builder, *args, **kwargs: _on_meta(builder, *args, **kwargs).to_empty(device="cpu")


@pytest.fixture(scope="session")
def meta_resnet101() -> nn.Module:
    """One default ResNet-101 on the meta device, shared by the tests that only read its structure.

    Tests must not change it: ``stage_shapes`` and ``count_flops`` restore the mode they change.
    """
    return _on_meta(models.resnet101)

