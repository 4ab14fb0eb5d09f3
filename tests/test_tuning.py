"""Tests for issue 7's tuning tools: param_groups, the schedules, the range test, the search,
the validation split, the new fit/CLI options and the cpu-tuned recipe.

Everything trains tiny models on tiny tensors, so the file runs in seconds on a CPU.
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import optuna
import pytest
import torch
from torch import nn

from tutorial_lib import data as tdata
from tutorial_lib import tuning
from tutorial_lib.cli import main
from tutorial_lib.data import Augment
from tutorial_lib.models import resnet18, resnet101
from tutorial_lib.recipes import get_recipe
from tutorial_lib.train import SCHEDULES, fit, param_groups, schedule_factor

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


# --------------------------------------------------------------------------------------------------
# Fixtures: a learnable toy problem (which third of the image holds a bright bar) and a tiny net
# --------------------------------------------------------------------------------------------------


class ToyImages(torch.utils.data.Dataset):
    """uint8 images exposing .images/.labels/.digit_indices like multiscale-digits."""

    classes = ["left", "middle", "right"]

    def __init__(self, n: int = 96, size: int = 8, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.images = torch.randint(0, 60, (n, 3, size, size), generator=g, dtype=torch.uint8)
        self.labels = torch.randint(0, 3, (n,), generator=g)
        for i, label in enumerate(self.labels.tolist()):
            self.images[i, :, :, label * size // 3 : label * size // 3 + size // 3] = 230
        self.digit_indices = torch.arange(n) // 4  # four images per "source"

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.images[i].float() / 255.0, int(self.labels[i])


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3),
    )


def same_state(a: dict, b: dict) -> bool:
    """Bitwise equality of two (possibly nested) state dicts."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same_state(x, y) for x, y in zip(a, b))
    return a == b


# --------------------------------------------------------------------------------------------------
# param_groups
# --------------------------------------------------------------------------------------------------


def test_param_groups_resnet101_exact():
    model = resnet101()
    groups = param_groups(model, 1e-4)
    assert len(groups) == 2
    decay, no_decay = groups
    assert decay["weight_decay"] == 1e-4 and no_decay["weight_decay"] == 0.0
    assert len(no_decay["params"]) == 209  # 104 norm layers x (weight, bias) + the fc bias
    assert len(decay["params"]) == 105  # 104 convolutions + the fc weight
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))  # each parameter exactly once
    assert {id(p) for p in no_decay["params"]} == {id(p) for p in model.parameters() if p.ndim == 1}
    assert [id(p) for p in decay["params"]] == [id(p) for p in model.parameters() if p.ndim > 1]  # model order


