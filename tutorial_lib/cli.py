"""The command line: ``python -m tutorial_lib env`` and ``python -m tutorial_lib train ...``.

Each subcommand is a ``_cmd_*`` function taking the parsed arguments; ``build_parser`` wires them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _cmd_env(args: argparse.Namespace) -> int:
    from tutorial_lib.env import environment_report, format_report

    report = environment_report()
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0 if report["embedded_data_offline"] else 1


# Flags of ``train`` that override a recipe value outside its fit section, and where the value goes.
# The fit section's flags are generated from FitConfig (``_fit_flags``).
_TRAIN_OVERRIDES = {
    "arch": "model.arch",
    "width": "model.width",
    "norm": "model.norm",
    "image_size": "data.image_size",
    "num_samples": "data.num_samples",
    "per_scale_bn": "model.per_scale_bn",
    "test_sizes": "eval.test_sizes",
    "recalibrate_bn": "eval.recalibrate_bn",
    "seed": "seed",
}


def _fit_flags() -> list[tuple[str, dict[str, Any]]]:
    """``(name, argparse options)`` for every ``FitConfig`` setting a flag can set.

    ``seed`` is the recipe's top-level ``--seed``; ``augment`` is set piecewise by ``--augment-scale``
    and ``--flip``. Every other setting gets ``--its-name``, typed from its annotation, with its help
    and valid names from ``FitConfig``, and no default: the recipe's value holds unless the flag is given.
    """
    import dataclasses

    from tutorial_lib.train import FitConfig

    types = {"int": int, "int | None": int, "float": float, "float | None": float, "str": str,
             "tuple[int, ...] | None": _sizes}
    flags = []
    for field in dataclasses.fields(FitConfig):
        if field.name in ("seed", "augment"):
            continue
        options: dict[str, Any] = {"default": None, "help": field.metadata["help"]}
        if field.type == "bool":
            options["action"] = argparse.BooleanOptionalAction
        else:
            options["type"] = types[field.type]
            if field.metadata.get("choices"):
                options["choices"] = field.metadata["choices"]
            if field.type.startswith("tuple"):
                options["metavar"] = "S1,S2,..."
        flags.append((field.name, options))
    return flags


def _sizes(text: str) -> list[int]:
    """Parse ``--train-sizes 32,48,64`` (argparse type)."""
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated pixel sizes such as 32,48,64, got {text!r}") from None
    if not sizes or min(sizes) < 8:
        raise argparse.ArgumentTypeError(f"sizes must be integers >= 8, got {text!r}")
    return sizes


def _scale_range(text: str) -> tuple[float, float]:
    """Parse ``--augment-scale MIN,MAX`` (argparse type)."""
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN,MAX (two numbers, e.g. 0.8,1.25), got {text!r}") from None
    if not 0 < low <= high:
        raise argparse.ArgumentTypeError(f"need 0 < MIN <= MAX, got {text!r}")
    return low, high


def _with_augment_flags(recipe: dict[str, Any], scale: tuple[float, float] | None, flip: bool | None) -> dict[str, Any]:
    """Merge ``--augment-scale``/``--flip`` into the recipe's augment options (other options kept)."""
    if scale is None and flip is None:
        return recipe
    augment = recipe["fit"].get("augment")
    options = {} if augment in (None, False, True) else dict(augment)  # True means Augment()'s defaults
    if augment in (None, False):
        options["max_shift"] = 0.0  # augmentation was off: turn on only what the flags ask for
    if scale is not None:
        options["scale"] = list(scale)
    if flip is not None:
        options["flip"] = flip
    recipe["fit"]["augment"] = options
    return recipe


def _test_splits(dataset: str) -> tuple[str, ...]:
    """Every evaluation split of ``dataset`` (``test`` plus any scale-shifted ``test-*`` splits)."""
    from tutorial_lib import data

    splits = data.DIGIT_SPLITS if dataset == "multiscale-digits" else data.REAL_SPLITS
    return tuple(s for s in splits if s.startswith("test"))


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON atomically, so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, path)


