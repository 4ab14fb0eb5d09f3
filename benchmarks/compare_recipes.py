"""Compare training recipes: validation experiments for tuning, and test accuracy over several seeds.

Two modes, both appending to one JSON results file (default ``benchmarks/results/cpu_recipes.json``,
which notebook 08 reads):

``validate``
    Train a recipe, with optional ``section.key=value`` overrides, on the training split minus a
    held-out 20% of its source digits (``tutorial_lib.data.validation_split``) and record the
    validation accuracy after every epoch. This is how ``cpu-tuned`` was chosen: the test split is
    never looked at while tuning.

``test``
    Run the exact CLI command ``python -m tutorial_lib train --dataset multiscale-digits --recipe R
    --seed S`` in a fresh process for every recipe and seed, and record the test accuracy of every
    split and its accuracy by object size, the training time, the number of optimizer steps and the
    multiply-adds of the test protocol per image.

Training time depends on what else the machine runs, so every record stores the load average
before and after the run; compare recipes by their optimizer steps and per-step cost, or on a quiet
machine. The last line printed is the figure: mean test accuracy and spread per recipe.

Usage::

    python benchmarks/compare_recipes.py test --recipes cpu-baseline cpu-tuned --seeds 0 1 2
    python benchmarks/compare_recipes.py --results benchmarks/results/cpu_multiscale.json test \
        --recipes cpu-baseline --seeds 0 --name "single-scale + TTA" --flags="--test-sizes 24,32,48,64"
    python benchmarks/compare_recipes.py validate --recipe cpu-baseline --set fit.lr=0.008 --name lr8e-3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RESULTS = ROOT / "benchmarks" / "results" / "cpu_recipes.json"
SPLITS = ("test", "test-small", "test-large")


def _load() -> str:
    return open("/proc/loadavg").read().split()[0] if Path("/proc/loadavg").exists() else "n/a"


def _read(path: Path) -> dict:
    if path.exists():
        return json.loads(path.read_text())
    return {"description": __doc__.splitlines()[0], "machine": _machine(), "commands": [], "runs": [], "validation": []}


def _machine() -> str:
    import torch

    return f"{platform.machine()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, Python {platform.python_version()}"


def _write(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    os.replace(tmp, path)


def _inference_macs(config: dict) -> int:
    """``recipes.inference_macs`` of the run's own recipe (``metrics.json``'s ``config``)."""
    from tutorial_lib.recipes import SECTIONS, inference_macs

    return inference_macs({key: config[key] for key in (*SECTIONS, "seed") if key in config})


def _keep_weights(run: Path, folder: Path, recipe: str, seed: int) -> Path:
    """Save the trained weights of a run (the model's state_dict only, no optimizer) as FOLDER/RECIPE_seedS.pt."""
    import torch

    from tutorial_lib.train import load_checkpoint

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{recipe.replace('-', '_')}_seed{seed}.pt"
    torch.save(load_checkpoint(run / "checkpoint.pt")["model"], path)
    return path


def _by_size(metrics: dict) -> dict:
    """Each split's accuracy by object size (the CLI's bins): ``[[size_min, size_max, accuracy, count], ...]``."""
    return {split: [[round(b["size_min"], 2), round(b["size_max"], 2), round(b["accuracy"], 4), b["count"]]
                    for b in metrics["test"][split].get("by_size", [])] for split in SPLITS}


def run_test(args: argparse.Namespace) -> None:
    results = _read(args.results)
    root = Path(tempfile.mkdtemp(prefix="compare_recipes_"))
    for seed in args.seeds:
        for recipe in args.recipes:  # alternate the recipes, so load changes hit both alike
            out = root / f"{recipe}_seed{seed}"
            command = ["python", "-m", "tutorial_lib", "train", "--dataset", "multiscale-digits",
                       "--recipe", recipe, *args.flags.split(), "--seed", str(seed), "--out", str(out), "--no-progress"]
            before = _load()
            print(f"$ {' '.join(command)}   (load average {before})", flush=True)
            subprocess.run([sys.executable, *command[1:]], check=True, cwd=ROOT)
            metrics = json.loads((out / "metrics.json").read_text())
            if args.keep_weights:
                _keep_weights(out, args.keep_weights, recipe, seed)
            run = {"recipe": recipe, "seed": seed, **{s: metrics["test"][s]["accuracy"] for s in SPLITS},
                   **({"name": args.name, "flags": args.flags} if args.flags or args.name else {}),
                   "train_sizes": metrics["config"]["fit"].get("train_sizes"),
                   "test_sizes": metrics["config"].get("eval", {}).get("test_sizes"),
                   "eval_seconds": round(metrics["eval_seconds"], 1),
                   "train_seconds": round(metrics["train_seconds"], 1), "steps": len(metrics["history"]["step_loss"]),
                   "threads": metrics["environment"].get("threads"),
                   "inference_macs": _inference_macs(metrics["config"]), "by_size": _by_size(metrics),
                   "load_before": before, "load_after": _load()}
            results["runs"].append(run)
            results["commands"].append(command[:-3] + ["--out", "DIR", "--no-progress"])
            _write(args.results, results)
            print(f"  {recipe} seed {seed}: " + "  ".join(f"{s} {run[s]:.4f}" for s in SPLITS)
                  + f"  train_seconds {run['train_seconds']}  steps {run['steps']}", flush=True)
    summary = []
    for recipe in dict.fromkeys(r.get("name", r["recipe"]) for r in results["runs"]):
        acc = [r["test"] for r in results["runs"] if r.get("name", r["recipe"]) == recipe]
        spread = statistics.stdev(acc) if len(acc) > 1 else float("nan")
        summary.append(f"{recipe} {100 * statistics.mean(acc):.2f}% +- {100 * spread:.2f} over {len(acc)} seeds")
    print("test accuracy: " + "; ".join(summary))


def run_validate(args: argparse.Namespace) -> None:
    import torch

    from tutorial_lib.data import load_dataset, validation_split
    from tutorial_lib.env import seed_everything
    from tutorial_lib.models import create_model
    from tutorial_lib.recipes import get_recipe, with_overrides
    from tutorial_lib.train import fit

    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = json.loads(value)
    recipe = with_overrides(get_recipe(args.recipe), overrides)
    seed = seed_everything(recipe["seed"])
    full = load_dataset("multiscale-digits", "train", seed=seed, **recipe["data"])
    train_part, val_part = validation_split(full, 0.2)
    options = dict(recipe["model"])
    model = create_model(options.pop("arch"), num_classes=len(full.classes), **options)
    before, start = _load(), time.perf_counter()
    history = fit(model, train_part, **recipe["fit"], val_data=val_part, seed=seed, progress=False)
    record = {"name": args.name or args.recipe, "recipe": args.recipe, "overrides": overrides,
              "val_acc": [round(v, 4) for v in history.column("val_acc")], "steps": len(history.step_loss),
              "train_seconds": round(history.train_seconds, 1), "threads": torch.get_num_threads(),
              "load_before": before, "load_after": _load(), "wall_seconds": round(time.perf_counter() - start, 1),
              "command": ["python", "benchmarks/compare_recipes.py", "validate", "--recipe", args.recipe,
                          *[x for item in args.set for x in ("--set", item)]]}
    results = _read(args.results)
    results["validation"].append(record)
    _write(args.results, results)
    print(json.dumps(record))
    print(f"{record['name']}: validation accuracy {record['val_acc'][-1]:.4f} after {record['steps']} steps")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="JSON file to append to")
    sub = parser.add_subparsers(dest="mode", required=True)
    test = sub.add_parser("test", help="CLI runs: test accuracy per recipe and seed")
    test.add_argument("--recipes", nargs="+", default=["cpu-baseline", "cpu-tuned"])
    test.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    test.add_argument("--flags", default="", help='extra CLI flags, e.g. "--test-sizes 24,32,48,64" (quote them)')
    test.add_argument("--name", help="label of the runs (default: the recipe name)")
    test.add_argument("--keep-weights", type=Path, metavar="DIR",
                      help="also save each run's trained weights (state_dict) as DIR/RECIPE_seedS.pt, for a notebook to read")
    test.set_defaults(func=run_test)
    val = sub.add_parser("validate", help="one validation experiment (training split minus held-out source digits)")
    val.add_argument("--recipe", default="cpu-baseline")
    val.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=JSON", help="override, e.g. fit.lr=0.008")
    val.add_argument("--name", help="label of the experiment")
    val.add_argument("--threads", type=int, help="torch threads (1 is faster on a crowded machine)")
    val.set_defaults(func=run_validate)
    args = parser.parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