def test_param_groups_skips_frozen_and_rejects_bad_input():
    model = resnet18(width=8, stem="small", num_classes=10)
    model.fc.bias.requires_grad_(False)
    model.conv1.weight.requires_grad_(False)
    decay, no_decay = param_groups(model, 0.0)
    ids = {id(p) for p in decay["params"] + no_decay["params"]}
    assert id(model.fc.bias) not in ids and id(model.conv1.weight) not in ids
    assert len(ids) == sum(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        param_groups(model, -1e-4)
    with pytest.raises(TypeError, match="weight_decay must be a number"):
        param_groups(model, "1e-4")
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        param_groups([nn.Parameter(torch.zeros(3))], 0.1)


def test_fit_uses_param_groups(monkeypatch):
    from tutorial_lib import train

    seen = {}

    def spy(model, weight_decay):
        seen["groups"] = param_groups(model, weight_decay)
        return seen["groups"]

    monkeypatch.setattr(train, "param_groups", spy)
    fit(tiny_model(), ToyImages(n=32), epochs=1, batch_size=16, weight_decay=0.3, progress=False)
    decay, no_decay = seen["groups"]
    assert decay["weight_decay"] == 0.3 and no_decay["weight_decay"] == 0.0
    assert [p.ndim for p in decay["params"]] == [4, 2] and all(p.ndim == 1 for p in no_decay["params"])


# --------------------------------------------------------------------------------------------------
# Schedules
# --------------------------------------------------------------------------------------------------

# (name, warmup_steps, {step: expected factor}) for a 100-step run.
KNOWN_STEPS = [
    ("constant", 0, {0: 1.0, 50: 1.0, 99: 1.0}),
    ("constant", 9, {0: 0.1, 4: 0.5, 9: 1.0, 99: 1.0}),
    ("step", 0, {0: 1.0, 49: 1.0, 50: 0.1, 74: 0.1, 75: 0.01, 99: 0.01}),
    ("step", 4, {0: 0.2, 3: 0.8, 4: 1.0, 49: 1.0, 50: 0.1, 75: 0.01}),
    ("cosine", 10, {0: 1 / 11, 9: 10 / 11, 10: 1.0, 55: 0.5, 99: 0.5 * (1 + math.cos(math.pi * 89 / 90))}),
    ("onecycle", 30, {0: 1 / 25, 15: (1 + 1 / 25) / 2, 30: 1.0, 99: 1 / 25e4}),
]


@pytest.mark.parametrize("name,warmup,expected", KNOWN_STEPS, ids=[f"{n}-w{w}" for n, w, _ in KNOWN_STEPS])
def test_schedule_factor_at_known_steps(name, warmup, expected):
    for step, value in expected.items():
        assert schedule_factor(name, step, warmup_steps=warmup, total_steps=100) == pytest.approx(value, rel=1e-9, abs=1e-12), step


def test_every_schedule_is_tested_and_fit_follows_it():
    assert {name for name, _, _ in KNOWN_STEPS} == set(SCHEDULES)
    data = ToyImages(n=64)
    for name in SCHEDULES:
        history = fit(tiny_model(), data, epochs=2, batch_size=8, lr=0.01, schedule=name, progress=False)
        assert history.step_lr == pytest.approx(tuning.schedule_curve(name, 16, lr=0.01), rel=1e-12), name
    # step: no warm-up by default; the rate drops tenfold at 50% and 75% of the 16 steps.
    assert tuning.schedule_curve("step", 16, lr=0.01)[7:9] == pytest.approx([0.01, 0.001])
    assert tuning.schedule_curve("step", 16, lr=0.01)[11:13] == pytest.approx([0.001, 0.0001])


def test_schedule_errors_name_the_valid_choices():
    with pytest.raises(ValueError, match="Valid values: onecycle, cosine, step, constant"):
        schedule_factor("linear", 0, warmup_steps=0, total_steps=10)
    with pytest.raises(ValueError, match="warmup_steps < total_steps"):
        schedule_factor("step", 0, warmup_steps=10, total_steps=10)
    with pytest.raises(ValueError, match="Valid values"):
        fit(tiny_model(), ToyImages(n=16), epochs=1, schedule="exponential", progress=False)
    with pytest.raises(ValueError, match="Valid values"):
        tuning.schedule_curve("warm", 10)


# --------------------------------------------------------------------------------------------------
# The learning-rate range test
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sgd", "adamw"])
def test_range_test_restores_model_and_optimizer_bitwise(kind):
    data = ToyImages(n=64)
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9) if kind == "sgd" else torch.optim.AdamW(model.parameters(), lr=1e-3)
    fit_steps = 3  # give the optimizer real state (momentum buffers / Adam moments) and the BN statistics values
    for images, labels in zip(data.images[:48].float().div(255).split(16), data.labels[:48].split(16)):
        nn.functional.cross_entropy(model(images), labels).backward()
        opt.step()
        fit_steps -= 1
    assert fit_steps == 0 and all(p.grad is not None for p in model.parameters())  # keep the last grads
    model.eval()
    before_model = {k: v.clone() for k, v in model.state_dict().items()}
    before_opt = copy.deepcopy(opt.state_dict())
    before_grads = [p.grad.clone() for p in model.parameters()]
    rng = torch.get_rng_state()

    result = tuning.lr_range_test(model, data, optimizer=opt, num_steps=20, batch_size=16, start_lr=1e-4, end_lr=10.0)

    assert same_state(model.state_dict(), before_model)
    assert same_state(opt.state_dict(), before_opt) and len(before_opt["state"]) == 6
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), before_grads))
    assert not model.training  # the mode it was in
    assert torch.equal(torch.get_rng_state(), rng)
    # And the sweep itself: exponential rates, raw and smoothed losses of equal length.
    assert result.lrs[0] == pytest.approx(1e-4)
    ratios = [b / a for a, b in zip(result.lrs, result.lrs[1:])]
    assert ratios == pytest.approx([10 ** (5 / 19)] * len(ratios))
    assert len(result.losses) == len(result.smoothed) == len(result.lrs)
    assert result.smoothed == pytest.approx(tuning.smooth_losses(result.losses, 0.98))
    assert result.lrs[0] <= result.suggested_lr <= result.lrs[-1]


