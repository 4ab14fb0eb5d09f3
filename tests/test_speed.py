"""fit's speed and memory options compute the same training: activation checkpointing exactly,
torch.compile within float rounding, float16 with loss scaling resumably; and the activation count.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from tutorial_lib.data import batches, load_dataset
from tutorial_lib.models import resnet18
from tutorial_lib.multiscale import msresnet101
from tutorial_lib.speed import checkpoint_stages, compile_network, residual_stages, saved_activation_bytes
from tutorial_lib.train import fit, load_checkpoint

FAST = dict(batch_size=32, lr=4e-3, progress=False)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("multiscale-digits", "train", num_samples=128, image_size=32)


def _model(width: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return resnet18(num_classes=10, width=width, stem="small")


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_checkpointed_training_equals_plain_training_weights_and_batchnorm_statistics(digits):
    plain, checkpointed = _model(), _model()
    a = fit(plain, digits, epochs=1, augment={"max_shift": 0.1}, **FAST)
    b = fit(checkpointed, digits, epochs=1, augment={"max_shift": 0.1}, activation_checkpointing=True, **FAST)
    assert a.step_loss == b.step_loss
    sa, sb = _state(plain), _state(checkpointed)
    assert sa.keys() == sb.keys()
    # Exact, running statistics and batch counts included: the recomputation restores them.
    assert all(torch.equal(sa[k], sb[k]) for k in sa), [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert all("forward" not in vars(stage) for _, stage in residual_stages(checkpointed))  # undone


def test_plain_torch_checkpoint_would_update_batchnorm_twice():
    """Why checkpoint_stages restores buffers: torch.utils.checkpoint alone recomputes BN in train mode."""
    from torch.utils.checkpoint import checkpoint

    torch.manual_seed(0)
    block = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    checkpoint(block, torch.randn(4, 3, 8, 8), use_reentrant=False).sum().backward()
    assert int(block[1].num_batches_tracked) == 2


def test_checkpoint_stages_finds_the_stages_of_a_wrapped_trunk_and_refuses_a_model_without():
    model = msresnet101(num_classes=10, width=4, stem="small", scales=(0.5, 1.0))
    names = [name for name, _ in residual_stages(model)]
    assert names == ["net.layer1", "net.layer2", "net.layer3", "net.layer4"]
    undo = checkpoint_stages(model)
    assert all("forward" in vars(stage) for _, stage in residual_stages(model))
    keys = list(model.state_dict())
    undo()
    assert keys == list(model.state_dict()) and all("forward" not in vars(s) for _, s in residual_stages(model))
    with pytest.raises(ValueError, match="no residual stages named layer1"):
        checkpoint_stages(nn.Sequential(nn.Conv2d(3, 4, 3)))


def test_saved_activation_bytes_counts_what_autograd_keeps_and_checkpointing_shrinks_it():
    conv = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.ReLU())
    x = torch.randn(2, 3, 8, 8)
    # The convolution keeps its input (2x3x8x8 floats), ReLU its output (2x4x8x8); weights are not counted.
    assert saved_activation_bytes(conv, x, loss=False) == 4 * (2 * 3 * 8 * 8 + 2 * 4 * 8 * 8)
    model = _model().train()
    images = torch.rand(8, 3, 32, 32)
    full = saved_activation_bytes(model, images)
    undo = checkpoint_stages(model)
    kept = saved_activation_bytes(model, images)
    undo()
    assert 0 < kept < full / 3, (kept, full)
    with pytest.raises(TypeError, match="images must be a tensor"):
        saved_activation_bytes(model, [images])


def test_fp16_with_loss_scaling_trains_checkpoints_the_scale_and_resumes_exactly(digits, tmp_path):
    straight = _model()
    full = fit(straight, digits, epochs=2, precision="fp16", grad_clip=1.0, out_dir=tmp_path / "a", **FAST)
    assert full.precision == "fp16" and all(torch.isfinite(torch.tensor(full.step_loss)))
    assert full.step_loss[-1] < full.step_loss[0]
    assert all(p.dtype == torch.float32 for p in straight.parameters())  # float32 master weights
    scale = load_checkpoint(tmp_path / "a")["scaler"]["scale"]
    assert 0 < float(scale) <= 2.0 ** 16  # GradScaler starts at 2**16 and halves on overflow

    def stop(record):
        raise KeyboardInterrupt  # Ctrl-C after the first epoch

    resumed = _model()
    stopped = fit(resumed, digits, epochs=2, precision="fp16", grad_clip=1.0, out_dir=tmp_path / "b", on_epoch_end=stop, **FAST)
    assert stopped.interrupted and len(stopped) == 1
    with pytest.raises(ValueError, match="precision: checkpoint 'fp16' vs now 'fp32'"):
        fit(_model(), digits, epochs=2, precision="fp32", grad_clip=1.0, out_dir=tmp_path / "b", resume=True, **FAST)
    again = fit(resumed, digits, epochs=2, precision="fp16", grad_clip=1.0, out_dir=tmp_path / "b", resume=True, **FAST)
    assert again.step_loss == full.step_loss
    sa, sb = _state(straight), _state(resumed)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_compiled_dynamic_training_over_two_sizes_matches_eager_within_rounding(digits):
    """One graph with symbolic height and width for 24 and 32 px; kernels fuse, so sums round differently.

    Width 8: at width 4 this machine's compiled step ran for minutes (Inductor's kernels for 4-channel
    convolutions); the series' recipes compile at 8 and more.
    """
    eager, compiled = _model(8), _model(8)
    a = fit(eager, digits, epochs=1, train_sizes=(24, 32), **FAST)
    b = fit(compiled, digits, epochs=1, train_sizes=(24, 32), compile="dynamic", **FAST)
    # The first loss comes from the same weights: only the forward's rounding differs.
    assert b.step_loss[0] == pytest.approx(a.step_loss[0], rel=1e-5)
    # Then AdamW divides each gradient by its running RMS, so a rounding difference in a near-zero
    # gradient becomes a step of full size: the runs drift apart (4e-4 relative after 4 steps here).
    assert b.step_loss == pytest.approx(a.step_loss, rel=2e-3)
    assert list(compiled.state_dict()) == list(eager.state_dict())  # no _orig_mod. prefix on the model
    assert not any(k.startswith("_orig_mod") for k in compiled.state_dict())


def test_speed_options_reject_bad_values_with_advice(digits):
    with pytest.raises(ValueError, match="compile"):
        fit(_model(), digits, epochs=1, compile="fast", **FAST)
    with pytest.raises(ValueError, match="cannot be combined"):
        fit(_model(), digits, epochs=1, compile="static", activation_checkpointing=True, **FAST)
    with pytest.raises(ValueError, match="workers must be >= 0"):
        fit(_model(), digits, epochs=1, workers=-1, **FAST)
    with pytest.raises(TypeError, match="activation_checkpointing"):
        fit(_model(), digits, epochs=1, activation_checkpointing="yes", **FAST)
    with pytest.raises(ValueError, match="compile"):
        compile_network(_model(), "max-autotune")


class _ItemByItem(Dataset):
    """A dataset read one item at a time (like Imagenette's JPEG files), from tensors."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.items, self.targets = images, labels

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        return self.items[index], int(self.targets[index])


def test_worker_processes_give_the_same_batches(digits):
    data = _ItemByItem(digits.images[:40], digits.labels[:40])
    alone = list(batches(data, 8, shuffle_seed=3))
    with_workers = list(batches(data, 8, shuffle_seed=3, workers=2))
    assert len(alone) == len(with_workers) == 5
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(alone, with_workers))
