"""Every error a user can cause on the command line ends as one ``error: ...`` line, exit status 2.

One parametrized test drives each mistake through ``tutorial_lib.cli.main`` and checks the whole of
stderr: exactly one line, starting with ``error:``, saying what to change in the command line's words,
and never a traceback. Most cases fail before any data is loaded; the few that need data or a
finished run share one data folder and one tiny run (``run`` below), so the file takes seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tutorial_lib.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

TINY = ["--epochs", "1", "--width", "8", "--image-size", "32", "--num-samples", "48", "--batch-size", "16", "--no-progress"]


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """Places the cases name: a finished tiny run, a regular file, a run folder with a file of the user's, a damaged
    checkpoint; with one data folder for the module."""
    root = tmp_path_factory.mktemp("cli_errors")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUTORIAL_DATA_DIR", str(root / "data"))
        run = root / "run"
        assert main(["train", "--dataset", "multiscale-digits", "--out", str(run), *TINY]) == 0
        file = root / "notes.txt"
        file.write_text("not a folder")
        foreign = root / "run-with-notes"
        foreign.mkdir()
        for name in ("checkpoint.pt", "metrics.json"):
            (foreign / name).write_bytes((run / name).read_bytes())
        (foreign / "notes.txt").write_text("mine")
        damaged = root / "damaged"
        damaged.mkdir()
        (damaged / "checkpoint.pt").write_text("not a checkpoint")
        yield {"run": run, "file": file, "foreign": foreign, "damaged": damaged}


def _train(out: str, *flags: str) -> list[str]:
    return ["train", "--dataset", "multiscale-digits", "--out", out, *TINY, *flags]


NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
AS_ROOT = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write anywhere")

# (argv with {new}, {run}, {file}, {foreign} filled in, environment variables, what the error line says)
CASES = [
    # Names the user types: the valid ones, and the closest as a suggestion.
    pytest.param(["train", "--dataset", "mnist", "--out", "{new}"], {}, "unknown --dataset 'mnist'. Valid values: multiscale-digits", id="dataset"),
    pytest.param(_train("{new}", "--recipe", "cpu-basline"), {}, "Did you mean 'cpu-baseline'? Valid values: cpu-baseline, cpu-multiscale", id="recipe"),
    pytest.param(_train("{new}", "--arch", "resnet19"), {}, "unknown --arch 'resnet19'. Did you mean 'resnet18'?", id="arch"),
    pytest.param(_train("{new}", "--norm", "bacth"), {}, "unknown --norm 'bacth'. Did you mean 'batch'? Valid values: batch,", id="norm"),
    pytest.param(_train("{new}", "--optimizer", "adam"), {}, "unknown --optimizer 'adam'. Did you mean 'adamw'?", id="optimizer"),
    pytest.param(_train("{new}", "--schedule", "cosin"), {}, "Did you mean 'cosine'? Valid values: onecycle, cosine, step, constant", id="schedule"),
    pytest.param(_train("{new}", "--precision", "fp8"), {}, "unknown --precision 'fp8'.", id="precision"),
    pytest.param(_train("{new}", "--compile", "fast"), {}, "argument --compile: invalid choice: 'fast'", id="compile-mode"),
    pytest.param(_train("{new}", "--compile", "static", "--activation-checkpointing"), {},
                 "--compile and --activation-checkpointing cannot be combined", id="compile-with-checkpointing"),
    pytest.param(_train("{new}", "--workers", "-1"), {}, "--workers must be 0 or more", id="workers-negative"),
    # Values out of range, in terms of the flag.
    pytest.param(_train("{new}", "--width", "0"), {}, "--width must be >= 1, got 0", id="width-0"),
    pytest.param(_train("{new}", "--width", "-3"), {}, "--width must be >= 1, got -3", id="width-negative"),
    pytest.param(_train("{new}", "--width", "wide"), {}, "argument --width: invalid int value: 'wide'", id="width-not-a-number"),
    pytest.param(_train("{new}", "--epochs", "0"), {}, "--epochs must be >= 1, got 0", id="epochs-0"),
    pytest.param(_train("{new}", "--lr", "-1"), {}, "--lr must be > 0, got -1", id="lr-negative"),
    pytest.param(_train("{new}", "--seed", "-1"), {}, "--seed must be >= 0", id="seed-negative"),
    pytest.param(_train("{new}", "--image-size", "7"), {}, "--image-size must be >= 32", id="image-size"),
    pytest.param(_train("{new}", "--num-samples", "0"), {}, "--num-samples must be >= 1", id="num-samples-0"),
    pytest.param(_train("{new}", "--num-samples", "8"), {}, "--batch-size 16 is more than the 8 training images", id="batch-larger-than-data"),
    pytest.param(_train("{new}", "--warmup-steps", "100"), {}, "lower --warmup-epochs/--warmup-steps", id="warmup-too-long"),
    pytest.param(_train("{new}", "--train-sizes", "32,abc"), {}, "argument --train-sizes: expected comma-separated pixel sizes", id="train-sizes-text"),
    pytest.param(_train("{new}", "--train-sizes", "4"), {}, "argument --train-sizes: sizes must be integers >= 8", id="train-sizes-small"),
    pytest.param(_train("{new}", "--test-sizes", "0,32"), {}, "argument --test-sizes: sizes must be integers >= 8", id="test-sizes"),
    pytest.param(_train("{new}", "--progressive"), {}, "--progressive needs at least two --train-sizes", id="progressive-one-size"),
    pytest.param(_train("{new}", "--augment-scale", "2,1"), {}, "argument --augment-scale: need 0 < MIN <= MAX", id="augment-scale"),
    pytest.param(_train("{new}", "--lr", "1e30"), {}, "the training loss became nan at epoch 1, step 2; try a lower --lr (now 1e+30) or --grad-clip",
                 id="lr-diverges"),
    # The multi-scale ResNet-101's flags.
    pytest.param(_train("{new}", "--scales", "0.5,1"), {}, "model.scales applies to arch 'msresnet101' only", id="scales-plain-resnet"),
    pytest.param(_train("{new}", "--recipe", "cpu-msresnet101", "--scales", "0.5,0"), {}, "argument --scales: scale factors must be numbers > 0",
                 id="scales-zero"),
    pytest.param(_train("{new}", "--recipe", "cpu-msresnet101", "--scale-pool", "mean"), {}, "Valid values: max, avg",
                 id="scale-pool"),
    pytest.param(_train("{new}", "--recipe", "cpu-msresnet101", "--head", "multi"), {}, "unknown --head 'multi'. Did you mean 'multi-level'?",
                 id="head"),
    pytest.param(_train("{new}", "--recipe", "cpu-msresnet101", "--test-sizes", "32,64"), {}, "eval.scales needs exactly one test size",
                 id="test-scales-several-sizes"),
    pytest.param(_train("{new}", "--recipe", "cpu-msresnet101", "--arch", "resnet50"), {}, "start from a recipe of plain ResNets",
                 id="msresnet101-recipe-plain-arch"),
    # The command line itself.
    pytest.param(["train", "--out", "{new}"], {}, "the following arguments are required: --dataset", id="missing-dataset"),
    pytest.param(_train("{new}", "--learning-rate", "1"), {}, "unrecognized arguments: --learning-rate", id="unknown-flag"),
    pytest.param(["fit"], {}, "argument COMMAND: invalid choice: 'fit'", id="unknown-command"),
    pytest.param(["env", "--verbose"], {}, "unrecognized arguments: --verbose", id="env-unknown-flag"),
    # Devices.
    pytest.param(_train("{new}", "--device", "cuda"), {}, "--device cuda: CUDA is not available on this machine", id="cuda-absent", marks=NO_CUDA),
    pytest.param(_train("{new}", "--device", "cuda:99"), {}, "--device cuda:99: ", id="cuda-index"),
    pytest.param(_train("{new}", "--device", "nonsense"), {}, "unknown --device 'nonsense'; use cpu, cuda, cuda:N", id="device-unknown"),
    pytest.param(_train("{new}"), {"TUTORIAL_DEVICE": "tpu"}, "unknown device 'tpu' (from $TUTORIAL_DEVICE)", id="device-variable"),
    pytest.param(["env"], {"TUTORIAL_DEVICE": "tpu"}, "unknown device 'tpu' (from $TUTORIAL_DEVICE)", id="env-device-variable"),
    # Data the command cannot get without asking.
    pytest.param(["train", "--dataset", "cifar10", "--out", "{new}", "--no-progress"], {}, "add --download", id="dataset-not-downloaded"),
    pytest.param(["train", "--dataset", "cifar10", "--out", "{new}", "--num-samples", "8"], {}, "--num-samples applies to --dataset multiscale-digits only",
                 id="num-samples-real-dataset"),
    # Run folders.
    pytest.param(_train("{new}", "--resume"), {}, "no checkpoint in {new} to resume; run the same command without --resume to start", id="resume-nothing"),
    pytest.param(_train("{run}", "--resume", "--lr", "0.5"), {}, "cannot resume exactly: the run in {run} was started with other settings (--lr: 0.004 in",
                 id="resume-other-settings"),
    pytest.param(_train("{run}", "--resume", "--width", "12"), {}, "cannot resume: the run in {run} was started with another model; give the model flags",
                 id="resume-other-model"),
    pytest.param(_train("{run}", "--resume", "--norm", "group"), {}, "cannot resume: the run in {run} was started with another model",
                 id="resume-other-norm"),
    pytest.param(_train("{damaged}", "--resume"), {}, "cannot read {damaged}/checkpoint.pt (RuntimeError): it is damaged", id="resume-damaged"),
    pytest.param(_train("{run}", "--resume", "--overwrite"), {}, "--resume and --overwrite exclude each other", id="resume-and-overwrite"),
    pytest.param(_train("{run}"), {}, "{run} already holds a run (checkpoint.pt, metrics.json); add --resume", id="run-exists"),
    pytest.param(_train("{foreign}", "--overwrite"), {}, "--overwrite replaces the whole folder {foreign}, which holds other files than a run's (notes.txt)",
                 id="overwrite-other-files"),
    pytest.param(_train("{file}"), {}, "--out {file} is a file, not a folder", id="out-is-a-file"),
    pytest.param(_train("{file}/run"), {}, "cannot create --out {file}/run: {file} is a file, not a folder", id="out-under-a-file"),
    pytest.param(_train("{locked}/run"), {}, "cannot write to --out {locked}/run: permission denied", id="out-not-writable", marks=AS_ROOT),
]


@pytest.mark.parametrize("argv, environment, expected", CASES)
def test_a_user_error_is_one_error_line_with_exit_status_2(argv, environment, expected, shared, tmp_path, monkeypatch, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)  # no writing inside (ignored by root, whose case is skipped)
    places = {key: str(path) for key, path in shared.items()} | {"new": str(tmp_path / "new"), "locked": str(locked)}
    argv = [arg.format(**places) for arg in argv]
    expected = expected.format(**places)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    run_before = {path.name: path.read_bytes() for path in shared["run"].iterdir()}
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exit_info:  # argparse's usage errors
        code = exit_info.code
    captured = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in captured.err
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert expected in lines[0]
    assert captured.out == ""
    assert not (tmp_path / "new").exists(), "a refused command creates no run folder"
    assert {path.name: path.read_bytes() for path in shared["run"].iterdir()} == run_before, "nor touches an existing run"


def test_a_user_error_in_a_real_process_prints_one_line(tmp_path):
    """The same through ``python -m tutorial_lib``: nothing else reaches stderr (no warnings, no traceback)."""
    result = subprocess.run(
        [sys.executable, "-m", "tutorial_lib", "train", "--dataset", "multiscale-digits", "--out", str(tmp_path / "run"),
         "--device", "nonsense"],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[1],
    )
    assert result.returncode == 2
    assert result.stderr == "error: unknown --device 'nonsense'; use cpu, cuda, cuda:N (the GPU numbered N) or mps\n"
