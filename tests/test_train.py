"""Tests for tutorial_lib.train: fit, evaluate, History, checkpoints and exact resume.

Every test trains tiny models on tiny tensors, so the whole file runs in seconds on a CPU.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from tutorial_lib.data import Augment, batches
from tutorial_lib.train import (
    CHECKPOINT_NAME,
    FitConfig,
    History,
    evaluate,
    fit,
    gradient_norms,
    load_checkpoint,
    make_optimizer,
    param_groups,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


# --------------------------------------------------------------------------------------------------
# Fixtures: a learnable toy problem with uint8 images, in three dataset flavours
# --------------------------------------------------------------------------------------------------


def _toy_tensors(n: int = 96, size: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images whose label (0-2) is which third of the image holds a bright bar."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 60, (n, 3, size, size), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 3, (n,), generator=g)
    for i, label in enumerate(labels.tolist()):
        lo = label * size // 3
        images[i, :, :, lo : lo + max(1, size // 3)] = 230
    return images, labels


class TensorImages(Dataset):
    """Like load_dataset's result: exposes .images/.labels/.object_sizes/.classes for the fast path."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, sizes: torch.Tensor | None = None) -> None:
        self.images, self.labels = images, labels
        self.object_sizes = sizes
        self.classes = ["left", "middle", "right"]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i].float() / 255.0, int(self.labels[i])


class ItemImages(Dataset):
    """The same items with no tensors exposed, so fit must go through a DataLoader."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self._inner = TensorImages(images, labels)

    def __len__(self) -> int:
        return len(self._inner)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self._inner[i]


def _tiny_model(seed: int = 0, bn: bool = True) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1, bias=not bn),
        nn.BatchNorm2d(6) if bn else nn.Identity(),
        nn.ReLU(),
        nn.Conv2d(6, 6, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d((1, 3)),
        nn.Flatten(),
        nn.Linear(18, 3),
    )


FAST = dict(batch_size=16, lr=1e-2, progress=False)


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _metrics(history: History) -> list[dict]:
    """Epoch records without the wall-clock seconds (the only field that may differ between runs)."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history.epochs]


# --------------------------------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------------------------------


