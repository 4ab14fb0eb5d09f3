"""Time a training step of the cpu-baseline network in float32 and in bfloat16 mixed precision.

The step is what ``tutorial_lib.train.fit`` does: forward and cross-entropy (under
``torch.autocast(dtype=torch.bfloat16)`` for the mixed-precision step), ``zero_grad``, backward and
an AdamW step, on one batch of the recipe's size and resolution, channels-last like the recipe.
The two steps run interleaved in one process (A, B, then B, A, ...) on two copies of the same
weights, so that load and frequency changes hit both alike. Prints the median step times and, last,
the ratio bf16 / fp32 (below 1 means bfloat16 is faster).

On a CPU without native bfloat16 (``tutorial_lib.env.supports_bf16()`` is False) the ratio is
usually above 1: the instructions are emulated. That is why the recipes use ``precision="auto"``.

    .venv/bin/python benchmarks/bench_precision.py
    .venv/bin/python benchmarks/bench_precision.py --batch-size 128 --image-size 48
"""

from __future__ import annotations

import argparse
import copy
import statistics

import torch
import torch.nn.functional as F
from bench_resnet101_step import interleaved_times  # same folder: run as a script

from tutorial_lib.env import supports_bf16
from tutorial_lib.models import create_model
from tutorial_lib.recipes import get_recipe


def main() -> None:
    recipe = get_recipe("cpu-baseline")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=recipe["fit"]["batch_size"])
    parser.add_argument("--image-size", type=int, default=recipe["fit"]["train_sizes"][0])
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured rounds (default 3)")
    parser.add_argument("--rounds", type=int, default=20, help="measured rounds (default 20)")
    args = parser.parse_args()
    if min(args.batch_size, args.image_size, args.rounds) < 1 or args.warmup < 0:
        parser.error("--batch-size, --image-size and --rounds must be >= 1, --warmup >= 0")

    torch.manual_seed(0)
    options = dict(recipe["model"])
    base = create_model(options.pop("arch"), num_classes=10, **options).to(memory_format=torch.channels_last)
    images = torch.rand(args.batch_size, 3, args.image_size, args.image_size).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (args.batch_size,))

    def make_step(bf16: bool):
        model = copy.deepcopy(base).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

        def step() -> None:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(model(images), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        return step

    steps = {"fp32": make_step(False), "bf16": make_step(True)}
    times = interleaved_times(steps, args.warmup, args.rounds, torch.device("cpu"))
    ratios = [b / f for b, f in zip(times["bf16"], times["fp32"])]
    print(f"batch {args.batch_size} at {args.image_size} px, {torch.get_num_threads()} threads, "
          f"native bfloat16: {supports_bf16('cpu')}")
    for name, values in times.items():
        print(f"{name}: median step {1000 * statistics.median(values):.1f} ms over {len(values)} rounds")
    print(f"ratio bf16 / fp32: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
