"""Measure fit's speed and memory options on this machine: channels-last, torch.compile, activation
checkpointing, mixed precision. Each prints its ratio; results go to benchmarks/results/scaling.json.

Every timing is a training step as ``tutorial_lib.train.fit`` takes it (forward and cross-entropy,
``zero_grad``, backward, an AdamW step) on one fixed batch, the variants run interleaved in one process
(A, B, then B, A, ...) so that load changes hit them alike, and each ratio is the median of the
per-round ratios (below 1: the option is faster).

* ``channels_last``: the cpu-baseline network (ResNet-18, width 16, batch 64, 32 px), NCHW vs NHWC.
* ``compile``: the same network, eager vs ``torch.compile``: the first step's time (tracing and code
  generation), then the steady-state step ratio; and for cpu-multiscale's sizes 24/32/48 px, one
  graph per size (``static``) against one graph with symbolic sizes (``dynamic``).
* ``checkpointing``: torchvision's ResNet-101 (full width) at 224 px, batch 8, as the issue asks:
  the bytes autograd keeps for backward (``tutorial_lib.speed.saved_activation_bytes``), the peak
  resident memory of a process that takes three steps (each variant in a fresh process), and the step
  time ratio.
* ``precision``: the cpu-baseline step in float32, bfloat16 and float16 (with loss scaling) mixed
  precision. Without native bfloat16/float16 arithmetic (``tutorial_lib.env.supports_bf16``) a CPU
  emulates them and the ratios are above 1; on a recent GPU they are well below.

    .venv/bin/python benchmarks/bench_scaling.py                 # all four, about 10 minutes on 2 cores
    .venv/bin/python benchmarks/bench_scaling.py --only compile  # one of them
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from bench_resnet101_step import interleaved_times  # same folder: run as a script

from tutorial_lib.env import environment_report, supports_bf16
from tutorial_lib.models import create_model, resnet101
from tutorial_lib.recipes import get_recipe
from tutorial_lib.speed import checkpoint_stages, compile_network, saved_activation_bytes

RESULTS = Path(__file__).resolve().parent / "results" / "scaling.json"
SECTIONS = ("channels_last", "compile", "checkpointing", "precision")


def _baseline_model(channels_last: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    options = dict(get_recipe("cpu-baseline")["model"])
    model = create_model(options.pop("arch"), num_classes=10, **options).train()
    return model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def _batch(batch_size: int, size: int, channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(size)
    images = torch.rand(batch_size, 3, size, size, generator=generator)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, torch.randint(0, 10, (batch_size,), generator=generator)


def _step(model: torch.nn.Module, net: torch.nn.Module | None = None, precision: str = "fp32") -> Callable[[torch.Tensor, torch.Tensor], None]:
    """fit's step for ``model`` (run through ``net``, e.g. its compiled form), as a function of a batch."""
    net = model if net is None else net
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler("cpu", enabled=precision == "fp16")

    def step(images: torch.Tensor, labels: torch.Tensor) -> None:
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            loss = F.cross_entropy(net(images), labels)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    return step


def _ratio(times: dict[str, list[float]], a: str, b: str) -> float:
    return statistics.median(x / y for x, y in zip(times[a], times[b]))


def _medians(times: dict[str, list[float]]) -> dict[str, float]:
    return {name: round(1000 * statistics.median(values), 2) for name, values in times.items()}


def bench_channels_last(rounds: int) -> dict:
    steps = {}
    for name, layout in (("nchw", False), ("nhwc", True)):
        step, batch = _step(_baseline_model(layout)), _batch(64, 32, layout)
        steps[name] = lambda step=step, batch=batch: step(*batch)
    times = interleaved_times(steps, 3, rounds, torch.device("cpu"))
    result = {"median_ms": _medians(times), "ratio_nhwc_over_nchw": round(_ratio(times, "nhwc", "nchw"), 3)}
    print(f"channels_last: {result['median_ms']} -> ratio NHWC / NCHW {result['ratio_nhwc_over_nchw']:.2f}")
    return result


