"""The schedules of notebook 08, section 3, over several seeds: which differences outlast the noise?

Notebook 08 trains each schedule once (seed 0) at its default parameters. This script repeats
those runs, with the same data, network, batch size, budget and peak learning rate, for several
seeds, and adds two controls that ask *why* ``constant`` and ``step`` do worse than ``onecycle``
and ``cosine`` at that peak rate:

* ``constant, warm-up``: the constant rate after the same linear warm-up ``cosine`` uses (5% of
  the steps, Goyal et al. 2017 sec 2.2). If the missing warm-up were the whole story, this run
  would catch up with cosine.
* ``constant, lr / 4``: the constant rate at a quarter of the peak, about the mean rate of the
  annealed schedules. If the rate *held* at its peak were the story, this run would catch up.

For every run it records the validation accuracy after each epoch, the final validation loss, the
mean training loss of each epoch and the largest training loss of the first ten steps (a freshly initialised 10-class network starts
near ln 10 = 2.30; a full rate on the first steps pushes the loss above that). Writes
``benchmarks/results/schedule_seeds.json``. Eighteen trainings of 100 steps: a few minutes on the
2-core reference machine. Seeds may run in separate processes (``--seeds 0 --results a.json`` and so
on); merge their ``runs`` lists::

    .venv/bin/python benchmarks/schedule_seeds.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from tutorial_lib.data import load_dataset, validation_split
from tutorial_lib.env import seed_everything
from tutorial_lib.models import resnet18
from tutorial_lib.train import DEFAULT_WARMUP, fit

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RESULTS = ROOT / "benchmarks" / "results" / "schedule_seeds.json"
# Notebook 08's default parameters (its parameters cell).
SETTINGS = {"image_size": 32, "object_size": (0.6, 0.95), "num_samples": 4096, "width": 8, "batch_size": 64,
            "epochs": 2, "lr": 0.02}


def configurations(lr: float, total_steps: int) -> dict[str, dict]:
    """The runs to compare, as ``fit`` options: the four schedules of section 3 and the two controls."""
    return {
        "onecycle": {"schedule": "onecycle"},
        "cosine": {"schedule": "cosine"},
        "step": {"schedule": "step"},
        "constant": {"schedule": "constant"},
        "constant, warm-up": {"schedule": "constant", "warmup_steps": round(DEFAULT_WARMUP["cosine"] * total_steps)},
        "constant, lr / 4": {"schedule": "constant", "lr": lr / 4},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    args = parser.parse_args()

    s = SETTINGS
    full = load_dataset("multiscale-digits", "train", image_size=s["image_size"], num_samples=s["num_samples"],
                        object_size=s["object_size"])
    train_data, val_data = validation_split(full, 0.2)
    total_steps = s["epochs"] * (len(train_data) // s["batch_size"])
    runs = []
    for seed in args.seeds:
        for name, options in configurations(s["lr"], total_steps).items():
            settings = {"epochs": s["epochs"], "batch_size": s["batch_size"], "lr": s["lr"], "channels_last": True,
                        "seed": seed, "device": torch.device("cpu"), "progress": False, **options}
            seed_everything(seed)
            model = resnet18(num_classes=10, width=s["width"], stem="small")
            start = time.perf_counter()
            history = fit(model, train_data, val_data=val_data, **settings)
            run = {"config": name, "seed": seed, "options": {k: v for k, v in options.items()},
                   "val_acc": [round(v, 4) for v in history.column("val_acc")],
                   "final_val_loss": round(history.last["val_loss"], 4),
                   "max_loss_first_10_steps": round(max(history.step_loss[:10]), 4),
                   "mean_train_loss_per_epoch": [round(sum(part) / len(part), 4) for part in (
                       history.step_loss[e * len(history.step_loss) // s["epochs"]:(e + 1) * len(history.step_loss) // s["epochs"]]
                       for e in range(s["epochs"]))],
                   "train_seconds": round(time.perf_counter() - start, 1)}
            runs.append(run)
            print(json.dumps(run), flush=True)
    results = {"description": __doc__.splitlines()[0], "settings": {**s, "object_size": list(s["object_size"])},
               "machine": f"{platform.machine()}, torch {torch.__version__}, Python {platform.python_version()}, "
                          f"{torch.get_num_threads()} thread(s)",
               "command": f"python benchmarks/schedule_seeds.py --seeds {' '.join(map(str, args.seeds))}",
               "runs": runs}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=1) + "\n")
    print(f"-> {args.results.relative_to(ROOT) if args.results.is_relative_to(ROOT) else args.results}")


if __name__ == "__main__":
    main()
