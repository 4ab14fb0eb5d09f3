"""tutorial_lib.multiscale: resolution schedules, per-scale BatchNorm, test-time scales."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from tutorial_lib import multiscale as ms


def _tiny_net(num_classes: int = 3) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes),
    )


def test_random_resolution_is_a_pure_function_of_seed_and_step():
    schedule = ms.RandomResolution((32, 48, 64), seed=3)
    draws = [schedule(step) for step in range(300)]
    assert draws == [ms.RandomResolution((32, 48, 64), seed=3)(step) for step in range(300)]
    assert set(draws) == {32, 48, 64}
    # roughly uniform: each size between 20% and 47% of 300 draws
    assert all(60 <= draws.count(s) <= 140 for s in (32, 48, 64))
    assert draws != [ms.RandomResolution((32, 48, 64), seed=4)(step) for step in range(300)]
    # out of order, any step: no hidden state
    assert [schedule(step) for step in reversed(range(300))] == draws[::-1]


def test_random_resolution_identical_in_two_processes():
    code = "from tutorial_lib.multiscale import RandomResolution as R; s = R((32, 48, 64), seed=11); print([s(i) for i in range(64)])"
    outputs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout for _ in range(2)}
    assert len(outputs) == 1
    assert outputs.pop().strip() == str([ms.RandomResolution((32, 48, 64), seed=11)(i) for i in range(64)])


def test_progressive_resolution_goes_small_to_large_in_equal_phases():
    schedule = ms.ProgressiveResolution((64, 32, 48), total_steps=90)
    draws = [schedule(step) for step in range(90)]
    assert draws == [32] * 30 + [48] * 30 + [64] * 30
    assert schedule(1000) == 64


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: ms.RandomResolution(()), ValueError, "empty"),
        (lambda: ms.RandomResolution(64), TypeError, "sequence"),
        (lambda: ms.RandomResolution((32, 4)), ValueError, ">= 8"),
        (lambda: ms.RandomResolution((32,), seed=-1), ValueError, "seed"),
        (lambda: ms.ProgressiveResolution((32, 64), total_steps=0), ValueError, "total_steps"),
        (lambda: ms.resize_batch(torch.zeros(3, 8, 8), 4), ValueError, r"\(N, C, H, W\)"),
        (lambda: ms.Resized("model", 32), TypeError, "nn.Module"),
    ],
)
def test_bad_input_is_rejected(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_resize_batch_shapes_and_identity_at_native_size():
    x = torch.rand(2, 3, 32, 32)
    assert ms.resize_batch(x, 32) is x
    assert ms.resize_batch(x, 48).shape == (2, 3, 48, 48)
    assert ms.resize_batch(x, 16).shape == (2, 3, 16, 16)
    # a constant image stays constant whichever way it is resized
    flat = torch.full((1, 3, 32, 32), 0.25)
    assert torch.allclose(ms.resize_batch(flat, 20), torch.full((1, 3, 20, 20), 0.25))


def test_multiscale_testing_with_one_native_size_equals_plain_evaluation():
    from tutorial_lib.train import evaluate

    torch.manual_seed(0)
    data = TensorDataset(torch.rand(40, 3, 16, 16), torch.randint(0, 3, (40,)))
    model = _tiny_net().eval()
    plain = evaluate(model, data, batch_size=16)
    tta = evaluate(ms.MultiScaleTTA(model, (16,)), data, batch_size=16)
    assert tta["accuracy"] == plain["accuracy"]
    assert tta["loss"] == pytest.approx(plain["loss"], rel=1e-6)


def test_multiscale_testing_averages_probabilities():
    torch.manual_seed(0)
    model = _tiny_net().eval()
    x = torch.rand(4, 3, 16, 16)
    with torch.no_grad():
        expected = torch.stack([model(ms.resize_batch(x, s)).softmax(1) for s in (12, 16, 24)]).mean(0)
        got = ms.MultiScaleTTA(model, (12, 16, 24))(x).exp()
        flipped = ms.MultiScaleTTA(model, (16,), flip=True)(x).exp()
        expected_flip = (model(x).softmax(1) + model(torch.flip(x, dims=[3])).softmax(1)) / 2
    assert torch.allclose(got, expected, atol=1e-6)
    assert torch.allclose(flipped, expected_flip, atol=1e-6)


def test_per_scale_bn_keeps_separate_statistics_and_routes_each_batch():
    torch.manual_seed(0)
    model = ms.convert_to_per_scale_bn(_tiny_net(), (16, 24))
    bns = [m for m in model.modules() if isinstance(m, ms.PerScaleBatchNorm2d)]
    assert len(bns) == 2
    plain = [name for name, m in model.named_modules() if type(m) is nn.BatchNorm2d]
    assert plain and all(".bns." in name for name in plain), plain
    keys = set(model.state_dict())
    assert {"1.bns.16.running_mean", "1.bns.24.running_mean", "4.bns.16.weight"} <= keys
    model.train()
    before = {s: bns[0].bns[str(s)].running_mean.clone() for s in (16, 24)}
    model(torch.rand(8, 3, 16, 16) + 1.0)
    assert not torch.equal(bns[0].bns["16"].running_mean, before[16])
    assert torch.equal(bns[0].bns["24"].running_mean, before[24])
    assert int(bns[0].bns["16"].num_batches_tracked) == 1 and int(bns[0].bns["24"].num_batches_tracked) == 0
    model(torch.rand(8, 3, 24, 24) - 1.0)
    assert int(bns[0].bns["24"].num_batches_tracked) == 1 and int(bns[0].bns["16"].num_batches_tracked) == 1
    # the two scales learned different statistics from differently distributed inputs
    assert (bns[0].bns["16"].running_mean - bns[0].bns["24"].running_mean).abs().max() > 0
    # an unseen size borrows the nearest scale (ties to the smaller)
    assert ms.set_active_scale(model, 19) == 16 and ms.set_active_scale(model, 21) == 24
    assert ms.set_active_scale(model, 20) == 16


def test_per_scale_bn_starts_equal_to_the_original_model():
    import copy

    torch.manual_seed(0)
    model = _tiny_net().eval()
    model[1].running_mean.uniform_()  # non-trivial statistics, so a wrong copy would show
    original = copy.deepcopy(model)
    x, x32 = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        converted = ms.convert_to_per_scale_bn(model, (16, 32))
        # at init every scale's copy is the original, so both routes give the original's output
        assert torch.equal(converted(x), original(x))
        assert torch.equal(converted(x32), original(x32))


def test_convert_rejects_models_without_batchnorm():
    with pytest.raises(ValueError, match="norm='batch'"):
        ms.convert_to_per_scale_bn(nn.Sequential(nn.Conv2d(3, 3, 1)), (32,))


def test_feature_pyramid_of_resnet101_has_four_levels_with_expected_shapes():
    import torchvision

    from tutorial_lib.models import resnet101

    model = resnet101().eval()
    pyramid = ms.feature_pyramid(model)
    with torch.no_grad():
        features = pyramid(torch.rand(1, 3, 64, 64))
    assert list(features) == ["C2", "C3", "C4", "C5"]
    assert [tuple(f.shape) for f in features.values()] == [(1, 256, 16, 16), (1, 512, 8, 8), (1, 1024, 4, 4), (1, 2048, 2, 2)]
    # shares weights with the model: the same tensors, not copies
    assert pyramid.get_submodule("layer1.0.conv1").weight is model.layer1[0].conv1.weight
    # works for a torchvision model too
    tv = ms.feature_pyramid(torchvision.models.resnet18().eval())
    assert tuple(tv(torch.rand(1, 3, 64, 64))["C5"].shape) == (1, 512, 2, 2)
    with pytest.raises(ValueError, match="layer1"):
        ms.feature_pyramid(nn.Sequential(nn.Conv2d(3, 3, 1)))


def test_fit_trains_at_the_scheduled_sizes():
    from tutorial_lib.train import fit

    torch.manual_seed(0)
    data = TensorDataset(torch.rand(64, 3, 32, 32), torch.randint(0, 3, (64,)))
    model = _tiny_net()
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[-1]))
    fit(model, data, epochs=2, batch_size=16, train_sizes=(16, 24, 32), seed=5, progress=False)
    schedule = ms.RandomResolution((16, 24, 32), seed=5)
    assert seen == [schedule(step) for step in range(8)]
    seen.clear()
    fit(model, data, epochs=2, batch_size=16, train_sizes=(32, 16), progressive=True, progress=False)
    assert seen == [16] * 4 + [32] * 4
    with pytest.raises(ValueError, match="at least two train_sizes"):
        fit(model, data, epochs=1, batch_size=16, train_sizes=(32,), progressive=True, progress=False)


def test_validation_size_rule():
    from tutorial_lib.train import validation_size

    assert validation_size([32]) == 32
    assert validation_size([24, 32, 48]) == 32
    assert validation_size([48, 24, 32, 40]) == 32  # lower middle of 24, 32, 40, 48
    assert validation_size([48, 24], progressive=True) == 48
    with pytest.raises(ValueError, match="empty"):
        validation_size([])
    with pytest.raises(ValueError, match=r"\[1\] must be >= 8"):
        validation_size([32, 4])
    with pytest.raises(TypeError, match="sequence"):
        validation_size(32)


@pytest.mark.parametrize("train_sizes, progressive, expected", [((16,), False, 16), ((16, 24, 32), False, 24), ((32, 16), True, 32)])
def test_fit_validates_at_a_training_size_not_the_stored_size(train_sizes, progressive, expected):
    from tutorial_lib.train import evaluate, fit

    torch.manual_seed(0)
    data = TensorDataset(torch.rand(64, 3, 32, 32), torch.randint(0, 3, (64,)))
    val = TensorDataset(torch.rand(40, 3, 32, 32), torch.randint(0, 3, (40,)))
    model = _tiny_net()
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[-1]) if not module.training else None)
    history = fit(model, data, epochs=2, batch_size=16, train_sizes=train_sizes, progressive=progressive,
                  val_data=val, progress=False)
    assert seen and set(seen) == {expected}
    # the recorded accuracy is the model's accuracy at that size, exactly
    assert history.epochs[-1]["val_acc"] == evaluate(ms.Resized(model, expected), val)["accuracy"]


def test_cli_multiscale_flags_end_to_end(tmp_path):
    import json

    from tutorial_lib.cli import main

    out = tmp_path / "run"
    code = main([
        "train", "--dataset", "multiscale-digits", "--out", str(out), "--epochs", "1", "--num-samples", "128",
        "--width", "8", "--train-sizes", "24,32", "--per-scale-bn", "--test-sizes", "24,32", "--no-progress",
    ])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["test"]) == {"test", "test-small", "test-large"}
    assert metrics["config"]["fit"]["train_sizes"] == [24, 32]
    assert metrics["config"]["model"]["per_scale_bn"] is True
    assert metrics["config"]["eval"]["test_sizes"] == [24, 32]
    state = __import__("torch").load(out / "checkpoint.pt", weights_only=True)["model"]
    assert any(".bns.24." in key for key in state) and any(".bns.32." in key for key in state)


def test_recalibrated_tta_gives_each_size_its_own_statistics_and_leaves_the_model_alone():
    torch.manual_seed(0)
    model = _tiny_net().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = TensorDataset(torch.rand(64, 3, 16, 16), torch.zeros(64, dtype=torch.long))
    tta = ms.recalibrated_tta(model, data, (8, 16), num_batches=4, batch_size=16)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "the model must not change"
    assert set(tta.models) == {"8", "16"}
    means = {size: tta.network(size)[1].running_mean for size in (8, 16)}
    assert not torch.allclose(means[8], means[16]), "each size must have statistics of its own"
    # Each copy holds exactly what recalibrate_at computes at its size.
    expected = ms.recalibrate_at(copy.deepcopy(model), data, 16, num_batches=4, batch_size=16)
    assert torch.allclose(tta.network(16)[1].running_var, expected[1].running_var)
    # One size: plain evaluation of the recalibrated copy at that size.
    x = torch.rand(4, 3, 16, 16)
    single = ms.recalibrated_tta(model, data, (16,), num_batches=4, batch_size=16)
    with torch.no_grad():
        assert torch.allclose(single(x).exp(), expected.eval()(x).softmax(1), atol=1e-6)


def test_multiscale_tta_rejects_a_model_mapping_that_does_not_match_the_sizes():
    with pytest.raises(ValueError, match=r"one model per test size needed"):
        ms.MultiScaleTTA({16: _tiny_net()}, (16, 24))
    with pytest.raises(TypeError, match="torch.nn.Module or a"):
        ms.MultiScaleTTA("net", (16,))
