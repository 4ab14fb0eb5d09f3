"""Tests for ``python -m tutorial_lib train`` and the recipe registry behind it.

The end-to-end runs use a tiny configuration (48 images per split, width 4, one epoch) and cache
the generated data in a temporary folder, so they take a few seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tutorial_lib.cli import build_parser, main
from tutorial_lib.recipes import (
    DEFAULT_RECIPE,
    get_recipe,
    list_recipes,
    register_recipe,
    validate_recipe,
    with_overrides,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

TINY = ["--epochs", "1", "--width", "8", "--image-size", "32", "--num-samples", "48", "--batch-size", "16", "--no-progress"]


@pytest.fixture()
def data_dir(tmp_path, monkeypatch):
    path = tmp_path / "data"
    monkeypatch.setenv("TUTORIAL_DATA_DIR", str(path))
    return path


def _train(out, *extra):
    return main(["train", "--dataset", "multiscale-digits", "--out", str(out), *TINY, *extra])


def test_train_end_to_end_writes_metrics_for_every_test_split(tmp_path, data_dir, capsys):
    out = tmp_path / "run"
    assert _train(out, "--lr", "0.002", "--seed", "3") == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["test"]) == {"test", "test-small", "test-large"}
    for split, result in metrics["test"].items():
        assert 0.0 <= result["accuracy"] <= 1.0, split
        assert isinstance(result["loss"], float) and result["loss"] > 0
        assert result["count"] == 48
        assert sum(row["count"] for row in result["by_size"]) == 48
    assert metrics["train_seconds"] > 0
    assert metrics["train_seconds"] == pytest.approx(sum(r["seconds"] for r in metrics["history"]["epochs"]))
    assert len(metrics["history"]["epochs"]) == 1 and len(metrics["history"]["step_loss"]) == 48 // 16
    config = metrics["config"]
    assert config["recipe"] == DEFAULT_RECIPE and config["dataset"] == "multiscale-digits"
    # Flags override the recipe; everything else keeps the recipe's value.
    assert config["model"] == dict(get_recipe()["model"], width=8)
    assert config["data"] == {"image_size": 32, "num_samples": 48}
    assert config["fit"] == dict(get_recipe()["fit"], epochs=1, batch_size=16, lr=0.002)
    assert config["seed"] == 3
    assert metrics["environment"]["torch"]
    assert metrics["command"][:4] == ["python", "-m", "tutorial_lib", "train"]
    assert (out / "checkpoint.pt").is_file()
    printed = capsys.readouterr().out
    assert "test-small: accuracy" in printed and "train_seconds" in printed


def test_resume_continues_and_reevaluates_identically(tmp_path, data_dir):
    out = tmp_path / "run"
    assert _train(out) == 0
    first = json.loads((out / "metrics.json").read_text())
    assert _train(out, "--resume") == 0  # the checkpoint is complete: nothing to train, same model
    second = json.loads((out / "metrics.json").read_text())
    assert second["test"] == first["test"]
    assert second["history"] == first["history"]


def test_resume_with_other_settings_or_without_checkpoint_fails(tmp_path, data_dir, capsys):
    out = tmp_path / "run"
    assert _train(out) == 0
    assert _train(out, "--resume", "--lr", "0.5") == 2
    assert "cannot resume exactly" in capsys.readouterr().err
    assert _train(tmp_path / "empty", "--resume") == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_unknown_recipe_dataset_and_arch_list_valid_names(tmp_path, data_dir, capsys):
    assert _train(tmp_path / "a", "--recipe", "gpu-fast") == 2
    assert "valid recipes: cpu-baseline" in capsys.readouterr().err
    assert main(["train", "--dataset", "mnist", "--out", str(tmp_path / "b"), *TINY]) == 2
    assert "valid datasets: multiscale-digits, imagenette, cifar10" in capsys.readouterr().err
    assert _train(tmp_path / "c", "--arch", "resnet19") == 2
    assert "resnet18" in capsys.readouterr().err
    assert _train(tmp_path / "d", "--epochs", "0") == 2
    assert "epochs must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "d" / "metrics.json").exists()


def test_parser_requires_dataset_and_out(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--out", "x"])
    assert "--dataset" in capsys.readouterr().err
    args = build_parser().parse_args(["train", "--dataset", "multiscale-digits", "--out", "x"])
    assert args.recipe == DEFAULT_RECIPE and args.epochs is None and not args.resume


def test_module_entry_point_help():
    result = subprocess.run(
        [sys.executable, "-m", "tutorial_lib", "train", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0
    for flag in ("--dataset", "--out", "--recipe", "--arch", "--epochs", "--width", "--image-size",
                 "--batch-size", "--lr", "--norm", "--seed", "--resume"):
        assert flag in result.stdout


# --------------------------------------------------------------------------------------------------
# Recipes
# --------------------------------------------------------------------------------------------------


def test_default_recipe_is_valid_and_copied():
    assert DEFAULT_RECIPE == "cpu-baseline" and DEFAULT_RECIPE in list_recipes()
    recipe = get_recipe()
    assert validate_recipe(recipe) is recipe
    assert recipe["model"]["stem"] == "small" and recipe["model"]["arch"].startswith("resnet")
    recipe["fit"]["epochs"] = 999
    assert get_recipe()["fit"]["epochs"] != 999  # the registry is not changed through a copy


def test_with_overrides_and_errors():
    recipe = with_overrides(get_recipe(), {"model.width": 8, "fit.epochs": 2, "seed": 5, "fit.lr": None})
    assert recipe["model"]["width"] == 8 and recipe["fit"]["epochs"] == 2 and recipe["seed"] == 5
    assert recipe["fit"]["lr"] == get_recipe()["fit"]["lr"]  # None means "keep the recipe's value"
    with pytest.raises(ValueError, match="valid fit settings: epochs, batch_size"):
        with_overrides(get_recipe(), {"fit.epoch": 2})
    with pytest.raises(ValueError, match="section in data, model, fit"):
        with_overrides(get_recipe(), {"optim.lr": 2})
    with pytest.raises(ValueError, match="unknown recipe 'nope'; valid recipes: cpu-baseline"):
        get_recipe("nope")


def test_register_recipe_checks_names_and_keys():
    base = get_recipe()
    with pytest.raises(ValueError, match="already exists"):
        register_recipe(DEFAULT_RECIPE, base)
    with pytest.raises(ValueError, match="valid model settings: arch, width"):
        register_recipe("test-bad", dict(base, model={"arch": "resnet18", "depth": 3}))
    with pytest.raises(ValueError, match="needs fit.epochs"):
        register_recipe("test-bad", dict(base, fit={}))
    assert "test-bad" not in list_recipes()


def test_every_recipe_is_valid_and_shares_the_baseline_network_and_data():
    assert list_recipes() == ["cpu-baseline", "cpu-multiscale", "cpu-tuned"]
    base = get_recipe("cpu-baseline")
    for name in list_recipes():
        recipe = validate_recipe(get_recipe(name))
        # Same network, stored images and batch size: only the training and testing settings differ.
        assert recipe["model"] == base["model"] and recipe["data"] == base["data"], name
        assert recipe["fit"]["batch_size"] == base["fit"]["batch_size"], name
    assert base["data"]["image_size"] == 64 and base["fit"]["train_sizes"] == [32] and base["eval"]["test_sizes"] == [32]


def test_multiscale_recipe_trains_at_several_sizes_and_tests_with_tta():
    from tutorial_lib.multiscale import MultiScaleTTA, Resized
    from tutorial_lib.recipes import build_run

    recipe = get_recipe("cpu-multiscale")
    assert len(recipe["fit"]["train_sizes"]) > 1 and len(recipe["eval"]["test_sizes"]) > 1
    # Compute (pixels x steps) relative to the baseline's: at most 10% more.
    sizes, base = recipe["fit"]["train_sizes"], get_recipe("cpu-baseline")["fit"]
    per_step = sum((s / 32) ** 2 for s in sizes) / len(sizes)
    assert per_step * recipe["fit"]["epochs"] / base["epochs"] <= 1.1
    model, evaluated = build_run(recipe, 10)
    assert isinstance(evaluated, MultiScaleTTA) and evaluated.sizes == tuple(recipe["eval"]["test_sizes"])
    assert recipe["eval"]["recalibrate_bn"] is True, "statistics recomputed at each test size (notebook 07, section 8)"
    _, baseline_evaluated = build_run(get_recipe("cpu-baseline"), 10)
    assert isinstance(baseline_evaluated, Resized) and baseline_evaluated.size == 32


def test_recalibrate_bn_flag_recomputes_statistics_at_each_test_size(tmp_path, data_dir):
    plain, recal = tmp_path / "plain", tmp_path / "recal"
    flags = ("--train-sizes", "16,24", "--test-sizes", "24,32", "--seed", "1")
    assert _train(plain, *flags) == 0
    assert _train(recal, *flags, "--recalibrate-bn") == 0
    first, second = (json.loads((run / "metrics.json").read_text()) for run in (plain, recal))
    assert first["config"]["eval"] == {"test_sizes": [24, 32]}
    assert second["config"]["eval"] == {"test_sizes": [24, 32], "recalibrate_bn": True}
    assert first["history"]["step_loss"] == second["history"]["step_loss"], "same training either way"
    # Same weights, other BatchNorm statistics: the test loss changes.
    assert first["test"]["test"]["loss"] != pytest.approx(second["test"]["test"]["loss"], rel=1e-6)
    # --no-recalibrate-bn switches a recipe's recalibration off again.
    off = build_parser().parse_args(["train", "--dataset", "multiscale-digits", "--out", "x", "--no-recalibrate-bn"])
    assert off.recalibrate_bn is False
