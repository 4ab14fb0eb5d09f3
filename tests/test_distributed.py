"""Distributed training on the CPU: two processes (gloo, loopback only) compute what one process does.

Each launch runs ``torchrun`` (``python -m torch.distributed.run``) with two processes that meet on
127.0.0.1 at a free port, under its own timeout; on a timeout torchrun is stopped (SIGTERM, on
which it terminates its processes), so no process outlives its test. Every process uses one
thread (``OMP_NUM_THREADS=1``): two processes share this 2-core machine, and one thread per process
also keeps each run's arithmetic fixed.

Three launches serve the tests below, through module-scoped fixtures:

* ``fit`` inside a process group (``fit_runs``): this file run as torchrun's script (``_fit_worker``).
  It trains a tiny ResNet with SyncBatchNorm, without it, and interrupted after epoch 1 then resumed;
  then, on rank 0 after the group is destroyed, the same run in one process.
* the command line (``cli_runs``): a run stopped by Ctrl-C after epoch 1 in both processes
  (``_cli_interrupt_worker``, the command line with ``fit`` made to stop there), then
  ``torchrun -m tutorial_lib train --resume`` itself, compared with one process's run.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
# Each launch may take this long: a few seconds to start three Python processes that import
# PyTorch, a few seconds to train; a busy 2-core machine can stretch both several times.
LAUNCH_TIMEOUT = 150

# The run of the fit launch: a tiny ResNet-18 (width 8, the small stem for 32-px images) on 128
# training images, a global batch of 16 (8 per process), 2 epochs, two resolutions and every kind of
# augmentation draw, so that each per-step and per-item draw is compared; a small learning rate
# (see test_syncbn_two_processes_equal_one_process_and_plain_bn_does_not for why).
FIT = dict(epochs=2, batch_size=16, lr=1e-4, schedule="constant", train_sizes=(24, 32), seed=5,
           augment={"max_shift": 0.1, "scale": (0.8, 1.25), "rotate": 10.0, "flip": True, "elastic": 0.03})
NUM_IMAGES = 128

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


# --------------------------------------------------------------------------------------------------
# Launching torchrun
# --------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(process: subprocess.Popen) -> str:
    """Stop torchrun and its processes; return what it printed on stderr.

    torchrun starts each process in a session of its own, so a signal to torchrun's process group
    would miss them; on SIGTERM torchrun terminates them itself, then exits.
    """
    process.terminate()
    try:
        return process.communicate(timeout=60)[1]
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()[1]


def torchrun(args: list[str], *, env: dict[str, str], cwd: Path, log_dir: Path | None = None,
             timeout: float = LAUNCH_TIMEOUT) -> subprocess.CompletedProcess:
    """Run ``torchrun --nproc-per-node=2 ARGS`` on the loopback interface; stop it all on a timeout.

    Args:
        args: what follows torchrun's own options (a script, or ``-m tutorial_lib train ...``).
        env: extra environment variables.
        cwd: working folder.
        log_dir: keep each process's stdout and stderr in files there (``--log-dir``, ``--redirects 3``).
        timeout: seconds before the launch and every process it started are stopped (the test fails).
    """
    environment = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]), **env)
    if sys.platform.startswith("linux"):
        environment["GLOO_SOCKET_IFNAME"] = "lo"  # gloo would pick the host name's interface otherwise
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc-per-node=2",
               "--master-addr=127.0.0.1", f"--master-port={_free_port()}", "--monitor-interval=0.2"]
    if log_dir is not None:
        command += [f"--log-dir={log_dir}", "--redirects=3"]
    process = subprocess.Popen([*command, *args], cwd=cwd, env=environment, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stderr = _stop(process)
        pytest.fail(f"torchrun did not finish within {timeout} s and was stopped; its last output:\n{stderr[-3000:]}")
    except BaseException:  # Ctrl-C of the test run itself
        _stop(process)
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


# --------------------------------------------------------------------------------------------------
# fit inside a process group
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fit_runs(tmp_path_factory) -> dict[str, Any]:
    """Launch this file as torchrun's script; return what its rank 0 saved (see ``_fit_worker``)."""
    out = tmp_path_factory.mktemp("fit_runs")
    result = torchrun([str(Path(__file__).resolve()), "fit", str(out)], env={"TUTORIAL_DATA_DIR": str(out / "data")}, cwd=out)
    assert result.returncode == 0, f"torchrun failed:\n{result.stderr[-4000:]}"
    runs = torch.load(out / "results.pt", weights_only=True)
    runs["out"] = out
    return runs