def _cmd_train(args: argparse.Namespace) -> int:
    """Resolve the recipe with the flags, train, evaluate every test split, write metrics.json."""
    from tutorial_lib.data import DATASETS, load_dataset
    from tutorial_lib.env import environment_report, seed_everything
    from tutorial_lib.recipes import build_run, get_recipe, recalibrated, with_overrides
    from tutorial_lib.train import evaluate, fit

    try:
        if args.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {args.dataset!r}; valid datasets: {', '.join(DATASETS)}")
        overrides = {dotted: getattr(args, flag) for flag, dotted in _TRAIN_OVERRIDES.items()}
        overrides.update({f"fit.{name}": getattr(args, name) for name, _ in _fit_flags()})
        recipe = with_overrides(get_recipe(args.recipe), overrides)
        recipe = _with_augment_flags(recipe, args.augment_scale, args.flip)
        seed = seed_everything(recipe["seed"])
        data_options = dict(recipe["data"], seed=seed)
        train_data = load_dataset(args.dataset, "train", **data_options)
        model, evaluated = build_run(recipe, len(train_data.classes))
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        history = fit(
            model, train_data, **recipe["fit"], out_dir=out, resume=args.resume, seed=seed,
            device=args.device, progress=not args.no_progress,
        )
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if history.interrupted:
        print(f"interrupted: {out / 'checkpoint.pt'} keeps epoch {len(history)}; "
              "run the same command with --resume to continue", file=sys.stderr)
        return 130

    start = time.perf_counter()
    evaluated = recalibrated(recipe, model, evaluated, train_data)
    test = {}
    for split in _test_splits(args.dataset):
        data = load_dataset(args.dataset, split, **data_options)
        by = "size" if getattr(data, "object_sizes", None) is not None else None
        test[split] = evaluate(evaluated, data, by=by)
    metrics = {
        "dataset": args.dataset,
        "recipe": args.recipe,
        "test": test,
        "train_seconds": history.train_seconds,
        "eval_seconds": time.perf_counter() - start,
        "history": history.to_dict(),
        "config": {"dataset": args.dataset, "recipe": args.recipe, **recipe, "device": str(next(model.parameters()).device)},
        "environment": environment_report(),
        "command": ["python", "-m", "tutorial_lib", *(args.argv or [])],
    }
    _write_json(out / "metrics.json", metrics)
    for split, result in test.items():
        print(f"{split:>10}: accuracy {result['accuracy']:.4f}  loss {result['loss']:.4f}  ({result['count']} images)")
    print(f"train_seconds: {history.train_seconds:.1f}  -> {out / 'metrics.json'}")
    return 0


def _add_train_parser(sub: argparse._SubParsersAction) -> None:
    from tutorial_lib.recipes import DEFAULT_RECIPE

    train = sub.add_parser(
        "train",
        help="train a model from a recipe and write DIR/metrics.json",
        description="Train a model from a named recipe; flags override the recipe's values. Writes "
        "OUT/checkpoint.pt after every epoch (Ctrl-C keeps the last one; --resume continues exactly) "
        "and OUT/metrics.json (test accuracy and loss on every test split, train_seconds, history, "
        "the resolved config and the environment) at the end.",
    )
    train.add_argument("--dataset", required=True, help="dataset name, e.g. multiscale-digits")
    train.add_argument("--out", required=True, metavar="DIR", help="run folder for checkpoint.pt and metrics.json")
    train.add_argument("--recipe", default=DEFAULT_RECIPE, help=f"recipe name (default: {DEFAULT_RECIPE})")
    train.add_argument("--arch", help="model architecture, e.g. resnet18 or resnet101")
    train.add_argument("--width", type=int, help="base channel width of the ResNet")
    train.add_argument("--image-size", type=int,
                       help="side of the stored images in pixels (the network sees --train-sizes/--test-sizes)")
    train.add_argument("--num-samples", type=int, help="images per split (fewer for a quick run)")
    train.add_argument("--norm", help="normalization layer name, e.g. batch or group")
    for name, options in _fit_flags():
        train.add_argument("--" + name.replace("_", "-"), **options)
    train.add_argument("--augment-scale", type=_scale_range, metavar="MIN,MAX",
                       help="zoom range of the augmentation (random-resized-crop style; 1,1 = no zoom)")
    train.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                       help="random horizontal flips (off in the digit recipes: a mirrored digit is no digit)")
    train.add_argument("--per-scale-bn", action="store_true", default=None,
                       help="private BatchNorm statistics and affine parameters per training size (RS-Nets)")
    train.add_argument("--test-sizes", type=_sizes, metavar="S1,S2,...",
                       help="evaluate at these input sizes; several: average the softmax outputs")
    train.add_argument("--recalibrate-bn", action=argparse.BooleanOptionalAction, default=None,
                       help="before testing, recompute BatchNorm statistics on training images at each test size")
    train.add_argument("--seed", type=int, help="random seed")
    train.add_argument("--resume", action="store_true", help="continue exactly from DIR/checkpoint.pt")
    train.add_argument("--device", help="cpu, cuda, cuda:1 or mps (default: the best available)")
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    train.set_defaults(func=_cmd_train)


def build_parser() -> argparse.ArgumentParser:
    """Build the parser with one subparser per command."""
    parser = argparse.ArgumentParser(prog="python -m tutorial_lib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    env = sub.add_parser("env", help="print the environment report (versions, device, threads, data)")
    env.add_argument("--json", action="store_true", help="print JSON instead of aligned text")
    env.set_defaults(func=_cmd_env)

    _add_train_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    return args.func(args)
