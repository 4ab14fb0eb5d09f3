"""Tests for ``python -m tutorial_lib train`` and the recipe registry behind it.

The end-to-end runs use a tiny configuration (48 images per split, width 8, one epoch) and cache
the generated data in a temporary folder, so they take a few seconds. Every error a user can cause
is driven through the command line in ``tests/test_cli_errors.py``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

import tutorial_lib.train
from tutorial_lib.cli import STAGING_SUFFIX, build_parser, main
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
    assert config["description"] == (f"{get_recipe()['description']} (changed by --width, --image-size, --num-samples, --seed, "
                                     "--epochs, --batch-size, --lr)")
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
    err = capsys.readouterr().err
    assert "cannot resume exactly" in err and "--lr: 0.004 in the checkpoint, 0.5 now" in err
    assert "lr=" not in err and "resume=" not in err, "command-line advice, not Python's"
    assert _train(tmp_path / "empty", "--resume") == 2
    err = capsys.readouterr().err
    assert "no checkpoint in" in err and "run the same command without --resume to start" in err
    assert "fit(" not in err and "start without resume" not in err


def test_unknown_recipe_dataset_and_arch_list_valid_names(tmp_path, data_dir, capsys):
    assert _train(tmp_path / "a", "--recipe", "gpu-fast") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown --recipe 'gpu-fast'.") and "Valid values: cpu-baseline, cpu-multiscale, cpu-tuned" in err
    assert main(["train", "--dataset", "mnist", "--out", str(tmp_path / "b"), *TINY]) == 2
    assert "Valid values: multiscale-digits, imagenette, cifar10" in capsys.readouterr().err
    assert _train(tmp_path / "c", "--arch", "resnet19") == 2
    assert "Did you mean 'resnet18'?" in capsys.readouterr().err
    assert _train(tmp_path / "d", "--epochs", "0") == 2
    assert "--epochs must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "d").exists(), "a refused command creates no run folder"


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
                 "--batch-size", "--lr", "--norm", "--seed", "--resume", "--overwrite"):
        assert flag in result.stdout


def test_top_level_help_is_for_users(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for developer_word in ("_cmd_", "build_parser", "subparser", "argparse", "docstring"):
        assert developer_word not in text, "developer notes belong in the module docstring, not in --help"
    assert "env" in text and "train" in text and "examples:" in text
    assert "python -m tutorial_lib train --dataset multiscale-digits --out runs/baseline" in text


def test_train_help_lists_recipes_and_every_default_from_the_recipes(capsys):
    from tutorial_lib.recipes import get_recipe

    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for name in list_recipes():
        assert f"{name} {'(default) ' if name == DEFAULT_RECIPE else ''}{get_recipe(name)['description']}" in text
    base, tuned = get_recipe(DEFAULT_RECIPE)["fit"], get_recipe("cpu-tuned")["fit"]
    assert (f"--lr X peak learning rate (default: the recipe's; {DEFAULT_RECIPE}: {base['lr']:g}, cpu-tuned: {tuned['lr']:g}, "
            f"gpu-imagenette-resnet101: 0.006)") in text
    assert f"label smoothing, 0 to switch off (default: the recipe's; {DEFAULT_RECIPE}: {base['label_smoothing']:g}," in text
    assert (f"--width N base channel width of the ResNet (default: the recipe's; {DEFAULT_RECIPE}: 16, cpu-msresnet101: 4, "
            "gpu-imagenette-resnet101: 64)") in text
    # The description and the metavar name the run folder alike.
    assert "--out DIR" in text and "DIR/metrics.json" in text and "OUT" not in text
    # Every flag says what it is when not given.
    commands = next(action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction))
    train = commands.choices["train"]
    train.format_help()  # adds the flags (they are added on first use)
    for action in train._actions:
        if action.option_strings and action.dest != "help":
            assert "default" in action.help or action.required, f"{action.option_strings[0]} does not show its default"


def test_console_script_runs_main():
    script = Path(sys.executable).with_name("tutorial-lib")
    if not script.exists():
        pytest.skip("the tutorial-lib console script is not installed (pip install -e .)")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("usage: tutorial-lib")
    result = subprocess.run([str(script), "train", "--dataset", "mnist", "--out", "unused"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.startswith("error: unknown --dataset 'mnist'")


# --------------------------------------------------------------------------------------------------
# Run folders: a run is never replaced by accident, nor half replaced
# --------------------------------------------------------------------------------------------------


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_a_folder_holding_a_run_is_refused_and_left_byte_identical(tmp_path, data_dir, capsys):
    out = tmp_path / "run"
    assert _train(out) == 0
    before = _snapshot(out)
    capsys.readouterr()
    assert _train(out, "--seed", "3") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {out} already holds a run (checkpoint.pt, metrics.json)")
    assert "--resume" in err and "--overwrite" in err
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "run"], "no staging folder either"


def test_overwrite_replaces_the_run_whole(tmp_path, data_dir, capsys):
    out = tmp_path / "run"
    assert _train(out) == 0
    before = _snapshot(out)
    assert _train(out, "--overwrite", "--seed", "3") == 0
    after = _snapshot(out)
    assert set(after) == {"checkpoint.pt", "metrics.json"} and after["checkpoint.pt"] != before["checkpoint.pt"]
    assert json.loads(after["metrics.json"])["config"]["seed"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "run"], "the staging and old folders are gone"
    assert f"-> {out / 'metrics.json'}" in capsys.readouterr().out


def test_an_interrupted_overwrite_keeps_the_old_run_and_says_how_to_go_on(tmp_path, data_dir, capsys, monkeypatch):
    out, staging = tmp_path / "run", tmp_path / f"run{STAGING_SUFFIX}"
    assert _train(out) == 0
    before = _snapshot(out)
    real_fit = tutorial_lib.train.fit

    def ctrl_c_after_first_epoch(*args, **kwargs):
        def stop(record):
            raise KeyboardInterrupt  # what Ctrl-C raises; fit keeps the epoch's checkpoint
        return real_fit(*args, on_epoch_end=stop, **kwargs)

    monkeypatch.setattr(tutorial_lib.train, "fit", ctrl_c_after_first_epoch)
    capsys.readouterr()
    assert _train(out, "--overwrite", "--epochs", "2") == 130
    err = capsys.readouterr().err
    assert _snapshot(out) == before, "the old run must be intact"
    assert (staging / "checkpoint.pt").is_file() and not (staging / "metrics.json").exists()
    assert f"{out} still holds the old run, unchanged" in err and f"--out {staging} --resume" in err
    monkeypatch.setattr(tutorial_lib.train, "fit", real_fit)
    # Continued as a run of its own, it finishes in the staging folder ...
    assert _train(staging, "--epochs", "2", "--resume") == 0
    assert len(json.loads((staging / "metrics.json").read_text())["history"]["epochs"]) == 2
    assert _snapshot(out) == before
    # ... and another --overwrite discards it and replaces the old run from the start.
    assert _train(out, "--overwrite", "--epochs", "2") == 0
    assert "discarding the unfinished run" in capsys.readouterr().err
    assert not staging.exists() and _snapshot(out) != before


def test_a_failed_overwrite_keeps_the_old_run(tmp_path, data_dir, capsys, monkeypatch):
    out = tmp_path / "run"
    assert _train(out) == 0
    before = _snapshot(out)

    def diverging_fit(*args, **kwargs):
        raise FloatingPointError("the training loss became nan at epoch 1, step 2. Try: a lower learning rate (now lr=4, e.g. lr=0.4)")

    monkeypatch.setattr(tutorial_lib.train, "fit", diverging_fit)
    capsys.readouterr()
    assert _train(out, "--overwrite", "--lr", "4") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: the training loss became nan at epoch 1, step 2; try a lower --lr (now 4)")
    assert f"{out} still holds the old run, unchanged" in err and "lr=" not in err
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "run"], "an empty staging folder is removed"


def test_a_new_or_empty_folder_needs_no_flag(tmp_path, data_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _train(empty) == 0 and (empty / "metrics.json").is_file()
    assert _train(tmp_path / "new" / "run", "--overwrite") == 0, "--overwrite with nothing to replace just trains"
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["run"]


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
    assert list_recipes() == ["cpu-baseline", "cpu-multiscale", "cpu-tuned", "cpu-msresnet101", "gpu-imagenette-resnet101"]
    base = get_recipe("cpu-baseline")
    for name in list_recipes()[:-1]:  # the GPU recipe is for Imagenette (tests/test_imagenette.py)
        recipe = validate_recipe(get_recipe(name))
        # Same stored images and batch size; the ResNet-18 recipes also share the network, so only
        # their training and testing settings differ (cpu-msresnet101 is notebook 09's other network).
        if name != "cpu-msresnet101":
            assert recipe["model"] == base["model"], name
        assert recipe["data"] == base["data"], name
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