def _max_difference(a: dict[str, Any], b: dict[str, Any]) -> tuple[float, float]:
    """Largest absolute difference of the step losses and of the final weights and buffers."""
    loss = max(abs(x - y) for x, y in zip(a["step_loss"], b["step_loss"], strict=True))
    weights = max((a["state"][k].double() - b["state"][k].double()).abs().max().item() for k in a["state"])
    return loss, weights


def test_syncbn_two_processes_equal_one_process_and_plain_bn_does_not(fit_runs):
    one, sync, plain = fit_runs["one"], fit_runs["sync"], fit_runs["plain"]
    assert len(one["step_loss"]) == len(sync["step_loss"]) == 2 * NUM_IMAGES // 16, "the same optimizer steps"
    sync_loss, sync_weights = _max_difference(sync, one)
    plain_loss, plain_weights = _max_difference(plain, one)
    print(f"\nmax |difference| from one process: SyncBN loss {sync_loss:.2e} weights {sync_weights:.2e}; "
          f"plain BN loss {plain_loss:.2e} weights {plain_weights:.2e}")
    # With SyncBN both runs compute the same function; only float32 sums are ordered differently
    # (each process sums over its half batch, then the halves are combined: gradients by gloo's
    # all-reduce, BatchNorm statistics by SyncBatchNorm). Measured here: step losses (about 2.4)
    # differ by at most 3.6e-7, i.e. 1.5 float32 ulps (2.4e-7 at 2.4), and the weights and buffers by
    # at most 3.2e-6 (a BatchNorm bias whose gradient is near zero, where Adam's normalized step
    # magnifies rounding). The bounds are about 6x those. The small learning rate keeps training from
    # magnifying rounding further: at fit's default lr of 3e-3, perturbing one process's initial
    # weights by 1e-7 (relative) changes its step losses by 1e-2 within 16 steps (measured), so no
    # tolerance could tell rounding from a bug there. Plain BatchNorm normalizes each half batch
    # with its own statistics: its losses differ from the first step (by 8e-2 here).
    assert sync_loss < 2e-6 and sync_weights < 2e-5
    assert plain_loss > 1e-3 and plain_weights > 1e-3, "without SyncBN the processes compute something else"
    # Epoch metrics are sums over both processes: the one-process numbers.
    for a, b in zip(sync["epochs"], one["epochs"], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=2e-6)  # the mean of the step losses
        assert a["train_acc"] == pytest.approx(b["train_acc"], abs=1.5 / NUM_IMAGES)  # at most one image flips
        assert a["val_loss"] == pytest.approx(b["val_loss"], abs=2e-5)  # as the weights


def test_every_process_draws_the_same_resolutions_and_ends_with_the_same_model(fit_runs):
    sizes = fit_runs["sizes"]  # per process: the input side of every training forward pass
    assert len(sizes) == 2 and sizes[0] == sizes[1], "the multi-resolution draw depends only on (seed, step)"
    assert set(sizes[0]) == set(FIT["train_sizes"]) and len(sizes[0]) == 2 * NUM_IMAGES // 16
    assert fit_runs["same_on_every_rank"], "every process holds rank 0's model at the end, history included"


def test_the_checkpoint_is_rank_0s_plain_model(fit_runs):
    from tutorial_lib.train import load_checkpoint

    state = load_checkpoint(fit_runs["out"] / "sync")
    assert not any(key.startswith("module.") for key in state["model"]), "no DistributedDataParallel prefix"
    assert state["config"]["world_size"] == 2 and state["config"]["sync_bn"] is True
    model = _model()
    model.load_state_dict(state["model"])  # strict: a plain model, BatchNorm keys included
    assert all(torch.equal(state["model"][k], v) for k, v in fit_runs["sync"]["state"].items())
    assert sorted(p.name for p in (fit_runs["out"] / "sync").iterdir()) == ["checkpoint.pt"], "no temporary left"