def test_fit_learns_and_records_every_epoch_and_step():
    images, labels = _toy_tensors()
    data = TensorImages(images, labels)
    model = _tiny_model()
    model.eval()
    history = fit(model, data, epochs=4, val_data=data, augment=False, **FAST)
    assert len(history) == 4
    assert [r["epoch"] for r in history.epochs] == [1, 2, 3, 4]
    assert set(history.epochs[0]) == {"epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds"}
    assert len(history.step_loss) == len(history.step_lr) == 4 * (96 // 16)
    assert history.epochs[-1]["val_acc"] == evaluate(model, data)["accuracy"]
    assert history.epochs[-1]["val_acc"] >= 0.9  # the bar task is easy
    assert history.step_loss[-1] < history.step_loss[0]
    assert history.train_seconds == pytest.approx(sum(r["seconds"] for r in history.epochs))
    assert not history.interrupted
    assert not model.training  # fit restores the mode the model came in


def test_fit_same_seed_is_bitwise_reproducible_and_seed_matters():
    images, labels = _toy_tensors()
    data = TensorImages(images, labels)
    runs = []
    for seed in (0, 0, 1):
        model = _tiny_model()
        history = fit(model, data, epochs=2, augment=True, seed=seed, **FAST)
        runs.append((model, history))
    assert _same_weights(runs[0][0], runs[1][0])
    assert runs[0][1].step_loss == runs[1][1].step_loss
    assert not _same_weights(runs[0][0], runs[2][0])


def test_bf16_mixed_precision_trains_keeps_float32_weights_and_is_recorded(tmp_path):
    images, labels = _toy_tensors()
    data = TensorImages(images, labels)
    model = _tiny_model()
    history = fit(model, data, epochs=3, augment=False, precision="bf16", val_data=data, out_dir=tmp_path, **FAST)
    assert history.precision == "bf16"
    assert all(p.dtype == torch.float32 for p in model.parameters()), "autocast keeps float32 master weights"
    assert history.epochs[-1]["val_acc"] >= 0.9 and history.step_loss[-1] < history.step_loss[0]
    # The steps really ran in bfloat16: the float32 run of the same seed gives other losses.
    reference = fit(_tiny_model(), data, epochs=3, augment=False, **FAST)
    assert reference.precision == "fp32" and reference.step_loss != history.step_loss
    # The checkpoint records it, and a resume in another precision is refused.
    assert History.from_dict(torch.load(tmp_path / "checkpoint.pt", weights_only=True)["history"]).precision == "bf16"
    with pytest.raises(ValueError, match="precision"):
        fit(_tiny_model(), data, epochs=3, augment=False, precision="fp32", out_dir=tmp_path, resume=True, **FAST)


def test_auto_precision_follows_the_hardware():
    from tutorial_lib.env import supports_bf16

    images, labels = _toy_tensors(n=32)
    history = fit(_tiny_model(), TensorImages(images, labels), epochs=1, precision="auto", **FAST)
    assert history.precision == ("bf16" if supports_bf16("cpu") else "fp32")


def test_fast_tensor_path_equals_dataloader_path():
    images, labels = _toy_tensors()
    fast_model, slow_model = _tiny_model(), _tiny_model()
    fast = fit(fast_model, TensorImages(images, labels), epochs=2, augment=True, **FAST)
    slow = fit(slow_model, ItemImages(images, labels), epochs=2, augment=True, **FAST)
    assert _same_weights(fast_model, slow_model)
    assert fast.step_loss == slow.step_loss


def test_channels_last_layout_trains_the_same_network():
    images, labels = _toy_tensors()
    data = TensorImages(images, labels)
    nchw, nhwc = _tiny_model(), _tiny_model()
    a = fit(nchw, data, epochs=1, **FAST)
    b = fit(nhwc, data, epochs=1, channels_last=True, **FAST)
    conv = nhwc[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert b.step_loss[0] == pytest.approx(a.step_loss[0], rel=1e-5)  # same weights, same first loss
    assert b.step_loss == pytest.approx(a.step_loss, rel=1e-3)
    assert evaluate(nhwc, data)["accuracy"] == pytest.approx(evaluate(nchw, data)["accuracy"], abs=0.05)


def test_tensordataset_float_images_work():
    images, labels = _toy_tensors(n=40)
    history = fit(_tiny_model(), TensorDataset(images.float() / 255, labels), epochs=1, **FAST)
    assert len(history.step_loss) == 40 // 16


def test_dataset_smaller_than_batch_gives_one_step():
    images, labels = _toy_tensors(n=10)
    history = fit(_tiny_model(), TensorImages(images, labels), epochs=2, **FAST)
    assert len(history.step_loss) == 2


class InterruptAfter(nn.Module):
    """Wraps a model and raises KeyboardInterrupt (as Ctrl-C would) at the n-th training forward."""

    def __init__(self, model: nn.Module, calls: int) -> None:
        super().__init__()
        self.model = model
        self.calls_left = calls

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.calls_left -= 1
            if self.calls_left < 0:
                raise KeyboardInterrupt
        return self.model(x)


@pytest.mark.parametrize("optimizer,schedule,channels_last", [("adamw", "onecycle", False), ("sgd", "cosine", True)])
def test_interrupt_then_resume_equals_uninterrupted_run(tmp_path, optimizer, schedule, channels_last):
    images, labels = _toy_tensors()
    data = TensorImages(images, labels)
    settings = dict(
        epochs=3, optimizer=optimizer, schedule=schedule, augment=True, channels_last=channels_last, val_data=data, seed=7, **FAST
    )

    straight = InterruptAfter(_tiny_model(), calls=10**9)
    full = fit(straight, data, out_dir=tmp_path / "straight", **settings)

    steps = 96 // 16
    first = InterruptAfter(_tiny_model(), calls=2 * steps + 2)  # Ctrl-C in the middle of epoch 3
    partial = fit(first, data, out_dir=tmp_path / "resumed", **settings)
    assert partial.interrupted and len(partial) == 2
    assert load_checkpoint(tmp_path / "resumed")["epoch"] == 2  # the last complete epoch is kept

    second = InterruptAfter(_tiny_model(seed=123), calls=10**9)  # different init: resume must overwrite it
    resumed = fit(second, data, out_dir=tmp_path / "resumed", resume=True, **settings)
    assert not resumed.interrupted
    assert _same_weights(straight, second)
    assert _metrics(resumed) == _metrics(full)
    assert resumed.step_loss == full.step_loss and resumed.step_lr == full.step_lr


# --------------------------------------------------------------------------------------------------
# Distributed training: what can be checked in one process (tests/test_distributed.py runs two)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", [TensorImages, ItemImages])
def test_batches_shards_put_together_are_the_batches(flavour):
    images, labels = _toy_tensors(n=40)
    data = flavour(images, labels)
    whole = list(batches(data, 16, shuffle_seed=3))
    shards = [list(batches(data, 16, shuffle_seed=3, shard=(rank, 4))) for rank in range(4)]
    assert [len(s) for s in shards] == [len(whole)] * 4 == [2] * 4  # the same steps, the last short batch dropped
    for step, (batch_images, batch_labels) in enumerate(whole):
        assert all(len(shard[step][1]) == 4 for shard in shards)  # contiguous slices of 16 / 4
        assert torch.equal(torch.cat([shard[step][0] for shard in shards]), batch_images)
        assert torch.equal(torch.cat([shard[step][1] for shard in shards]), batch_labels)
    with pytest.raises(ValueError, match="not divisible by the world size 3"):
        list(batches(data, 16, shuffle_seed=3, shard=(0, 3)))
    with pytest.raises(ValueError, match="shard rank must be >= 0 and <= 3, got 4"):
        list(batches(data, 16, shard=(4, 4)))
    with pytest.raises(TypeError, match=r"shard must be a \(rank, world_size\) pair"):
        list(batches(data, 16, shard=2))


def test_augment_draws_for_the_whole_batch_so_slices_equal_the_whole():
    images = torch.rand(8, 3, 16, 16)
    aug = Augment(max_shift=0.2, scale=(0.8, 1.25), rotate=10.0, flip=True, elastic=0.05)
    whole = aug(images, torch.Generator().manual_seed(4))
    slices = [aug(images[i : i + 2], torch.Generator().manual_seed(4), rows=(i, 8)) for i in range(0, 8, 2)]
    assert torch.equal(torch.cat(slices), whole), "per-item draws: the union of the slices is the whole batch, bit for bit"
    assert torch.equal(aug(images, torch.Generator().manual_seed(4), rows=(0, 8)), whole)
    with pytest.raises(ValueError, match="inside the batch"):
        aug(images[:2], torch.Generator().manual_seed(4), rows=(7, 8))


def test_distributed_settings_are_checked_before_training():
    from tutorial_lib.train import run_record

    config = FitConfig(epochs=1, batch_size=16)
    assert run_record(config, 64, "cpu", world_size=2)["world_size"] == 2
    assert run_record(config, 64, "cpu")["world_size"] == 1
    with pytest.raises(ValueError, match=r"not divisible by the world size 3.*global batch.*e\.g\. batch_size=18"):
        run_record(config, 64, "cpu", world_size=3)
    with pytest.raises(ValueError, match="world size 8 is larger than the dataset \\(5 images\\)"):
        run_record(FitConfig(epochs=1, batch_size=8), 5, "cpu", world_size=8)
    with pytest.raises(ValueError, match="fewer than one global batch"):
        run_record(config, 12, "cpu", world_size=2)
    with pytest.raises(TypeError, match="sync_bn must be True or False"):
        FitConfig(epochs=1, sync_bn="yes")


def test_sync_bn_without_a_process_group_changes_nothing_but_the_record(tmp_path):
    images, labels = _toy_tensors()
    data = TensorImages(images, labels)
    plain, synced = _tiny_model(), _tiny_model()
    a = fit(plain, data, epochs=2, augment=True, **FAST)
    b = fit(synced, data, epochs=2, augment=True, sync_bn=True, out_dir=tmp_path, **FAST)
    assert _same_weights(plain, synced) and a.step_loss == b.step_loss
    assert type(synced[1]) is nn.BatchNorm2d, "the model comes back with its own layers"
    assert load_checkpoint(tmp_path)["config"]["sync_bn"] is True


def test_in_a_process_group_of_one_fit_is_one_process_and_nccl_needs_cuda(monkeypatch):
    import torch.distributed as dist

    images, labels = _toy_tensors()
    data = TensorImages(images, labels)
    alone = _tiny_model()
    fit(alone, data, epochs=1, augment=True, **FAST)
    dist.init_process_group("gloo", rank=0, world_size=1, store=dist.HashStore())
    try:
        grouped = _tiny_model()
        history = fit(grouped, data, epochs=1, augment=True, sync_bn=True, **FAST)
        assert _same_weights(alone, grouped) and len(history) == 1
        monkeypatch.setattr(dist, "get_backend", lambda group=None: "nccl")
        with pytest.raises(ValueError, match="nccl backend, which communicates between CUDA GPUs only, but fit trains on cpu"):
            fit(_tiny_model(), data, epochs=1, device="cpu", **FAST)
    finally:
        dist.destroy_process_group()


def test_a_checkpoint_from_before_distributed_training_still_resumes(tmp_path):
    images, labels = _toy_tensors()
    data = TensorImages(images, labels)
    settings = dict(epochs=2, augment=True, **FAST)
    straight = _tiny_model()
    fit(straight, data, **settings)
    fit(_tiny_model(), data, out_dir=tmp_path, on_epoch_end=_stop_after_epoch_1, **settings)
    path = tmp_path / CHECKPOINT_NAME
    state = torch.load(path, weights_only=True)
    del state["config"]["sync_bn"], state["config"]["world_size"]  # as written before they existed
    torch.save(state, path)
    resumed = _tiny_model(seed=9)
    fit(resumed, data, out_dir=tmp_path, resume=True, **settings)
    assert _same_weights(straight, resumed)


def _stop_after_epoch_1(record: dict) -> None:
    if record["epoch"] == 1:
        raise KeyboardInterrupt


def test_checkpoint_is_weights_only_and_complete(tmp_path):
    images, labels = _toy_tensors(n=32)
    model = _tiny_model()
    fit(model, TensorImages(images, labels), epochs=2, out_dir=tmp_path, **FAST)
    path = tmp_path / CHECKPOINT_NAME
    state = torch.load(path, weights_only=True)
    assert set(state) == {"format", "epoch", "model", "optimizer", "scheduler", "rng", "history", "config"}
    assert state["epoch"] == 2 and len(state["history"]["epochs"]) == 2
    assert all(torch.equal(state["model"][k], v) for k, v in model.state_dict().items())
    assert state["config"]["epochs"] == 2 and state["config"]["train_size"] == 32
    assert not list(tmp_path.glob("*.tmp"))  # atomic write left no temporary behind


def test_run_record_is_what_the_checkpoint_stores(tmp_path):
    """``run_record`` lets a caller compare settings before training; it must be fit's own record."""
    from tutorial_lib.train import FitConfig, run_record

    images, labels = _toy_tensors(n=32)
    fit(_tiny_model(), TensorImages(images, labels), epochs=2, out_dir=tmp_path, **FAST)
    config = FitConfig(epochs=2, batch_size=16, lr=1e-2)
    stored = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)["config"]
    assert run_record(config, 32, "cpu") == stored
    assert run_record(config, 48, "cpu") != stored
    with pytest.raises(TypeError, match="FitConfig"):
        run_record({"epochs": 2}, 32, "cpu")
    with pytest.raises(ValueError, match="train_size"):
        run_record(config, 0, "cpu")


def test_resume_with_different_settings_or_no_checkpoint_fails(tmp_path):
    images, labels = _toy_tensors(n=32)
    data = TensorImages(images, labels)
    fit(_tiny_model(), data, epochs=1, out_dir=tmp_path, **FAST)
    with pytest.raises(ValueError, match=r"epochs: checkpoint 1 vs now 2"):
        fit(_tiny_model(), data, epochs=2, out_dir=tmp_path, resume=True, **FAST)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        fit(_tiny_model(), data, epochs=1, out_dir=tmp_path / "empty", resume=True, **FAST)
    with pytest.raises(ValueError, match="needs out_dir"):
        fit(_tiny_model(), data, epochs=1, resume=True, **FAST)


def test_resume_with_another_model_says_so(tmp_path):
    images, labels = _toy_tensors(n=32)
    data = TensorImages(images, labels)
    fit(_tiny_model(), data, epochs=1, out_dir=tmp_path, **FAST)
    with pytest.raises(ValueError, match=r"holds another model's weights \(.*\); resume with the model the run was started with"):
        fit(_tiny_model(bn=False), data, epochs=1, out_dir=tmp_path, resume=True, **FAST)


def test_nan_loss_stops_with_advice():
    images, labels = _toy_tensors(n=32)
    bad = images.float() / 255
    bad[5, 0, 0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match=r"lower learning rate.*grad_clip.*NaN/inf") as info:
        fit(_tiny_model(), TensorDataset(bad, labels), epochs=1, **FAST)
    assert "epoch 1" in str(info.value)


@pytest.mark.parametrize(
    "options,error,pattern",
    [
        (dict(epochs=0), ValueError, "epochs must be >= 1"),
        (dict(epochs=1.5), TypeError, "epochs must be an integer, got float"),
        (dict(epochs=1, batch_size=0), ValueError, "batch_size must be >= 1"),
        (dict(epochs=1, optimizer="adam"), ValueError, "Did you mean 'adamw'.* Valid values: adamw, sgd"),
        (dict(epochs=1, schedule="linear"), ValueError, "Valid values: onecycle, cosine"),
        (dict(epochs=1, lr=0.0), ValueError, "lr must be > 0"),
        (dict(epochs=1, lr=float("nan")), ValueError, "lr must be a finite number"),
        (dict(epochs=1, lr="0.1"), TypeError, "lr must be a number, got str"),
        (dict(epochs=1, label_smoothing=1.0), ValueError, "label_smoothing"),
        (dict(epochs=1, grad_clip=0), ValueError, "grad_clip must be > 0"),
        (dict(epochs=1, warmup_steps=2), ValueError, "warm-up .* must be shorter"),
        (dict(epochs=1, augment="yes"), TypeError, "augment must be"),
        (dict(epochs=1, augment={"shear": 0.1}), ValueError, "valid options: max_shift, scale, rotate"),
        (dict(epochs=1, channels_last=1), TypeError, "channels_last must be True or False"),
        (dict(epochs=1, precision="fp8"), ValueError, "Valid values: fp32, bf16, fp16, auto"),
        (dict(epochs=1, augment={"scale": 1.2}), TypeError, r"scale must be a \(low, high\) pair"),
        (dict(epochs=1, augment={"max_shift": "0.1"}), TypeError, "max_shift must be a number, got str"),
        (dict(epochs=1, lrr=0.1), TypeError, "unknown fit setting.*Did you mean 'lr'"),
        (dict(lr=0.1), TypeError, "fit needs the number of epochs"),
        (dict(epochs=1, progressive=True, train_sizes=[8]), ValueError, "at least two train_sizes"),
    ],
)
def test_fit_rejects_bad_settings(options, error, pattern):
    images, labels = _toy_tensors(n=32)
    with pytest.raises(error, match=pattern):
        fit(_tiny_model(), TensorImages(images, labels), progress=False, **options)


def test_fit_and_evaluate_reject_what_is_not_a_model_or_a_dataset():
    images, labels = _toy_tensors(n=8)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        fit(None, TensorImages(images, labels), epochs=1, progress=False)
    with pytest.raises(TypeError, match=r"train_data must be a dataset of \(image, label\) pairs, got a bare tensor.*TensorDataset"):
        fit(_tiny_model(), images, epochs=1, progress=False)
    with pytest.raises(TypeError, match="data must be a dataset of .* bare tensor"):
        evaluate(_tiny_model(), images)
    with pytest.raises(TypeError, match="val_data must be a map-style dataset"):
        fit(_tiny_model(), TensorImages(images, labels), epochs=1, val_data=3, progress=False)


def test_fit_config_is_the_one_list_of_settings():
    config = FitConfig(epochs=2, lr=0.01, augment={"max_shift": 0.1}, train_sizes=[8, 16])
    assert config.augment == Augment(max_shift=0.1) and config.train_sizes == (8, 16)
    assert FitConfig.from_settings(config, lr=0.02).lr == 0.02 and config.lr == 0.01  # frozen: a copy
    plain = config.to_dict()
    assert plain["augment"] == Augment(max_shift=0.1).to_dict() and plain["train_sizes"] == [8, 16]
    assert FitConfig(**plain) == config  # the checkpoint's dict rebuilds the same config
    assert set(FitConfig.names()) == set(plain)
    # fit(config) and fit(**settings) train the same run.
    images, labels = _toy_tensors(n=32)
    a, b = _tiny_model(), _tiny_model()
    b.load_state_dict(a.state_dict())
    fit(a, TensorImages(images, labels), FitConfig(epochs=1, batch_size=8, lr=0.01), progress=False)
    fit(b, TensorImages(images, labels), epochs=1, batch_size=8, lr=0.01, progress=False)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_fit_rejects_empty_dataset():
    images, labels = _toy_tensors(n=4)
    with pytest.raises(ValueError, match="train_data is empty"):
        fit(_tiny_model(), TensorImages(images[:0], labels[:0]), epochs=1, progress=False)


def test_schedules_peak_at_lr():
    images, labels = _toy_tensors(n=64)
    data = TensorImages(images, labels)
    cosine = fit(_tiny_model(), data, epochs=2, schedule="cosine", warmup_steps=2, **FAST)
    assert cosine.step_lr[0] < cosine.step_lr[1] < cosine.step_lr[2] == pytest.approx(1e-2)
    assert cosine.step_lr[-1] < 1e-3
    onecycle = fit(_tiny_model(), data, epochs=2, schedule="onecycle", **FAST)
    assert max(onecycle.step_lr) == pytest.approx(1e-2)
    assert onecycle.step_lr[0] == pytest.approx(1e-2 / 25)  # OneCycleLR's div_factor
    assert onecycle.step_lr[-1] < 1e-5


def test_progress_bar_and_epoch_lines(capsys):
    images, labels = _toy_tensors(n=32)
    fit(_tiny_model(), TensorImages(images, labels), epochs=1, batch_size=16, progress=True)
    err = capsys.readouterr()
    assert "epoch 1/1: train loss" in err.out + err.err


def test_optimizers_and_param_groups():
    model = _tiny_model()
    decay, no_decay = param_groups(model, 0.1)
    assert [p.ndim for p in decay["params"]] == [4, 4, 2]
    assert all(p.ndim == 1 for p in no_decay["params"]) and no_decay["weight_decay"] == 0.0
    sgd = make_optimizer(model, "sgd", lr=0.1, weight_decay=1e-4, momentum=0.9)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"]
    adamw = make_optimizer(model, "adamw", lr=0.1, weight_decay=1e-4, momentum=0.9)
    assert isinstance(adamw, torch.optim.AdamW)
    assert [g["weight_decay"] for g in adamw.param_groups] == [1e-4, 0.0]


def test_grad_clip_changes_the_run():
    images, labels = _toy_tensors(n=32)
    data = TensorImages(images, labels)
    a, b = _tiny_model(), _tiny_model()
    fit(a, data, epochs=1, **FAST)
    fit(b, data, epochs=1, grad_clip=1e-3, **FAST)
    assert not _same_weights(a, b)


# --------------------------------------------------------------------------------------------------
# Augment
# --------------------------------------------------------------------------------------------------


def test_augment_identity_and_determinism():
    images = torch.rand(4, 3, 16, 16)
    identity = Augment(max_shift=0.0, scale=(1.0, 1.0))
    assert torch.allclose(identity(images, torch.Generator().manual_seed(0)), images, atol=1e-6)
    aug = Augment(max_shift=0.2, scale=(0.8, 1.25))
    out1 = aug(images, torch.Generator().manual_seed(3))
    out2 = aug(images, torch.Generator().manual_seed(3))
    assert out1.shape == images.shape and torch.equal(out1, out2)
    assert not torch.allclose(out1, images)


def test_augment_shift_stays_within_max_shift_and_zoom_enlarges():
    dot = torch.zeros(1, 1, 16, 16)
    dot[0, 0, 7:9, 7:9] = 1.0  # a 2x2 dot centred at (7.5, 7.5)
    aug = Augment(max_shift=0.25)  # at most 4 px of 16 each way
    moves = set()
    for seed in range(20):
        out = aug(dot, torch.Generator().manual_seed(seed))[0, 0]
        ys, xs = torch.nonzero(out > 0.2, as_tuple=True)
        moves.add((round(xs.float().mean().item() - 7.5), round(ys.float().mean().item() - 7.5)))
    assert all(abs(dx) <= 4 and abs(dy) <= 4 for dx, dy in moves)
    assert len(moves) > 5
    square = torch.zeros(1, 1, 16, 16)
    square[0, 0, 6:10, 6:10] = 1.0
    zoomed = Augment(max_shift=0.0, scale=(2.0, 2.0))(square, torch.Generator())
    assert zoomed.sum().item() == pytest.approx(4 * square.sum().item(), rel=0.05)  # side x2, area x4


def test_augment_flip_mirrors_about_half_the_images():
    images = torch.rand(64, 3, 8, 8)
    out = Augment(max_shift=0.0, flip=True)(images, torch.Generator().manual_seed(0))
    same = torch.isclose(out, images, atol=1e-5).flatten(1).all(dim=1)
    mirrored = torch.isclose(out, images.flip(-1), atol=1e-5).flatten(1).all(dim=1)
    assert bool((same ^ mirrored).all())  # each image is either kept or mirrored, exactly
    assert 16 < int(mirrored.sum()) < 48
    assert not Augment().flip  # off by default: a mirrored digit is not a digit


def test_augment_elastic_bends_within_its_bound_and_leaves_other_draws_alone():
    # a horizontal ramp: each pixel's value is its x coordinate in pixels, so a warped pixel's value
    # minus its own x is how far (in x) it was fetched from
    side = 32
    ramp = torch.arange(side, dtype=torch.float32).expand(1, 1, side, side).repeat(8, 1, 1, 1)
    elastic = 0.05  # up to 1.6 px at 32 px
    out = Augment(max_shift=0.0, elastic=elastic)(ramp, torch.Generator().manual_seed(0))
    moved = (out - ramp).abs()
    inner = moved[..., 2:-2]  # away from the borders, where reflection folds the ramp back
    assert inner.max().item() <= elastic * side + 1e-4
    assert inner.max().item() > 0.5 * elastic * side  # it does move pixels, by a good share of the bound
    # smooth: neighbouring pixels move by nearly the same amount (no tearing)
    assert (out[..., 3:-2] - out[..., 2:-3]).min().item() > 0.0  # the ramp stays increasing along x
    # different images get different fields; the same generator seed gives the same field
    assert not torch.equal(out[0], out[1])
    assert torch.equal(out, Augment(max_shift=0.0, elastic=elastic)(ramp, torch.Generator().manual_seed(0)))
    # elastic=0 draws nothing extra: the shift/zoom/rotation draws are those of before
    images = torch.rand(4, 3, 16, 16)
    plain = Augment(max_shift=0.2, rotate=10.0)
    assert torch.equal(plain(images, torch.Generator().manual_seed(3)),
                       Augment(max_shift=0.2, rotate=10.0, elastic=0.0)(images, torch.Generator().manual_seed(3)))
    assert Augment(elastic=0.03).to_dict()["elastic"] == 0.03


@pytest.mark.parametrize("options", [dict(max_shift=1.0), dict(max_shift=-0.1), dict(scale=(1.2, 0.8)), dict(scale=(0.0, 1.0)), dict(rotate=90),
                                     dict(elastic=-0.01), dict(elastic=0.5)])
def test_augment_rejects_bad_options(options):
    with pytest.raises(ValueError):
        Augment(**options)


# --------------------------------------------------------------------------------------------------
# evaluate
# --------------------------------------------------------------------------------------------------


class ThresholdModel(nn.Module):
    """Predicts class 1 when the image mean is above 0.5, else class 0, with fixed logits +-2."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        high = (x.mean(dim=(1, 2, 3)) > 0.5).float()
        logit = 2.0 * (2 * high - 1) + self.dummy
        return torch.stack([-logit, logit], dim=1)


def test_evaluate_exact_accuracy_loss_and_breakdowns():
    images = torch.cat([torch.full((6, 1, 2, 2), 250, dtype=torch.uint8), torch.full((4, 1, 2, 2), 10, dtype=torch.uint8)])
    labels = torch.tensor([1, 1, 1, 1, 1, 0, 0, 0, 0, 1])  # 5 + 3 right, 2 wrong
    sizes = torch.tensor([10, 10, 20, 20, 30, 10, 10, 20, 30, 30])
    data = TensorImages(images, labels, sizes)
    data.classes = ["dark", "bright"]
    model = ThresholdModel()
    model.train()
    result = evaluate(model, data, batch_size=3, by=("class", "size"), size_bins=[5, 15, 25, 35])
    assert model.training  # mode restored
    assert result["accuracy"] == pytest.approx(0.8) and result["count"] == 10
    right, wrong = F.softplus(torch.tensor(-4.0)).item(), F.softplus(torch.tensor(4.0)).item()
    assert result["loss"] == pytest.approx((8 * right + 2 * wrong) / 10, rel=1e-6)
    assert result["by_class"] == {"dark": {"accuracy": 0.75, "count": 4}, "bright": {"accuracy": pytest.approx(5 / 6), "count": 6}}
    assert [(r["size_min"], r["size_max"], r["count"]) for r in result["by_size"]] == [(5, 15, 4), (15, 25, 3), (25, 35, 3)]
    assert [r["accuracy"] for r in result["by_size"]] == [0.75, 1.0, pytest.approx(2 / 3)]
    assert "predictions" not in result
    predicted = evaluate(model, data, batch_size=3, return_predictions=True)["predictions"]
    assert predicted.dtype == torch.int64 and predicted.tolist() == [1] * 6 + [0] * 4  # bright -> 1, dark -> 0, in order
    equal_width = evaluate(model, data, by="size", size_bins=2)["by_size"]
    assert [(r["size_min"], r["size_max"], r["count"]) for r in equal_width] == [(10, 20, 4), (20, 30, 6)]


def test_evaluate_sets_eval_mode_for_batchnorm():
    images, labels = _toy_tensors(n=32)
    data = TensorImages(images, labels)
    model = _tiny_model()
    model.train()
    running = model[1].running_mean.clone()
    full = evaluate(model, data)
    assert torch.equal(model[1].running_mean, running)  # no statistics update in eval mode
    assert evaluate(model, data, batch_size=1)["loss"] == pytest.approx(full["loss"], rel=1e-5)


@pytest.mark.parametrize(
    "kwargs,error,pattern",
    [
        (dict(by="digit"), ValueError, "valid values for by: class, size"),
        (dict(by="size"), ValueError, "needs a dataset with object_sizes"),
        (dict(batch_size=0), ValueError, "batch_size must be >= 1"),
        (dict(by="size", size_bins=[3, 2]), ValueError, "increasing"),
    ],
)
def test_evaluate_rejects_bad_arguments(kwargs, error, pattern):
    images, labels = _toy_tensors(n=8)
    data = TensorImages(images, labels)
    if kwargs.get("size_bins") is not None:
        data.object_sizes = torch.arange(8)
    with pytest.raises(error, match=pattern):
        evaluate(_tiny_model(), data, **kwargs)


def test_evaluate_rejects_empty_data():
    images, labels = _toy_tensors(n=8)
    with pytest.raises(ValueError, match="data is empty"):
        evaluate(_tiny_model(), TensorImages(images[:0], labels[:0]))


# --------------------------------------------------------------------------------------------------
# History and measurements
# --------------------------------------------------------------------------------------------------


def test_history_roundtrip_plot_and_columns(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    images, labels = _toy_tensors(n=32)
    data = TensorImages(images, labels)
    history = fit(_tiny_model(), data, epochs=2, val_data=data, **FAST)
    text = history.to_json(tmp_path / "h.json")
    again = History.from_dict(json.loads((tmp_path / "h.json").read_text()))
    assert again == history and json.loads(text) == history.to_dict()
    assert history.column("epoch") == [1, 2]
    with pytest.raises(KeyError, match="valid columns: epoch, lr"):
        history.column("accuracy")
    fig = history.plot(title="toy")
    assert len(fig.axes) == 2
    assert "History(2 epochs" in repr(history)
    with pytest.raises(TypeError):
        History.from_dict([1, 2])


def test_gradient_norms_in_forward_order_without_side_effects():
    images, labels = _toy_tensors(n=16)
    model = _tiny_model()
    running = model[1].running_mean.clone()
    norms = gradient_norms(model, images, labels)
    assert list(norms) == ["0", "3", "7"]
    assert all(math.isfinite(v) and v > 0 for v in norms.values())
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(model[1].running_mean, running)
    assert gradient_norms(model, images, labels) == norms  # deterministic
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        gradient_norms(model, images[0], labels)
