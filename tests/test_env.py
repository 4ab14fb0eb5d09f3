"""tutorial_lib.env: seeding, device choice, thread settings and the environment report."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from tutorial_lib import env


def test_seed_everything_repeats_every_generator():
    def draw():
        import random

        return random.random(), float(np.random.rand()), torch.rand(3).tolist()

    env.seed_everything(123)
    first = draw()
    env.seed_everything(123)
    assert draw() == first
    env.seed_everything(124)
    assert draw() != first


def test_seed_everything_returns_seed_and_sets_determinism():
    try:
        assert env.seed_everything(7, deterministic=True) == 7
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        env.seed_everything(0, deterministic=False)
    assert not torch.are_deterministic_algorithms_enabled()


@pytest.mark.parametrize("bad, error", [(-1, ValueError), (2**32, ValueError), (1.5, TypeError), ("0", TypeError), (True, TypeError)])
def test_seed_everything_rejects_bad_seeds(bad, error):
    with pytest.raises(error, match="seed"):
        env.seed_everything(bad)


def test_choose_device_defaults_to_best_available(monkeypatch):
    monkeypatch.delenv(env.DEVICE_ENV_VAR, raising=False)
    expected = "cuda" if torch.cuda.is_available() else ("mps" if env._mps_available() else "cpu")
    assert env.choose_device().type == expected


def test_choose_device_prefers_argument_then_environment(monkeypatch):
    monkeypatch.setenv(env.DEVICE_ENV_VAR, "cpu")
    assert env.choose_device() == torch.device("cpu")
    assert env.choose_device("cpu") == torch.device("cpu")


def test_choose_device_falls_through_cuda_then_mps(monkeypatch):
    monkeypatch.delenv(env.DEVICE_ENV_VAR, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(env, "_mps_available", lambda: True)
    assert env.choose_device().type == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert env.choose_device().type == "cuda"


def test_choose_device_rejects_unknown_and_unavailable(monkeypatch):
    monkeypatch.delenv(env.DEVICE_ENV_VAR, raising=False)
    with pytest.raises(ValueError, match="cuda, mps, cpu"):
        env.choose_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available"):
        env.choose_device("cuda")
    monkeypatch.setenv(env.DEVICE_ENV_VAR, "gpu")
    with pytest.raises(ValueError, match=r"\$TUTORIAL_DEVICE"):
        env.choose_device()


def test_set_threads_roundtrip():
    before = torch.get_num_threads()
    try:
        assert env.set_threads(1) == 1
        assert env.set_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="num_threads must be >= 1"):
        env.set_threads(0)


def test_environment_report_keys_and_values():
    report = env.environment_report()
    for key in ("python", "torch", "torchvision", "timm", "device", "threads", "embedded_data_offline"):
        assert key in report
    assert report["torch"] == torch.__version__
    assert report["threads"] == torch.get_num_threads()
    assert report["embedded_data_offline"] is True
    assert "torch" in env.format_report(report)


def test_cli_env_prints_report_as_json():
    out = subprocess.run(
        [sys.executable, "-m", "tutorial_lib", "env", "--json"], capture_output=True, text=True, check=True
    )
    report = json.loads(out.stdout)
    assert report["torch"] == torch.__version__
    assert report["embedded_data_offline"] is True


def test_supports_bf16_answers_for_the_chosen_device_and_is_in_the_report():
    import torch

    answer = env.supports_bf16("cpu")
    assert isinstance(answer, bool)
    assert answer == bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert env.environment_report()["bf16"] == env.supports_bf16()
    with pytest.raises(ValueError):
        env.supports_bf16("tpu")