def test_distributed_interrupt_then_resume_equals_uninterrupted_run(fit_runs):
    interrupted, resumed, straight = fit_runs["interrupted"], fit_runs["resumed"], fit_runs["sync"]
    assert interrupted["interrupted"] and len(interrupted["epochs"]) == 1
    assert interrupted["checkpoint_epoch"] == 1, "Ctrl-C after epoch 1 keeps epoch 1's checkpoint"
    # Same processes, same arithmetic: the resumed run is the uninterrupted one, bit for bit.
    assert resumed["step_loss"] == straight["step_loss"]
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in resumed["epochs"]] == \
        [{k: v for k, v in r.items() if k != "seconds"} for r in straight["epochs"]]
    assert all(torch.equal(resumed["state"][k], straight["state"][k]) for k in straight["state"])


def test_resume_with_another_world_size_or_batch_size_is_refused(fit_runs):
    from tutorial_lib.data import load_dataset
    from tutorial_lib.train import fit

    data = load_dataset("multiscale-digits", "train", num_samples=NUM_IMAGES, image_size=32,
                        root=fit_runs["out"] / "data")
    with pytest.raises(ValueError, match=r"world_size: checkpoint 2 vs now 1.*resume with as many"):
        fit(_model(), data, **FIT, sync_bn=True, out_dir=fit_runs["out"] / "sync", resume=True, progress=False)
    with pytest.raises(ValueError, match=r"batch_size: checkpoint 16 vs now 32"):
        fit(_model(), data, **dict(FIT, batch_size=32), sync_bn=True, out_dir=fit_runs["out"] / "sync", resume=True,
            progress=False)


# --------------------------------------------------------------------------------------------------
# The command line: torchrun -m tutorial_lib train
# --------------------------------------------------------------------------------------------------

# The fit settings above, for the command line (64 images: 4 steps per epoch).
CLI = ["--dataset", "multiscale-digits", "--epochs", "2", "--width", "8", "--image-size", "32", "--num-samples", "64",
       "--batch-size", "16", "--lr", "1e-4", "--schedule", "constant", "--precision", "fp32", "--sync-bn", "--device", "cpu"]


def _logs(log_dir: Path, rank: int) -> tuple[str, str]:
    """What process ``rank`` printed, from torchrun's ``--log-dir``: ``(stdout, stderr)``."""
    (folder,) = {path.parent for path in log_dir.rglob("stdout.log") if path.parent.name == str(rank)}
    return (folder / "stdout.log").read_text(), (folder / "stderr.log").read_text()


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory) -> dict[str, Any]:
    """One process's run, in this process; two processes' run stopped after epoch 1, then resumed."""
    from tutorial_lib.cli import main

    out = tmp_path_factory.mktemp("cli_runs")
    env = {"TUTORIAL_DATA_DIR": str(out / "data")}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the arithmetic of the torchrun processes (OMP_NUM_THREADS=1)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("TUTORIAL_DATA_DIR", env["TUTORIAL_DATA_DIR"])  # also makes the data the launches read
            assert main(["train", *CLI, "--out", str(out / "one"), "--no-progress"]) == 0
    finally:
        torch.set_num_threads(threads)
    run = out / "two"
    stopped = torchrun([str(Path(__file__).resolve()), "cli-interrupt", "train", *CLI, "--out", str(run), "--no-progress"],
                       env=env, cwd=out)
    checkpoint_after_ctrl_c = sorted(p.name for p in run.iterdir())
    from tutorial_lib.train import load_checkpoint

    epoch_after_ctrl_c = load_checkpoint(run)["epoch"]
    resumed = torchrun(["-m", "tutorial_lib", "train", *CLI, "--out", str(run), "--resume"], env=env, cwd=out,
                       log_dir=out / "logs")
    return {"out": out, "run": run, "stopped": stopped, "resumed": resumed, "files_after_ctrl_c": checkpoint_after_ctrl_c,
            "epoch_after_ctrl_c": epoch_after_ctrl_c, "logs": out / "logs"}


def test_cli_ctrl_c_in_every_process_keeps_the_last_epoch_and_says_so_once(cli_runs):
    stopped = cli_runs["stopped"]
    assert stopped.returncode != 0, "an interrupted run is a failed torchrun job"
    assert cli_runs["files_after_ctrl_c"] == ["checkpoint.pt"] and cli_runs["epoch_after_ctrl_c"] == 1
    printed = stopped.stdout + stopped.stderr
    assert printed.count("interrupted: ") == 1 and "keeps epoch 1; run the same command with --resume" in printed, \
        "rank 0 alone reports"
    assert printed.count("interrupted during epoch 2") == 1