def bench_compile(rounds: int) -> dict:
    sizes = tuple(get_recipe("cpu-multiscale")["fit"]["train_sizes"])
    result: dict = {"sizes": list(sizes)}
    # One size (cpu-baseline's 32 px): compile time and steady state.
    eager, compiled = _baseline_model(True), _baseline_model(True)
    steps = {"eager": _step(eager), "static": _step(compiled, compile_network(compiled, "static"))}
    batch = _batch(64, 32, True)
    start = time.perf_counter()
    steps["static"](*batch)
    result["first_step_s_one_size"] = round(time.perf_counter() - start, 1)
    times = interleaved_times({k: (lambda s=s: s(*batch)) for k, s in steps.items()}, 2, rounds, torch.device("cpu"))
    result["median_ms_32px"] = _medians(times)
    result["ratio_compiled_over_eager_32px"] = round(_ratio(times, "static", "eager"), 3)
    print(f"compile, 32 px: first step {result['first_step_s_one_size']} s, steady {result['median_ms_32px']} -> "
          f"ratio {result['ratio_compiled_over_eager_32px']:.2f}")
    # Several sizes: each mode's compile time over the first pass through the sizes, then steady state.
    batches = [_batch(64, size, True) for size in sizes]
    steps = {"eager": _step(_baseline_model(True))}
    for mode in ("static", "dynamic"):
        torch._dynamo.reset()
        model = _baseline_model(True)
        steps[mode] = _step(model, compile_network(model, mode))
        start = time.perf_counter()
        for images, labels in batches:
            steps[mode](images, labels)
        result[f"first_pass_s_{mode}"] = round(time.perf_counter() - start, 1)

    def cycle(step: Callable) -> Callable[[], None]:
        return lambda: [step(*b) for b in batches]

    times = interleaved_times({k: cycle(s) for k, s in steps.items()}, 1, max(3, rounds // 3), torch.device("cpu"))
    result["median_ms_per_cycle_of_sizes"] = _medians(times)
    result["ratio_static_over_eager_sizes"] = round(_ratio(times, "static", "eager"), 3)
    result["ratio_dynamic_over_eager_sizes"] = round(_ratio(times, "dynamic", "eager"), 3)
    print(f"compile, sizes {sizes}: first pass static {result['first_pass_s_static']} s, dynamic "
          f"{result['first_pass_s_dynamic']} s; steady {result['median_ms_per_cycle_of_sizes']} -> ratios static "
          f"{result['ratio_static_over_eager_sizes']:.2f}, dynamic {result['ratio_dynamic_over_eager_sizes']:.2f}")
    return result


def _resnet101_224(checkpointed: bool) -> tuple[torch.nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    torch.manual_seed(0)
    model = resnet101(num_classes=1000).train()
    if checkpointed:
        checkpoint_stages(model)
    generator = torch.Generator().manual_seed(0)
    return model, (torch.rand(8, 3, 224, 224, generator=generator), torch.randint(0, 1000, (8,), generator=generator))


def memory_probe(checkpointed: bool) -> None:
    """In a fresh process: three ResNet-101 steps; print the peak resident memory in MiB."""
    model, batch = _resnet101_224(checkpointed)
    step = _step(model)
    for _ in range(3):
        step(*batch)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # Linux reports KiB


def bench_checkpointing(rounds: int) -> dict:
    result: dict = {"model": "resnet101 (torchvision, full width)", "image_size": 224, "batch_size": 8}
    for name, flag in (("plain", False), ("checkpointed", True)):
        model, (images, _) = _resnet101_224(flag)
        result[f"saved_activation_mib_{name}"] = round(saved_activation_bytes(model, images) / 2**20, 1)
        probe = subprocess.run([sys.executable, __file__, "--memory-probe", name], capture_output=True, text=True, check=True)
        result[f"peak_rss_mib_{name}"] = round(float(probe.stdout.strip().splitlines()[-1]), 1)
    steps = {}
    for name, flag in (("plain", False), ("checkpointed", True)):
        model, batch = _resnet101_224(flag)
        step = _step(model)
        steps[name] = lambda step=step, batch=batch: step(*batch)
    times = interleaved_times(steps, 1, max(3, rounds // 5), torch.device("cpu"))
    result["median_ms"] = _medians(times)
    result["ratio_time_checkpointed_over_plain"] = round(_ratio(times, "checkpointed", "plain"), 3)
    result["ratio_saved_activations_checkpointed_over_plain"] = round(
        result["saved_activation_mib_checkpointed"] / result["saved_activation_mib_plain"], 3)
    print(f"checkpointing, ResNet-101 224 px batch 8: activations kept {result['saved_activation_mib_plain']} -> "
          f"{result['saved_activation_mib_checkpointed']} MiB, peak RSS {result['peak_rss_mib_plain']} -> "
          f"{result['peak_rss_mib_checkpointed']} MiB, step {result['median_ms']} -> time ratio "
          f"{result['ratio_time_checkpointed_over_plain']:.2f}, memory ratio "
          f"{result['ratio_saved_activations_checkpointed_over_plain']:.2f}")
    return result


def bench_precision(rounds: int) -> dict:
    base = _baseline_model(True)
    batch = _batch(64, 32, True)
    steps = {}
    for precision in ("fp32", "bf16", "fp16"):
        step = _step(copy.deepcopy(base), precision=precision)
        steps[precision] = lambda step=step: step(*batch)
    times = interleaved_times(steps, 3, rounds, torch.device("cpu"))
    result = {"native_bf16": supports_bf16("cpu"), "median_ms": _medians(times),
              "ratio_bf16_over_fp32": round(_ratio(times, "bf16", "fp32"), 3),
              "ratio_fp16_over_fp32": round(_ratio(times, "fp16", "fp32"), 3)}
    print(f"precision (native bf16: {result['native_bf16']}): {result['median_ms']} -> ratios bf16 "
          f"{result['ratio_bf16_over_fp32']:.2f}, fp16 {result['ratio_fp16_over_fp32']:.2f}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=SECTIONS, action="append", help="run only these (repeatable)")
    parser.add_argument("--rounds", type=int, default=15, help="measured rounds of the short steps (default 15)")
    parser.add_argument("--memory-probe", choices=("plain", "checkpointed"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_probe:
        memory_probe(args.memory_probe == "checkpointed")
        return
    if args.rounds < 3:
        parser.error("--rounds must be >= 3")
    stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    runs = {"channels_last": bench_channels_last, "compile": bench_compile, "checkpointing": bench_checkpointing,
            "precision": bench_precision}
    for name in args.only or SECTIONS:
        stored[name] = runs[name](args.rounds)
    stored["threads"] = torch.get_num_threads()
    stored["environment"] = environment_report()
    stored["command"] = " ".join(["python", "benchmarks/bench_scaling.py", *sys.argv[1:]])
    RESULTS.write_text(json.dumps(stored, indent=2) + "\n")
    print(f"-> {RESULTS}")


if __name__ == "__main__":
    main()