def test_range_test_by_name_leaves_model_unchanged_and_detects_divergence():
    data = ToyImages(n=64)
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = tuning.lr_range_test(model, data, optimizer="sgd", start_lr=1e-3, end_lr=1e6, num_steps=60, batch_size=16, smooth=0.5)
    assert same_state(model.state_dict(), before) and model.training
    assert all(p.grad is None for p in model.parameters())
    assert result.diverged and len(result.lrs) < 60
    assert result.min_loss_lr < result.lrs[-1]
    fig = result.plot()
    assert fig.axes[0].get_xscale() == "log"
    assert "suggested_lr" in repr(result)


def test_smooth_losses_is_bias_corrected():
    assert tuning.smooth_losses([2.0] * 5, 0.98) == pytest.approx([2.0] * 5)  # no pull towards zero
    assert tuning.smooth_losses([1.0, 3.0], 0.5) == pytest.approx([1.0, (0.25 * 1 + 0.5 * 3) / 0.75])
    assert tuning.smooth_losses([1.0, 3.0], 0.0) == [1.0, 3.0]


@pytest.mark.parametrize(
    "options,error,pattern",
    [
        (dict(start_lr=0.0), ValueError, "start_lr must be > 0"),
        (dict(start_lr=1.0, end_lr=0.5), ValueError, "end_lr must be larger than start_lr"),
        (dict(num_steps=3), ValueError, "num_steps must be >= 5"),
        (dict(smooth=1.0), ValueError, "smooth must be >= 0 and < 1"),
        (dict(diverge_factor=1.0), ValueError, "diverge_factor must be > 1"),
        (dict(optimizer="adam"), ValueError, "Valid values: adamw, sgd"),
        (dict(optimizer=3), TypeError, "optimizer must be a name"),
    ],
)
def test_range_test_rejects_bad_settings(options, error, pattern):
    with pytest.raises(error, match=pattern):
        tuning.lr_range_test(tiny_model(), ToyImages(n=16), **options)


def test_range_test_rejects_a_foreign_optimizer():
    other = tiny_model(1)
    with pytest.raises(ValueError, match="not the model's"):
        tuning.lr_range_test(tiny_model(), ToyImages(n=16), optimizer=torch.optim.SGD(other.parameters(), lr=0.1))


# --------------------------------------------------------------------------------------------------
# Validation split, augmentation strength, scaling rule, step timing
# --------------------------------------------------------------------------------------------------


def test_validation_split_by_source_holds_out_whole_sources():
    data = ToyImages(n=100)  # 25 sources of 4 images
    train, val = tdata.validation_split(data, 0.2)
    assert len(train) == 80 and len(val) == 20
    assert set(train.digit_indices.tolist()).isdisjoint(val.digit_indices.tolist())
    assert set(val.digit_indices.tolist()) == set(range(20, 25))  # the last 20% of the sources
    image, label = val[0]
    assert image.dtype == torch.float32 and torch.equal(image, data[80][0]) and label == data[80][1]
    train_i, val_i = tdata.validation_split(data, 0.25, by="item", seed=1)
    assert len(val_i) == 25 and len(train_i) == 75
    with pytest.raises(ValueError, match="fraction must be > 0 and < 1"):
        tdata.validation_split(data, 1.0)
    with pytest.raises(ValueError, match="Valid values: source, item"):
        tdata.validation_split(data, 0.2, by="class")
    with pytest.raises(TypeError, match="use by='item'"):
        tdata.validation_split(torch.utils.data.TensorDataset(data.images, data.labels), 0.2)