def test_cli_distributed_resume_finishes_as_one_process_does(cli_runs):
    assert cli_runs["resumed"].returncode == 0, cli_runs["resumed"].stderr[-3000:]
    two = json.loads((cli_runs["run"] / "metrics.json").read_text())
    one = json.loads((cli_runs["out"] / "one" / "metrics.json").read_text())
    assert two["config"]["world_size"] == 2 and one["config"]["world_size"] == 1
    assert len(two["history"]["step_loss"]) == len(one["history"]["step_loss"]) == 2 * 64 // 16
    # The metrics are global, not rank 0's half batch (whose loss is another number altogether).
    # The recipe trains channels-last, and oneDNN picks its convolution kernels by shape, so a
    # batch of 8 rounds differently from one of 16: the step losses were measured to differ by up
    # to 3.6e-5 here (against 4e-7 for the contiguous layout of the fit test). The bound is a few times that.
    assert two["history"]["step_loss"] == pytest.approx(one["history"]["step_loss"], abs=2e-4)
    for a, b in zip(two["history"]["epochs"], one["history"]["epochs"], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=2e-4)
        assert a["train_acc"] == pytest.approx(b["train_acc"], abs=1.5 / 64)  # at most one image flips
    for split, result in one["test"].items():
        assert two["test"][split]["loss"] == pytest.approx(result["loss"], abs=2e-4)
        assert two["test"][split]["count"] == result["count"] == 64


def test_cli_only_rank_0_writes_and_prints_and_the_checkpoint_loads_into_a_plain_model(cli_runs):
    from tutorial_lib.recipes import build_run, get_recipe, with_overrides
    from tutorial_lib.train import load_checkpoint

    assert sorted(p.name for p in cli_runs["run"].iterdir()) == ["checkpoint.pt", "metrics.json"]
    out0, err0 = _logs(cli_runs["logs"], 0)
    out1, err1 = _logs(cli_runs["logs"], 1)
    assert "test-small: accuracy" in out0 and "train_seconds" in out0
    assert "fit:" in err0 and "epoch 2/2: train loss" in out0 + err0, "rank 0 shows the progress bar and epoch lines"
    assert out1 == "", "the other processes print nothing"
    assert "fit:" not in err1 and "epoch" not in err1 and "error" not in err1
    state = load_checkpoint(cli_runs["run"])
    assert state["epoch"] == 2 and state["config"]["world_size"] == 2
    model, _ = build_run(with_overrides(get_recipe(), {"model.width": 8}), num_classes=10)
    model.load_state_dict(state["model"])  # strict: no "module." prefix


