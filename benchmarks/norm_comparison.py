"""Notebook 05's normalization comparisons, repeated over seeds.

Notebook 05 trains, once and with seed ``SEED``, five ResNet-18s that differ only in their
normalization (section 4) and BatchNorm against GroupNorm at three batch sizes (section 5), at a
budget that fits its three minutes. One seed cannot rank anything: this script repeats exactly the
same protocol for several seeds, so that the notebook can show the spread beside its single run.

* section 4 (``norms``): ResNet-18, width 8, small stem, 3,072 training images of
  ``multiscale-digits`` at 32 px (digits 0.6-0.95 of the image side), 2 epochs of batch 32, SGD with
  Nesterov momentum 0.9, one-cycle schedule with peak learning rate 0.1, weight decay on conv and
  linear weights only (``fit``'s defaults otherwise); test accuracy on 1,000 test images, the mean
  training loss of the last epoch, and for the BatchNorm models the mean |gamma| of the last
  BatchNorm of every residual branch after training (``bn2`` of each BasicBlock: the layer that
  ``zero_init_residual`` starts at 0).
* ``--long-epochs E``: ``batch`` and ``batch + zero-init`` again with E epochs (the same one-cycle
  schedule stretched over E epochs), to see whether the zero-initialised network catches up; for the
  seeds of ``--long-seeds`` only.
* section 5 (``sweep``): BatchNorm and GroupNorm at batch sizes 32, 8 and 2 on the first 1,024
  training images, 2 epochs, peak learning rate scaled linearly with the batch size (0.1 at 32).

Writes ``benchmarks/results/norm_comparison.json``. Run it with::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/norm_comparison.py --seeds 0 1 2

(several minutes of one core on a quiet 2-core machine). On a busy machine, split the work over
processes with ``--parts norms`` / ``--parts sweep`` and one seed each (each run depends only on
its seed and the thread count) and merge the files.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from tutorial_lib.data import load_dataset
from tutorial_lib.env import seed_everything
from tutorial_lib.models import resnet18
from tutorial_lib.train import evaluate, fit

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RESULTS = ROOT / "benchmarks" / "results" / "norm_comparison.json"
COMMAND = "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/norm_comparison.py --seeds 0 1 2"

# The notebook's defaults (its parameters cell).
IMAGE_SIZE = 32
OBJECT_SIZE = (0.6, 0.95)
NUM_TRAIN = 3072
NUM_TEST = 1000
WIDTH = 8
EPOCHS = 2
BATCH_SIZE = 32
LR = 0.1
SWEEP_BATCH_SIZES = (32, 8, 2)
SWEEP_NUM_TRAIN = 1024
SWEEP_EPOCHS = 2

CONFIGS = {
    "batch": {"norm": "batch"},
    "group": {"norm": "group"},
    "layer": {"norm": "layer"},
    "none": {"norm": "none"},
    "batch + zero-init": {"norm": "batch", "zero_init_residual": True},
}


def branch_gammas(model: torch.nn.Module) -> list[float]:
    """Mean |weight| of the last norm layer of every residual branch (``bn2``), in forward order."""
    return [round(block.bn2.weight.detach().abs().mean().item(), 4)
            for stage in (model.layer1, model.layer2, model.layer3, model.layer4) for block in stage]


def train_one(options: dict, data, test_data, *, seed: int, epochs: int, batch_size: int, lr: float) -> dict:
    """One run of the notebook's protocol; returns its measurements."""
    seed_everything(seed)
    model = resnet18(width=WIDTH, stem="small", num_classes=10, **options)
    history = fit(model, data, epochs=epochs, batch_size=batch_size, optimizer="sgd", lr=lr,
                  seed=seed, device="cpu", progress=False)
    row = {"test_acc": round(evaluate(model, test_data)["accuracy"], 4),
           "last_epoch_train_loss": round(history.last["train_loss"], 4),
           "steps": len(history.step_loss)}
    if options.get("norm") == "batch":
        row["branch_gammas"] = branch_gammas(model)
    return row


def main(argv: list[str] | None = None) -> dict:
    """Run the comparisons for every seed and write the JSON file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--long-epochs", type=int, default=0, help="also train batch and batch + zero-init this long (0: skip)")
    parser.add_argument("--long-seeds", type=int, nargs="+", default=None,
                        help="the seeds of the --long-epochs runs (default: all of --seeds)")
    parser.add_argument("--parts", nargs="+", choices=("norms", "sweep"), default=["norms", "sweep"],
                        help="which comparisons to run (to split the work over processes)")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    args = parser.parse_args(argv)

    train_data = load_dataset("multiscale-digits", "train", image_size=IMAGE_SIZE, num_samples=NUM_TRAIN, object_size=OBJECT_SIZE)
    test_data = load_dataset("multiscale-digits", "test", image_size=IMAGE_SIZE, num_samples=NUM_TEST, object_size=OBJECT_SIZE)
    sweep_data = TensorDataset(train_data.images[:SWEEP_NUM_TRAIN], train_data.labels[:SWEEP_NUM_TRAIN])
    results: dict = {"command": COMMAND, "threads": torch.get_num_threads(), "torch": torch.__version__.split("+")[0],
                     "seeds": args.seeds, "norms": {}, "long": {}, "long_epochs": args.long_epochs, "sweep": {}}
    start = time.perf_counter()
    for seed in args.seeds:
        for name, options in CONFIGS.items() if "norms" in args.parts else ():
            row = train_one(options, train_data, test_data, seed=seed, epochs=EPOCHS, batch_size=BATCH_SIZE, lr=LR)
            results["norms"].setdefault(name, {})[str(seed)] = row
            print(f"seed {seed} {name:>17}: {row}", flush=True)
        if args.long_epochs and "norms" in args.parts and (args.long_seeds is None or seed in args.long_seeds):
            for name in ("batch", "batch + zero-init"):
                row = train_one(CONFIGS[name], train_data, test_data, seed=seed, epochs=args.long_epochs,
                                batch_size=BATCH_SIZE, lr=LR)
                results["long"].setdefault(name, {})[str(seed)] = row
                print(f"seed {seed} {name:>17}, {args.long_epochs} epochs: {row}", flush=True)
        for batch_size in SWEEP_BATCH_SIZES if "sweep" in args.parts else ():
            for norm in ("batch", "group"):
                row = train_one({"norm": norm}, sweep_data, test_data, seed=seed, epochs=SWEEP_EPOCHS,
                                batch_size=batch_size, lr=LR * batch_size / BATCH_SIZE)
                results["sweep"].setdefault(norm, {}).setdefault(str(batch_size), {})[str(seed)] = row["test_acc"]
                print(f"seed {seed} sweep {norm} batch {batch_size}: {row['test_acc']}", flush=True)
    results["minutes"] = round((time.perf_counter() - start) / 60, 1)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main()