def test_augment_from_strength_and_flip_option():
    assert tdata.augment_from_strength(0.0) is None
    strongest = tdata.augment_from_strength(1.0)
    assert strongest == Augment(max_shift=0.15, scale=(1 / 1.3, 1.3), rotate=15.0)
    assert tdata.augment_from_strength(0.0, flip=True) == Augment(max_shift=0.0, flip=True)
    with pytest.raises(ValueError, match="strength must be >= 0 and <= 1"):
        tdata.augment_from_strength(1.5)
    # flip=True mirrors about half the images; flip=False leaves the other random draws unchanged.
    images = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4).repeat(8, 1, 1, 1)
    plain = Augment(max_shift=0.0)(images, torch.Generator().manual_seed(0))
    flipped = Augment(max_shift=0.0, flip=True)(images, torch.Generator().manual_seed(0))
    mirrored = [torch.allclose(f, p.flip(-1), atol=1e-4) for f, p in zip(flipped, plain)]
    kept = [torch.allclose(f, p, atol=1e-4) for f, p in zip(flipped, plain)]
    assert all(m or k for m, k in zip(mirrored, kept)) and 0 < sum(mirrored) < len(images)
    with pytest.raises(TypeError, match="flip must be True or False"):
        Augment(flip=1)


def test_linear_scaled_lr():
    assert tuning.linear_scaled_lr(256) == pytest.approx(0.1)
    assert tuning.linear_scaled_lr(8192) == pytest.approx(3.2)  # Goyal et al. 2017's largest batch
    assert tuning.linear_scaled_lr(32, base_lr=0.004, base_batch_size=128) == pytest.approx(0.001)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        tuning.linear_scaled_lr(0)


def test_time_step_at_lrs_leaves_the_model_alone():
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = ToyImages(n=16)
    times = tuning.time_step_at_lrs(model, data.images, data.labels, (1e-4, 1e-1), repeats=2, warmup=1)
    assert list(times) == [1e-4, 1e-1] and all(t > 0 for t in times.values())
    assert same_state(model.state_dict(), before)
    with pytest.raises(ValueError, match="images must be an"):
        tuning.time_step_at_lrs(model, data.images[0], data.labels)


# --------------------------------------------------------------------------------------------------
# The search
# --------------------------------------------------------------------------------------------------

SEARCH_DATA = dict(n=96, size=8)


def _search(tmp_path, **options):
    data = ToyImages(**SEARCH_DATA)
    train, val = tdata.validation_split(data, 0.25)
    settings = dict(n_trials=2, epochs=1, model_fn=tiny_model, fit_options={"batch_size": 16, "channels_last": False}, seed=3)
    settings.update(options)
    return tuning.search(train, val, **settings)


