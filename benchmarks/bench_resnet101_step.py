"""Time tutorial_lib's ResNet-101 against torchvision's: inference, then a training step.

Both networks get the same weights (torchvision's random initialization, loaded strictly into
ours) and the same batch. Timings are interleaved in one process (A, B, then B, A, ...) so that
frequency scaling, other processes and cache state hit both alike. Times are medians over the
measured rounds after a warmup; each ratio is the median of the per-round ratios.

A training step is ``zero_grad``, forward, cross-entropy, backward and an SGD (momentum) step.

Prints the inference ratio, then the training-step ratio as the last line
(tutorial_lib time / torchvision time; 1.00 means equal, the target is <= 1.03).

    .venv/bin/python benchmarks/bench_resnet101_step.py
    .venv/bin/python benchmarks/bench_resnet101_step.py --batch-size 32 --image-size 224  # a GPU
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torchvision
from torch import nn

from tutorial_lib.models import resnet101


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=8, help="images per batch (default 8)")
    parser.add_argument("--image-size", type=int, default=128, help="square input side in px (default 128)")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured rounds per model (default 2)")
    parser.add_argument("--rounds", type=int, default=10, help="measured rounds per model (default 10)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name in ("batch_size", "image_size", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.warmup < 0:
        parser.error("--warmup must be >= 0")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda needs a CUDA GPU; this machine has none")
    return args


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_times(
    steps: dict[str, Callable[[], None]], warmup: int, rounds: int, device: torch.device
) -> dict[str, list[float]]:
    """Run the steps alternately (order flipped every round); return each one's measured seconds."""
    names = list(steps)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(warmup + rounds):
        order = names if round_index % 2 == 0 else names[::-1]
        for name in order:
            _sync(device)
            start = time.perf_counter()
            steps[name]()
            _sync(device)
            elapsed = time.perf_counter() - start
            if round_index >= warmup:
                times[name].append(elapsed)
    return times


def summarize(times: dict[str, list[float]]) -> tuple[float, float, float]:
    """Median time of each model, and the median of the per-round ratios ours / theirs.

    The two runs of a round are adjacent in time, so their ratio cancels slow changes in machine
    load that would bias a ratio of overall medians.
    """
    ours, theirs = times["tutorial_lib"], times["torchvision"]
    ratio = statistics.median(a / b for a, b in zip(ours, theirs))
    return statistics.median(ours), statistics.median(theirs), ratio


def main() -> None:
    args = parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(args.seed)

    theirs = torchvision.models.resnet101(weights=None)
    ours = resnet101()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    ours.to(device)
    theirs.to(device)
    models = {"tutorial_lib": ours, "torchvision": theirs}

    generator = torch.Generator().manual_seed(args.seed)
    x = torch.randn(args.batch_size, 3, args.image_size, args.image_size, generator=generator).to(device)
    y = torch.randint(0, 1000, (args.batch_size,), generator=generator).to(device)
    print(
        f"ResNet-101, batch {args.batch_size} x 3 x {args.image_size} x {args.image_size}, "
        f"device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"{args.warmup} warmup + {args.rounds} measured rounds, interleaved"
    )

    # Inference: eval mode, no autograd.
    def infer(model: nn.Module) -> Callable[[], None]:
        def step() -> None:
            with torch.inference_mode():
                model(x)

        return step

    for model in models.values():
        model.eval()
    inference = summarize(interleaved_times({n: infer(m) for n, m in models.items()}, args.warmup, args.rounds, device))

    # Training step: each model has its own optimizer; both start from the same weights and see
    # the same batch, so they do the same arithmetic.
    def train_step(model: nn.Module) -> Callable[[], None]:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        loss_fn = nn.CrossEntropyLoss()

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()

        return step

    for model in models.values():
        model.train()
    training = summarize(interleaved_times({n: train_step(m) for n, m in models.items()}, args.warmup, args.rounds, device))

    for label, (ours_s, theirs_s, _) in (("inference", inference), ("train step", training)):
        print(f"{label:>10}: tutorial_lib {1000 * ours_s:.1f} ms, torchvision {1000 * theirs_s:.1f} ms (medians)")
    print(f"inference ratio (tutorial_lib / torchvision, median per round): {inference[2]:.3f}")
    print(f"train step ratio (tutorial_lib / torchvision, median per round): {training[2]:.3f}")


if __name__ == "__main__":
    main()