def test_cli_resume_with_another_world_size_or_batch_size_is_refused(cli_runs, capsys, monkeypatch):
    from tutorial_lib.cli import main

    monkeypatch.setenv("TUTORIAL_DATA_DIR", str(cli_runs["out"] / "data"))
    before = (cli_runs["run"] / "checkpoint.pt").read_bytes()
    assert main(["train", *CLI, "--out", str(cli_runs["run"]), "--resume", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "processes (torchrun --nproc_per_node): 2 in the checkpoint, 1 now" in err
    assert main(["train", *CLI, "--batch-size", "32", "--out", str(cli_runs["run"]), "--resume", "--no-progress"]) == 2
    assert "--batch-size: 16 in the checkpoint, 32 now" in capsys.readouterr().err
    assert (cli_runs["run"] / "checkpoint.pt").read_bytes() == before


@pytest.mark.parametrize("variables,extra,message", [
    pytest.param({"WORLD_SIZE": "2"}, [], "$WORLD_SIZE is 2 but $RANK, $LOCAL_RANK, $MASTER_ADDR, $MASTER_PORT not set; "
                 "start the processes with torchrun", id="not-torchrun"),
    pytest.param({"WORLD_SIZE": "two", "RANK": "0"}, [], "the torchrun variables must be integers, got $WORLD_SIZE='two', $RANK='0'",
                 id="not-a-number"),
    pytest.param({"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"},
                 ["--device", "cuda"], "--device cuda: CUDA is not available on this machine", id="cuda-absent",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
])
def test_cli_under_torchrun_reports_what_is_wrong_before_the_processes_meet(variables, extra, message, tmp_path, capsys, monkeypatch):
    from tutorial_lib.cli import main

    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert main(["train", *CLI[:-2], *extra, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------------------------------
# The worker: what each of torchrun's processes runs
# --------------------------------------------------------------------------------------------------


def _model() -> torch.nn.Module:
    from tutorial_lib.models import resnet18

    torch.manual_seed(0)
    return resnet18(num_classes=10, width=8, stem="small")


def _summary(model: torch.nn.Module, history: Any) -> dict[str, Any]:
    return {"step_loss": history.step_loss, "epochs": history.epochs, "interrupted": history.interrupted,
            "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}


def _digest(summary: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps([summary["step_loss"], [{k: v for k, v in r.items() if k != "seconds"}
                                                                for r in summary["epochs"]]]).encode())
    for value in summary["state"].values():
        digest.update(value.numpy().tobytes())
    return digest.hexdigest()


def _fit_worker(out: Path) -> None:
    """Train the runs the tests compare; rank 0 saves them to ``out/results.pt``."""
    import torch.distributed as dist

    from tutorial_lib.data import load_dataset
    from tutorial_lib.train import fit, load_checkpoint

    torch.use_deterministic_algorithms(True)
    data = load_dataset("multiscale-digits", "train", num_samples=NUM_IMAGES, image_size=32)
    val = load_dataset("multiscale-digits", "test", num_samples=64, image_size=32)
    settings = dict(FIT, val_data=val, progress=False, device="cpu")
    dist.init_process_group("gloo")
    rank, results = dist.get_rank(), {}

    sizes: list[int] = []
    model = _model()
    hook = model.register_forward_pre_hook(lambda module, args: sizes.append(args[0].shape[-1]) if module.training else None)
    results["sync"] = _summary(model, fit(model, data, sync_bn=True, out_dir=out / "sync", **settings))
    hook.remove()
    everyone: list[Any] = [None, None]
    dist.all_gather_object(everyone, (sizes, _digest(results["sync"])))
    results["sizes"] = [entry[0] for entry in everyone]
    results["same_on_every_rank"] = everyone[0][1] == everyone[1][1]

    model = _model()
    results["plain"] = _summary(model, fit(model, data, sync_bn=False, **settings))

    def ctrl_c_after_epoch_1(record: dict[str, Any]) -> None:
        if record["epoch"] == 1:
            raise KeyboardInterrupt  # what Ctrl-C raises, here in every process at the same point
    model = _model()
    results["interrupted"] = _summary(model, fit(model, data, sync_bn=True, out_dir=out / "resumed",
                                                 on_epoch_end=ctrl_c_after_epoch_1, **settings))
    if rank == 0:  # rank 0 wrote its checkpoint before the interrupt; read it before the resume replaces it
        results["interrupted"]["checkpoint_epoch"] = load_checkpoint(out / "resumed")["epoch"]
    model = _model()
    torch.nn.init.zeros_(model.fc.weight)  # another start: resume must overwrite it
    results["resumed"] = _summary(model, fit(model, data, sync_bn=True, out_dir=out / "resumed", resume=True, **settings))
    dist.destroy_process_group()
    if rank == 0:
        model = _model()
        results["one"] = _summary(model, fit(model, data, sync_bn=True, **settings))  # no process group: one process
        torch.save(results, out / "results.pt")


def _cli_interrupt_worker(argv: list[str]) -> int:
    """The command line with ``argv``, stopped as Ctrl-C stops it right after epoch 1 (in every process)."""
    import tutorial_lib.train
    from tutorial_lib.cli import main

    real_fit = tutorial_lib.train.fit

    def fit_until_ctrl_c(*args: Any, **kwargs: Any) -> Any:
        def stop(record: dict[str, Any]) -> None:
            if record["epoch"] == 1:
                raise KeyboardInterrupt
        return real_fit(*args, on_epoch_end=stop, **kwargs)

    tutorial_lib.train.fit = fit_until_ctrl_c
    return main(argv)


if __name__ == "__main__":
    if sys.argv[1] == "fit":
        _fit_worker(Path(sys.argv[2]))
    else:
        sys.exit(_cli_interrupt_worker(sys.argv[2:]))