def test_search_runs_end_to_end_with_two_trials(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    verbosity = optuna.logging.get_verbosity()
    result = _search(tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing written without storage
    assert optuna.logging.get_verbosity() == verbosity
    assert len(result.rows) == 2 and [r["state"] for r in result.rows] == ["complete", "complete"]
    for row in result.rows:
        assert 0.0 <= row["value"] <= 1.0 and row["epochs_run"] == 1 and row["curve"] == [row["value"]]
        for name, (low, high, _) in tuning.DEFAULT_SPACE.items():
            assert low <= row[name] <= high
    assert result.best["value"] == max(r["value"] for r in result.rows)
    assert set(result.best_params) == set(tuning.DEFAULT_SPACE)
    assert result.table().splitlines()[0].split()[:3] == ["trial", "state", "val_acc"]
    assert len(result.plot_history().axes) == 1 and len(result.plot_params().axes) == 4
    # Seeded: the same call draws the same hyperparameters and measures the same accuracies.
    again = _search(tmp_path)
    assert [r["lr"] for r in again.rows] == [r["lr"] for r in result.rows]
    assert [r["value"] for r in again.rows] == [r["value"] for r in result.rows]


def test_search_prunes_a_bad_trial(tmp_path):
    # Queue a good trial, then a hopeless one (learning rate 1e-7), in a stored study: with
    # pruning after one complete trial, the second stops before its last epoch, as soon as its
    # accuracy falls below the first trial's at the same epoch (after the first epoch both can
    # still sit at the same chance-level accuracy: a tie is not pruned).
    storage = f"sqlite:///{tmp_path / 'search.db'}"
    space = {"lr": (1e-7, 0.1)}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    study.enqueue_trial({"lr": 0.05})
    study.enqueue_trial({"lr": 1e-7})
    result = _search(
        tmp_path, storage=storage, study_name="s", space=space, epochs=3, pruner_startup_trials=1,
        fit_options={"batch_size": 8, "channels_last": False},
    )
    assert [r["state"] for r in result.rows] == ["complete", "pruned"]
    good, bad = result.rows
    assert good["epochs_run"] == 3 and len(good["curve"]) == 3
    assert 1 <= bad["epochs_run"] < 3 and len(bad["curve"]) == bad["epochs_run"]
    stopped_at = bad["epochs_run"] - 1
    assert bad["curve"][stopped_at] < good["curve"][stopped_at]
    assert all(b <= g for b, g in zip(bad["curve"], good["curve"]))
    assert (tmp_path / "search.db").is_file()


@pytest.mark.parametrize(
    "options,error,pattern",
    [
        (dict(n_trials=0), ValueError, "n_trials must be >= 1"),
        (dict(space={"momentum": (0.8, 0.99)}), ValueError, "Valid values: lr, weight_decay, label_smoothing, augment_strength"),
        (dict(space={"lr": (0.0, 0.1, "log")}), ValueError, "low must be > 0"),
        (dict(space={"lr": (0.1, 0.01)}), ValueError, "low < high"),
        (dict(fit_options={"lr": 0.1}), ValueError, "are searched"),
        (dict(fit_options={"epochs": 3}), ValueError, "set by search's own arguments"),
        (dict(storage=3), TypeError, "storage must be None or an Optuna storage URL"),
    ],
)
def test_search_rejects_bad_settings(tmp_path, options, error, pattern):
    with pytest.raises(error, match=pattern):
        _search(tmp_path, **options)


# --------------------------------------------------------------------------------------------------
# The CLI flags and the cpu-tuned recipe
# --------------------------------------------------------------------------------------------------


def test_cli_tuning_flags_reach_fit(tmp_path, monkeypatch):
    monkeypatch.setenv("TUTORIAL_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "run"
    code = main([
        "train", "--dataset", "multiscale-digits", "--out", str(out), "--epochs", "1", "--width", "8",
        "--image-size", "32", "--num-samples", "48", "--batch-size", "16", "--no-progress",
        "--schedule", "step", "--weight-decay", "0.01", "--label-smoothing", "0.05",
        "--augment-scale", "0.8,1.25", "--flip",
    ])
    assert code == 0
    config = json.loads((out / "metrics.json").read_text())["config"]["fit"]
    assert config["schedule"] == "step" and config["weight_decay"] == 0.01 and config["label_smoothing"] == 0.05
    assert config["augment"] == dict(get_recipe()["fit"]["augment"], scale=[0.8, 1.25], flip=True)


def test_cli_rejects_a_bad_scale_range(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--dataset", "multiscale-digits", "--out", "x", "--augment-scale", "1.2"])
    assert "expected MIN,MAX" in capsys.readouterr().err


def test_cpu_tuned_recipe_has_the_baseline_budget():
    baseline, tuned = get_recipe("cpu-baseline"), get_recipe("cpu-tuned")
    # Same network, same images and the same number of optimizer steps: the same training time.
    assert tuned["model"] == baseline["model"]
    assert tuned["data"].get("image_size") == baseline["data"].get("image_size")

    def steps(recipe):
        num = recipe["data"].get("num_samples", 16_000)
        return recipe["fit"]["epochs"] * (num // recipe["fit"]["batch_size"]), recipe["fit"]["batch_size"]

    assert steps(tuned) == steps(baseline)


# --------------------------------------------------------------------------------------------------
# Summaries of recipe runs over seeds (what notebook 08 reads from benchmarks/results)
# --------------------------------------------------------------------------------------------------


def _runs(recipe, accuracies, seeds=None):
    seeds = seeds or list(range(len(accuracies)))
    return [{"recipe": recipe, "seed": s, "test": a, "test-small": a / 2, "test-large": a / 3} for s, a in zip(seeds, accuracies)]


def test_summarize_runs_three_seeds_per_recipe():
    runs = _runs("cpu-baseline", [0.95, 0.96, 0.97]) + _runs("cpu-tuned", [0.97, 0.98, 0.99])
    rows = tuning.summarize_runs(runs)
    assert [(r["recipe"], r["split"]) for r in rows] == [
        (recipe, split) for recipe in ("cpu-baseline", "cpu-tuned") for split in tuning.RECIPE_SPLITS
    ]
    base = rows[0]
    assert base["n"] == 3 and base["seeds"] == [0, 1, 2]
    assert base["mean"] == pytest.approx(0.96) and base["std"] == pytest.approx(0.01)
    assert (base["min"], base["max"]) == (0.95, 0.97)
    assert rows[1]["mean"] == pytest.approx(0.48)


def test_summarize_runs_single_seed_and_bad_records():
    (row,) = tuning.summarize_runs(_runs("cpu-tuned", [0.9]), splits=("test",))
    assert row["n"] == 1 and row["std"] is None and row["mean"] == row["min"] == row["max"] == 0.9
    with pytest.raises(ValueError, match="non-empty list"):
        tuning.summarize_runs([])
    with pytest.raises(ValueError, match="split 'test-small'"):
        tuning.summarize_runs([{"recipe": "r", "seed": 0, "test": 0.5}])
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        tuning.summarize_runs([{"recipe": "r", "seed": 0, "test": 95.0}], splits=("test",))
    with pytest.raises(TypeError, match="'recipe', 'seed'"):
        tuning.summarize_runs([{"test": 0.5}], splits=("test",))


def test_mean_difference():
    result = tuning.mean_difference([0.95, 0.96, 0.97], [0.97, 0.98, 0.99])
    assert result["difference"] == pytest.approx(0.02)
    assert result["se"] == pytest.approx(math.sqrt(2 * 0.01**2 / 3))
    assert result["ratio"] == pytest.approx(0.02 / result["se"])
    # Equal spreads and sizes: Welch's degrees of freedom are n_a + n_b - 2 = 4, and the p-value is
    # Student's t at 4 degrees of freedom (scipy's reference value for t = 2.449).
    assert result["df"] == pytest.approx(4.0)
    assert result["p"] == pytest.approx(0.0704, abs=1e-4)
    # One side without spread: the other side's n - 1 = 2 degrees of freedom; a ratio of 3 is p = 0.095.
    lopsided = tuning.mean_difference([0.95, 0.95, 0.95], [0.97 - 0.02 * 3**0.5 / 3, 0.97, 0.97 + 0.02 * 3**0.5 / 3])
    assert lopsided["df"] == pytest.approx(2.0) and lopsided["ratio"] == pytest.approx(3.0)
    assert lopsided["p"] == pytest.approx(0.0955, abs=1e-4)
    single = tuning.mean_difference([0.95, 0.96], [0.97])
    assert single["difference"] == pytest.approx(0.015) and single["se"] is None and single["ratio"] is None
    assert single["df"] is None and single["p"] is None
    flat = tuning.mean_difference([0.9, 0.9], [0.9, 0.9])
    assert flat["se"] == 0 and flat["ratio"] is None and flat["p"] is None
    with pytest.raises(ValueError, match="non-empty sequence"):
        tuning.mean_difference([], [0.9])


def test_paired_difference_counts_only_discordant_items():
    a = [True] * 80 + [False] * 20           # 80% right
    b = [True] * 70 + [False] * 10 + [True] * 15 + [False] * 5   # 85% right: 10 lost, 15 gained
    result = tuning.paired_difference(a, b)
    assert (result["n"], result["only_a"], result["only_b"]) == (100, 10, 15)
    assert result["difference"] == pytest.approx(0.05)
    per_item = np.array(b, dtype=float) - np.array(a, dtype=float)
    assert result["se"] == pytest.approx(per_item.std(ddof=1) / math.sqrt(100))


def test_paired_difference_p_value_is_mcnemars_exact_test():
    from scipy.stats import binomtest

    a = [True] * 50 + [False] * 30 + [True] * 2
    b = [True] * 50 + [True] * 30 + [False] * 2   # 30 gained, 2 lost
    expected = binomtest(2, 32, 0.5).pvalue
    assert tuning.paired_difference(a, b)["p_value"] == pytest.approx(expected)
    assert tuning.paired_difference(a, a) == {"n": 82, "only_a": 0, "only_b": 0, "difference": 0.0, "se": 0.0, "p_value": 1.0}


def test_paired_difference_rejects_unpaired_input():
    with pytest.raises(ValueError, match="equal length"):
        tuning.paired_difference([True, False], [True])
    with pytest.raises(ValueError, match="non-empty"):
        tuning.paired_difference([], [])
