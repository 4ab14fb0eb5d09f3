"""The command line: ``python -m tutorial_lib env`` and ``python -m tutorial_lib train ...``.

Installed as the ``tutorial-lib`` command too (``[project.scripts]`` in pyproject.toml). These are
notes for developers; ``--help`` shows the parsers' own texts (``_DESCRIPTION``, ``_train_description``)
and never this docstring.

* Each subcommand is a ``_cmd_*`` function that takes the parsed arguments and returns the exit
  status; ``build_parser`` wires them and ``main`` runs them.
* Every error a user can cause ends as one ``error: ...`` line on stderr with exit status 2:
  argparse's usage errors through ``_Parser.error``, everything else by raising ``CLIError`` with a
  message in the command line's words (``--lr``, not ``lr=``). Library errors are translated where
  the library is called (``_flag_words``). An exception that still ends in a traceback is a bug.
* ``train`` never half-replaces a run. A folder that holds one needs ``--resume`` (continue it in
  place) or ``--overwrite``, which trains in a staging folder ``DIR.partial`` beside ``DIR`` and
  swaps it in only after ``metrics.json`` is written (``_replace_run``). ``--resume`` reads ``DIR``
  only; an interrupted ``--overwrite`` run is an ordinary run folder, continued with
  ``--out DIR.partial --resume``.
* ``train``'s flags are added when the ``train`` parser is first used (``_LazyParser``), so
  ``python -m tutorial_lib --help`` and ``env`` do not wait for PyTorch to import.
* Under ``torchrun`` (``$WORLD_SIZE`` > 1) ``train`` initializes the process group (gloo on the CPU,
  nccl on CUDA, one GPU per process: ``cuda:$LOCAL_RANK``) around the run and destroys it at the
  end (``_process_group``); ``fit`` does the distributed training. Every process checks the flags
  and loads the data; only rank 0 touches the run folder (checks it, creates it, and ``fit`` writes
  the checkpoint from rank 0), tests the model and prints results. Errors are printed by every
  process that meets them: a failed process makes torchrun stop the others.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

__all__ = ["STAGING_SUFFIX", "CLIError", "build_parser", "main"]

#: What ``python -m tutorial_lib --help`` says: for users, with examples (``%(prog)s`` is filled in).
_DESCRIPTION = """\
Train and test the tutorial's image classifiers from a terminal, with the same named recipes the \
notebooks use.
"""

_EPILOG = """\
examples:
  %(prog)s env
  %(prog)s train --dataset multiscale-digits --out runs/baseline
  %(prog)s train --dataset multiscale-digits --out runs/multiscale --recipe cpu-multiscale
  %(prog)s train --dataset multiscale-digits --out runs/baseline --resume

"%(prog)s train --help" lists the recipes and every flag with its default. An error prints one line \
starting with "error:" and exits with status 2.
"""

_TRAIN_EPILOG = """\
examples:
  %(prog)s --dataset multiscale-digits --out runs/baseline
  # a quick run: one epoch on fewer images
  %(prog)s --dataset multiscale-digits --out runs/quick --epochs 1 --num-samples 2000
  # continue a run stopped with Ctrl-C (the same flags, plus --resume)
  %(prog)s --dataset multiscale-digits --out runs/baseline --resume
  # train it again from the start, replacing it only once the new run has finished
  %(prog)s --dataset multiscale-digits --out runs/baseline --overwrite
  # two processes (two GPUs, or two CPU processes), the same global --batch-size
  torchrun --nproc_per_node=2 -m tutorial_lib train --dataset multiscale-digits --out runs/ddp --sync-bn
"""

#: Files that make a folder a run folder: ``train`` refuses to replace them without ``--overwrite``.
_RUN_FILES = ("checkpoint.pt", "metrics.json")
# What a run folder may hold for --overwrite to replace it whole: the run files and the temporary
# files of their atomic writes (a crash can leave one behind). Anything else could be the user's.
_REPLACEABLE = (*_RUN_FILES, "checkpoint.pt.tmp", "metrics.json.tmp")
#: Suffix of the staging folder beside DIR in which ``--overwrite`` trains the new run.
STAGING_SUFFIX = ".partial"

# Flags of ``train`` that override a recipe value outside its fit section, and where the value goes.
# The fit section's flags are generated from FitConfig (``_fit_flags``).
_TRAIN_OVERRIDES = {
    "arch": "model.arch",
    "width": "model.width",
    "norm": "model.norm",
    "image_size": "data.image_size",
    "num_samples": "data.num_samples",
    "per_scale_bn": "model.per_scale_bn",
    "scales": "model.scales",
    "scale_pool": "model.scale_pool",
    "head": "model.head",
    "test_sizes": "eval.test_sizes",
    "test_scales": "eval.scales",
    "recalibrate_bn": "eval.recalibrate_bn",
    "seed": "seed",
}


class CLIError(Exception):
    """An error the user caused; its message says what to change on the command line.

    ``main`` prints it as one ``error: ...`` line and returns exit status 2.
    """


# --------------------------------------------------------------------------------------------------
# Parser plumbing: one-line errors, paragraph-aware help, lazily added flags
# --------------------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse with the command line's error format: one ``error: ...`` line, exit status 2."""

    def error(self, message: str) -> NoReturn:
        # argparse would print the whole usage (a dozen lines for train) before its message; the
        # message names the flag, and --help is one command away.
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


class _LazyParser(_Parser):
    """A subcommand parser whose arguments are added the first time it parses or prints help.

    ``train``'s flags and description are computed from ``FitConfig`` and the recipes, which import
    PyTorch (seconds); ``python -m tutorial_lib --help`` and ``env`` should not wait for that.

    Args:
        populate: called once with the parser, before its first use.
        *args, **kwargs: as for ``argparse.ArgumentParser``.
    """

    def __init__(self, *args: Any, populate: Callable[[argparse.ArgumentParser], None] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._populate = populate

    def _ensure_populated(self) -> None:
        if self._populate is not None:
            populate, self._populate = self._populate, None
            populate(self)

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None):
        self._ensure_populated()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._ensure_populated()
        return super().format_help()

    def format_usage(self) -> str:
        self._ensure_populated()
        return super().format_usage()


class _Formatter(argparse.HelpFormatter):
    """Wraps each paragraph of a description or epilog on its own.

    A paragraph with indented lines (examples, the recipe table) keeps its lines; a long indented
    line ``"  name  text"`` wraps under the start of ``text``.
    """

    def __init__(self, prog: str) -> None:
        # Room for "--warmup-epochs X" beside its help.
        super().__init__(prog, max_help_position=32)

    def _split_lines(self, text: str, width: int) -> list[str]:
        # Never break a flag or recipe name at its hyphen ("cpu-" / "baseline").
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = []
        for paragraph in text.strip("\n").split("\n\n"):
            lines = paragraph.splitlines()
            if not any(line.startswith("  ") for line in lines):
                paragraphs.append(textwrap.fill(" ".join(paragraph.split()), width, initial_indent=indent, subsequent_indent=indent,
                                                break_on_hyphens=False))
                continue
            kept = []
            for line in lines:
                columns = re.match(r"( +\S.*?  +)(\S.*)", line)
                if columns is None:
                    kept.append(indent + line)
                else:
                    lead = indent + columns[1]
                    kept.append(textwrap.fill(columns[2], max(width, len(lead) + 20), initial_indent=lead, subsequent_indent=" " * len(lead),
                                               break_on_hyphens=False))
            paragraphs.append("\n".join(kept))
        return "\n\n".join(paragraphs)


# --------------------------------------------------------------------------------------------------
# env
# --------------------------------------------------------------------------------------------------


def _cmd_env(args: argparse.Namespace) -> int:
    """Print the environment report; exit status 1 when the embedded dataset cannot be built offline."""
    from tutorial_lib.env import environment_report, format_report

    try:
        report = environment_report()
    except ValueError as err:  # a bad $TUTORIAL_DEVICE; the message names the variable
        raise CLIError(_flag_words(err)) from None
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0 if report["embedded_data_offline"] else 1


# --------------------------------------------------------------------------------------------------
# train: flags and their help
# --------------------------------------------------------------------------------------------------


def _show(value: Any) -> str:
    """A setting's value as a user types it: ``on``/``off``, ``32,48``, ``0.004``."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return ",".join(_show(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _recipe_default(get: Callable[[dict[str, Any]], Any], show: Callable[[Any], str] = _show) -> str:
    """``(default: the recipe's; cpu-baseline: 0.004, cpu-tuned: 0.008)``, read from the recipes.

    Args:
        get: the value a flag overrides, given a recipe (with the fallback the code uses when the
            recipe leaves it out).
        show: how to print a value.

    Returns:
        The default recipe's value, then every other recipe's that differs from it, so a help
        text cannot drift from the recipes.
    """
    from tutorial_lib.recipes import DEFAULT_RECIPE, get_recipe, list_recipes

    base = get(get_recipe(DEFAULT_RECIPE))
    shown = [f"{DEFAULT_RECIPE}: {show(base)}"]
    for name in list_recipes():
        value = get(get_recipe(name))
        if name != DEFAULT_RECIPE and value != base:
            shown.append(f"{name}: {show(value)}")
    # argparse %-formats help strings: a literal % must be doubled.
    return f"(default: the recipe's; {', '.join(shown)})".replace("%", "%%")


def _fit_flags() -> list[tuple[str, dict[str, Any]]]:
    """``(name, argparse options)`` for every ``FitConfig`` setting a flag can set.

    ``seed`` is the recipe's top-level ``--seed``; ``augment`` is set piecewise by ``--augment-scale``
    and ``--flip``. Every other setting gets ``--its-name``, typed from its annotation, with its help
    from ``FitConfig`` and no default: the recipe's value holds unless the flag is given (the help
    shows it). Names are validated by ``_resolve`` rather than argparse's ``choices``, for a "Did you
    mean" suggestion.
    """
    import dataclasses

    from tutorial_lib.train import FitConfig

    types = {"int": int, "int | None": int, "float": float, "float | None": float, "str": str,
             "tuple[int, ...] | None": _sizes}
    metavars = {int: "N", float: "X", _sizes: "S1,S2,..."}
    flags = []
    for field in dataclasses.fields(FitConfig):
        if field.name in ("seed", "augment"):
            continue
        text = field.metadata["help"]
        # A setting whose default is None says what None means as "(default: ...)"; show that as
        # the recipe's value instead of "none".
        meaning = re.fullmatch(r"(.*) \(default: (.*)\)", text)
        none_means = "none"
        if meaning:
            text, none_means = meaning[1], meaning[2]
        fallback = None if field.default is dataclasses.MISSING else field.default
        default = _recipe_default(lambda recipe, name=field.name, fallback=fallback: recipe["fit"].get(name, fallback),
                                  lambda value, none_means=none_means: none_means if value is None else _show(value))
        options: dict[str, Any] = {"default": None, "help": f"{text} {default}"}
        if field.type == "bool":
            options["action"] = argparse.BooleanOptionalAction
        else:
            options["type"] = types[field.type]
            choices = field.metadata.get("choices")
            options["metavar"] = "{" + ",".join(choices) + "}" if choices else metavars[options["type"]]
        flags.append((field.name, options))
    return flags


def _fit_choices() -> dict[str, tuple[str, ...]]:
    """``{setting: valid names}`` for the ``FitConfig`` settings that take a name (``optimizer``, ...)."""
    import dataclasses

    from tutorial_lib.train import FitConfig

    return {f.name: tuple(f.metadata["choices"]) for f in dataclasses.fields(FitConfig) if f.metadata.get("choices")}


def _sizes(text: str) -> list[int]:
    """Parse ``--train-sizes 32,48,64`` (argparse type)."""
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated pixel sizes such as 32,48,64, got {text!r}") from None
    if not sizes or min(sizes) < 8:
        raise argparse.ArgumentTypeError(f"sizes must be integers >= 8, got {text!r}")
    return sizes


def _factors(text: str) -> list[float]:
    """Parse ``--scales 0.5,1,2`` (argparse type): scale factors of the channels, numbers > 0."""
    try:
        factors = [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated scale factors such as 0.5,1,2, got {text!r}") from None
    if not factors or min(factors) <= 0:
        raise argparse.ArgumentTypeError(f"scale factors must be numbers > 0, got {text!r}")
    return factors


def _scale_range(text: str) -> tuple[float, float]:
    """Parse ``--augment-scale MIN,MAX`` (argparse type)."""
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN,MAX (two numbers, e.g. 0.8,1.25), got {text!r}") from None
    if not 0 < low <= high:
        raise argparse.ArgumentTypeError(f"need 0 < MIN <= MAX, got {text!r}")
    return low, high


def _augment_of(recipe: dict[str, Any]) -> Any:
    """The ``Augment`` a recipe's fit section describes (``Augment()`` with augmentation off, for its defaults)."""
    from tutorial_lib.data import Augment, as_augment

    return as_augment(recipe["fit"].get("augment")) or Augment(max_shift=0.0)


def _train_description() -> str:
    """``train --help``'s description, with the table of recipes read from the recipes themselves."""
    from tutorial_lib.recipes import DEFAULT_RECIPE, get_recipe, list_recipes

    labels = {name: f"{name} (default)" if name == DEFAULT_RECIPE else name for name in list_recipes()}
    width = max(len(label) for label in labels.values())
    table = "\n".join(f"  {labels[name]:<{width}}  {get_recipe(name)['description']}" for name in list_recipes())
    return (
        "Train a model from a recipe, test it on every test split of the dataset, and keep the run in "
        "the folder DIR given by --out: DIR/checkpoint.pt, written after every epoch, and DIR/metrics.json, "
        "written at the end (test accuracy and loss per test split, train_seconds, the history, the "
        "resolved settings and the environment).\n\n"
        "recipes (--recipe; a flag below replaces one of the recipe's values):\n"
        f"{table}\n\n"
        "Ctrl-C stops the run; DIR/checkpoint.pt keeps the last finished epoch, and the same command "
        "with --resume continues exactly where it stopped. A folder that already holds a run is never "
        "replaced by accident: add --resume to continue it or --overwrite to replace it.\n\n"
        "Several processes: torchrun --nproc_per_node=N -m tutorial_lib train ... trains with PyTorch's "
        "DistributedDataParallel, one process per GPU (--device cuda, nccl) or N processes on the CPU "
        "(--device cpu, gloo). --batch-size stays the global batch, split evenly over the processes (it must "
        "be a multiple of N), so the steps and the learning rate are those of one process; add --sync-bn for "
        "BatchNorm over the whole global batch too, and the run computes what one process computes. Only the "
        "first process (rank 0) writes DIR and prints; --resume needs the same N."
    ).replace("%", "%%")


def _device_help() -> str:
    from tutorial_lib.env import DEVICE_ENV_VAR, choose_device

    try:
        here = f"; on this machine now: {choose_device()}"
    except ValueError:  # a bad $TUTORIAL_DEVICE: train reports it
        here = ""
    return (f"where to train: cpu, cuda, cuda:N (the GPU numbered N) or mps (default: ${DEVICE_ENV_VAR} if set, "
            f"else the best available, cuda then mps then cpu{here}); under torchrun cuda or cpu, each process "
            "taking the GPU cuda:$LOCAL_RANK")


def _populate_train(train: argparse.ArgumentParser) -> None:
    """Add ``train``'s description and flags (see ``_LazyParser``)."""
    from tutorial_lib.data import DATASETS, DEFAULT_NUM_SAMPLES
    from tutorial_lib.norm import NORM_NAMES
    from tutorial_lib.recipes import DEFAULT_RECIPE, MODEL_ARCHS, list_recipes
    from tutorial_lib.speed import COMPILE_MODES

    train.description = _train_description()
    run = train.add_argument_group("the run")
    run.add_argument("--dataset", required=True, metavar="NAME", help=f"dataset to train and test on: {', '.join(DATASETS)} (required)")
    run.add_argument("--out", required=True, metavar="DIR",
                     help="the run folder, for DIR/checkpoint.pt and DIR/metrics.json; created if missing (required)")
    run.add_argument("--recipe", default=DEFAULT_RECIPE, metavar="NAME",
                     help=f"the recipe to start from: {', '.join(list_recipes())} (default: {DEFAULT_RECIPE})")
    run.add_argument("--resume", action="store_true",
                     help="continue the run in DIR from DIR/checkpoint.pt, exactly where it stopped; give the flags of the "
                     "command that started it. Reads DIR only: continue an interrupted --overwrite run with "
                     f"--out DIR{STAGING_SUFFIX} --resume (default: off)")
    run.add_argument("--overwrite", action="store_true",
                     help=f"replace the run in DIR with a new one. The new run trains in DIR{STAGING_SUFFIX} beside DIR and "
                     "replaces DIR only when it has finished; if it is interrupted or fails, DIR keeps the old run. "
                     f"DIR must hold nothing but a run's files; a leftover DIR{STAGING_SUFFIX} is discarded (default: off)")
    run.add_argument("--download", action="store_true",
                     help="download imagenette or cifar10 into the data folder if it is missing (needs the network; "
                     "multiscale-digits is built offline) (default: off)")

    model = train.add_argument_group("the model")
    model.add_argument("--arch", metavar="NAME",
                       help=f"architecture: {', '.join(MODEL_ARCHS)} {_recipe_default(lambda r: r['model']['arch'])}")
    model.add_argument("--width", type=int, metavar="N",
                       help=f"base channel width of the ResNet {_recipe_default(lambda r: r['model'].get('width', 64))}")
    model.add_argument("--norm", metavar="NAME",
                       help=f"normalization layer: {', '.join(NORM_NAMES)} {_recipe_default(lambda r: r['model'].get('norm', 'batch'))}")
    model.add_argument("--per-scale-bn", action="store_true", default=None,
                       help="private BatchNorm statistics and affine parameters per training size (RS-Nets) "
                       + _recipe_default(lambda r: r["model"].get("per_scale_bn", False)))
    model.add_argument("--scales", type=_factors, metavar="F1,F2,...",
                       help="msresnet101 only: scale factors of the channels, relative to the input size "
                       + _recipe_default(lambda r: r["model"].get("scales"), lambda v: "none (not msresnet101)" if v is None else _show(v)))
    model.add_argument("--scale-pool", metavar="NAME",
                       help="msresnet101 only: pooling of the channels' logits over scales: max or avg "
                       + _recipe_default(lambda r: r["model"].get("scale_pool"), lambda v: "none (not msresnet101)" if v is None else _show(v)))
    model.add_argument("--head", metavar="NAME",
                       help="msresnet101 only: single (the last stage) or multi-level (stages C3-C5 pooled and concatenated) "
                       + _recipe_default(lambda r: r["model"].get("head"), lambda v: "single" if v is None else _show(v)))

    data = train.add_argument_group("the data")
    data.add_argument("--image-size", type=int, metavar="N",
                      help="side of the stored images in pixels; the network sees --train-sizes/--test-sizes "
                      + _recipe_default(lambda r: r["data"].get("image_size", 64)))
    test_counts = sorted({n for split, n in DEFAULT_NUM_SAMPLES.items() if split != "train"})
    all_images = f"{DEFAULT_NUM_SAMPLES['train']} train, {'/'.join(map(str, test_counts))} per test split"
    data.add_argument("--num-samples", type=int, metavar="N",
                      help="images in every split of multiscale-digits (train and each test split), fewer for a quick run "
                      + _recipe_default(lambda r: r["data"].get("num_samples"), lambda v: all_images if v is None else _show(v)))

    fit = train.add_argument_group("training")
    for name, options in _fit_flags():
        fit.add_argument("--" + name.replace("_", "-"), **options)
    fit.add_argument("--augment-scale", type=_scale_range, metavar="MIN,MAX",
                     help="zoom range of the augmentation (random-resized-crop style; 1,1 = no zoom) "
                     + _recipe_default(lambda r: _augment_of(r).scale))
    fit.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                     help="random horizontal flips (a mirrored digit is no digit) " + _recipe_default(lambda r: _augment_of(r).flip))
    fit.add_argument("--seed", type=int, metavar="N",
                     help="random seed of the data, the initial weights and training " + _recipe_default(lambda r: r["seed"]))

    test = train.add_argument_group("testing")
    test.add_argument("--test-sizes", type=_sizes, metavar="S1,S2,...",
                      help="test at these input sizes; several: average the softmax outputs "
                      + _recipe_default(lambda r: r["eval"].get("test_sizes"), lambda v: "the stored size" if v is None else _show(v)))
    test.add_argument("--recalibrate-bn", action=argparse.BooleanOptionalAction, default=None,
                      help="before testing, recompute BatchNorm statistics on training images at each test size "
                      + _recipe_default(lambda r: r["eval"].get("recalibrate_bn", False)))
    test.add_argument("--test-scales", type=_factors, metavar="F1,F2,...",
                      help="msresnet101 only: test with these scale channels (factors of the one test size) around the "
                      "trained network instead of its training channels "
                      + _recipe_default(lambda r: r["eval"].get("scales"), lambda v: "the training channels" if v is None else _show(v)))

    where = train.add_argument_group("where to run")
    where.add_argument("--device", help=_device_help())
    where.add_argument("--no-progress", action="store_true", help="hide the progress bar (default: shown)")
    speed = train.add_argument_group("speed and memory (the same result; a resume may change them)")
    speed.add_argument("--compile", choices=COMPILE_MODES, default="off",
                       help="train through torch.compile: static compiles one graph per training size, dynamic one "
                            "graph for all sizes (default: off)")
    speed.add_argument("--activation-checkpointing", action="store_true",
                       help="recompute each residual stage's activations during backward instead of keeping them: "
                            "less memory, about one more forward pass of time (default: off)")
    speed.add_argument("--workers", type=int, default=0, metavar="N",
                       help="processes that read and decode images of a dataset stored as image files (imagenette); "
                            "default: 0, read in the training process")


# --------------------------------------------------------------------------------------------------
# train: checks, in the command line's words
# --------------------------------------------------------------------------------------------------


def _setting_flags() -> dict[str, str]:
    """``{setting name: flag}``: ``lr`` -> ``--lr``, ``image_size`` -> ``--image-size``."""
    from tutorial_lib.train import FitConfig

    names = [name for name in FitConfig.names() if name != "augment"] + list(_TRAIN_OVERRIDES)
    return {name: "--" + name.replace("_", "-") for name in names}


def _flag_words(error: BaseException | str) -> str:
    """A library message in the command line's words, on one line.

    The library's checks start their messages with the setting's name (``lr must be > 0``), and some
    name other settings in passing (``lower warmup_epochs/warmup_steps``); both become flags.
    """
    text = " ".join(str(error).split())
    flags = _setting_flags()
    lead = re.match(r"(\w+)(?=(\[\d+\])? must )", text)
    if lead and lead[1] in flags:
        text = flags[lead[1]] + text[lead.end():]
    # Only names with an underscore: "epochs" or "lr" inside a sentence are plain words.
    return re.sub(r"\b[a-z]+(?:_[a-z]+)+\b", lambda name: flags.get(name[0], name[0]), text)


def _check_name(flag: str, value: str, valid: Sequence[str]) -> None:
    """Refuse a name that is not one of ``valid``, with the closest one and all of them."""
    from tutorial_lib._validate import check_choice

    try:
        check_choice(flag, value, valid)
    except (ValueError, TypeError) as err:
        raise CLIError(str(err)) from None


def _resolve(args: argparse.Namespace) -> tuple[dict[str, Any], Any]:
    """The recipe with the flags applied, and its checked ``FitConfig``, before anything is loaded.

    Raises:
        CLIError: for an unknown name or a bad value, in terms of the flags.
    """
    import torch

    from tutorial_lib.data import DATASETS
    from tutorial_lib.multiscale import HEAD_NAMES, SCALE_POOL_NAMES
    from tutorial_lib.norm import NORM_NAMES
    from tutorial_lib.recipes import MODEL_ARCHS, build_run, get_recipe, list_recipes, with_overrides
    from tutorial_lib.train import FitConfig

    _check_name("--dataset", args.dataset, DATASETS)
    _check_name("--recipe", args.recipe, list_recipes())
    if args.workers < 0:
        raise CLIError(f"--workers must be 0 or more (0 reads the images in the training process), got {args.workers}")
    if args.compile != "off" and args.activation_checkpointing:
        raise CLIError("--compile and --activation-checkpointing cannot be combined: torch.compile cannot trace the "
                       "recomputation that keeps BatchNorm statistics exact; use one of them")
    names = {"arch": MODEL_ARCHS, "norm": NORM_NAMES, "scale_pool": SCALE_POOL_NAMES, "head": HEAD_NAMES, **_fit_choices()}
    for name, valid in names.items():
        if getattr(args, name) is not None:
            _check_name("--" + name.replace("_", "-"), getattr(args, name), valid)
    if args.num_samples is not None and args.dataset != "multiscale-digits":
        raise CLIError(f"--num-samples applies to --dataset multiscale-digits only; {args.dataset} is used whole")

    overrides = {dotted: getattr(args, flag) for flag, dotted in _TRAIN_OVERRIDES.items()}
    overrides.update({f"fit.{name}": getattr(args, name) for name, _ in _fit_flags()})
    try:
        recipe = with_overrides(get_recipe(args.recipe), overrides)
    except (ValueError, TypeError) as err:
        raise CLIError(_flag_words(err)) from None
    recipe = _with_augment_flags(recipe, args.augment_scale, args.flip)
    # metrics.json keeps the recipe's description: say which flags changed the recipe it describes.
    given = [*_TRAIN_OVERRIDES, *(name for name, _ in _fit_flags()), "augment_scale", "flip"]
    changed = ["--" + name.replace("_", "-") for name in given if getattr(args, name) is not None]
    if changed:
        recipe["description"] = f"{recipe['description']} (changed by {', '.join(changed)})"
    if recipe["fit"].get("progressive") and len(recipe["fit"].get("train_sizes") or ()) < 2:
        raise CLIError("--progressive needs at least two --train-sizes, e.g. --train-sizes 24,32,48")
    try:
        config = FitConfig(**recipe["fit"], seed=recipe["seed"])
        # Check the model flags (--width, --norm, --per-scale-bn, ...) with the builder's own rules
        # before any data is loaded; on the meta device no weights are allocated or initialised.
        with torch.device("meta"):
            build_run(recipe, num_classes=10)
    except (ValueError, TypeError) as err:
        raise CLIError(_flag_words(err)) from None
    return recipe, config


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


def _device(text: str | None) -> Any:
    """The ``torch.device`` for ``--device``, or the automatic choice.

    Raises:
        CLIError: for an unknown device, or one this machine does not have.
    """
    import torch

    from tutorial_lib.env import DEVICE_KINDS, choose_device

    if text is None:
        try:
            return choose_device()
        except ValueError as err:  # a bad $TUTORIAL_DEVICE; the message names the variable
            raise CLIError(_flag_words(err)) from None
    try:
        device = torch.device(text)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in DEVICE_KINDS:
        raise CLIError(f"unknown --device {text!r}; use cpu, cuda, cuda:N (the GPU numbered N) or mps")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise CLIError(f"--device {text}: CUDA is not available on this machine (no NVIDIA GPU, or a PyTorch built "
                           "without CUDA); use --device cpu, or leave --device out to use the best device available")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise CLIError(f"--device {text}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    if device.type == "mps":
        try:
            return choose_device(device)
        except ValueError:
            raise CLIError(f"--device {text}: MPS is not available on this machine; use --device cpu, or leave "
                           "--device out to use the best device available") from None
    return device


def _load(args: argparse.Namespace, split: str, options: dict[str, Any]) -> Any:
    """One split of ``--dataset``; a dataset that is not on disk is reported with the CLI's advice."""
    from tutorial_lib.data import DATA_DIR_ENV, DatasetNotFoundError, load_dataset

    try:
        return load_dataset(args.dataset, split, download=args.download, **options)
    except DatasetNotFoundError as err:
        # The library's message ends with Python advice (download=True, root=); keep what it says
        # is wrong and give the command line's remedies instead.
        what = re.split(r" (?:It is|To download|Delete that folder)", " ".join(str(err).split()))[0]
        if args.download:
            raise CLIError(f"{what} Delete that folder and run the command again with --download") from None
        raise CLIError(f"{what} It is not bundled and is downloaded only when asked: add --download (needs the network), "
                       f"or set {DATA_DIR_ENV} to the folder that holds a copy") from None
    except (ValueError, TypeError) as err:
        raise CLIError(_flag_words(err)) from None


# --------------------------------------------------------------------------------------------------
# train: the run folder
# --------------------------------------------------------------------------------------------------


def _listing(names: Sequence[str], limit: int = 3) -> str:
    return ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")


def _check_out(out: Path, *, resume: bool, overwrite: bool) -> Path | None:
    """Check ``--out`` before anything is trained; return the staging folder when a run is replaced.

    A new folder, an empty one, or one without a run's files is trained in directly. A folder holding
    a run needs ``--resume`` (continue it there) or ``--overwrite`` (train in a staging folder,
    returned, and swap it in at the end). Nothing is created or changed here.

    Raises:
        CLIError: for a file in the way, a folder that cannot be written, a run to protect, or a
            missing checkpoint to resume.
    """
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} is a file, not a folder; give a folder for the run (it is created if missing)")
    absolute = Path(os.path.abspath(out))
    existing = next(path for path in (absolute, *absolute.parents) if path.exists())
    if not existing.is_dir():
        raise CLIError(f"cannot create --out {out}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == absolute else f" ({existing} is not writable)"
        raise CLIError(f"cannot write to --out {out}: permission denied{where}")
    from tutorial_lib.train import CHECKPOINT_NAME

    run_files = [name for name in _RUN_FILES if (out / name).exists()] if out.is_dir() else []
    if resume:
        if (out / CHECKPOINT_NAME).is_file():
            return None
        if run_files:
            raise CLIError(f"no checkpoint in {out} to resume (it holds only {', '.join(run_files)}); "
                           "use --overwrite instead of --resume to train the run again")
        raise CLIError(f"no checkpoint in {out} to resume; run the same command without --resume to start")
    if not run_files:
        return None
    if not overwrite:
        raise CLIError(f"{out} already holds a run ({', '.join(run_files)}); add --resume to continue that run, "
                       "or --overwrite to replace it (or choose another --out)")
    return _staging_for(out)


def _staging_for(out: Path) -> Path:
    """The staging folder for replacing the run in ``out``, after checking the swap can be done safely."""
    folder = Path(os.path.normpath(out))
    if Path.cwd().resolve().is_relative_to(folder.resolve()):
        raise CLIError(f"--overwrite cannot replace {out}: it is the current folder or holds it; give the run folder by a path "
                       "from outside it")
    if folder.is_symlink():
        raise CLIError(f"--overwrite cannot replace {out}: it is a symbolic link; give the folder it points to")
    others = sorted(path.name for path in folder.iterdir() if path.name not in _REPLACEABLE)
    if others:
        raise CLIError(f"--overwrite replaces the whole folder {out}, which holds other files than a run's ({_listing(others)}); "
                       "move them elsewhere, or choose another --out")
    staging = folder.with_name(folder.name + STAGING_SUFFIX)
    if staging.exists() and (not staging.is_dir() or any(p.name not in _REPLACEABLE for p in staging.iterdir())):
        raise CLIError(f"--overwrite trains the new run in {staging}, which exists and holds other files than a run's; "
                       "move or delete it")
    if not os.access(folder.parent.resolve(), os.W_OK | os.X_OK):
        raise CLIError(f"--overwrite trains the new run in {staging} beside {out}, but {folder.parent.resolve()} is not writable")
    return staging


def _start_folder(out: Path, staging: Path | None) -> Path:
    """Create the folder the run is written to (``out``, or the staging folder) and check it is writable."""
    if staging is not None and staging.exists():
        # Left by an interrupted --overwrite; this command replaces the run again, from the start.
        print(f"note: discarding the unfinished run in {staging} left by an earlier --overwrite", file=sys.stderr)
        shutil.rmtree(staging)
    run_dir = out if staging is None else staging
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=run_dir):
            pass
    except OSError as err:
        raise CLIError(f"cannot write to --out {out}: {err.strerror or err}") from None
    return run_dir


def _free_name(folder: Path, suffix: str) -> Path:
    """``folder`` + ``suffix`` (then ``-1``, ``-2``, ...): a sibling name nothing uses yet."""
    candidate, number = folder.with_name(folder.name + suffix), 0
    while candidate.exists():
        number += 1
        candidate = folder.with_name(f"{folder.name}{suffix}-{number}")
    return candidate


def _replace_run(staging: Path, out: Path) -> None:
    """Put the finished run in ``staging`` where ``out`` is; the old run is deleted only afterwards.

    Two renames within one parent folder (atomic on one filesystem): ``out`` -> a side name, then
    ``staging`` -> ``out``. A folder cannot be renamed onto a non-empty one, hence the side name.
    """
    folder = Path(os.path.normpath(out))
    old = _free_name(folder, ".replaced")
    try:
        os.rename(folder, old)
    except OSError as err:
        raise CLIError(f"could not replace {out} ({err.strerror or err}); it still holds the old run, and the finished new run "
                       f"is in {staging}") from None
    try:
        os.rename(staging, folder)
    except OSError as err:
        os.rename(old, folder)  # put the old run back
        raise CLIError(f"could not replace {out} ({err.strerror or err}); it still holds the old run, and the finished new run "
                       f"is in {staging}") from None
    shutil.rmtree(old, ignore_errors=True)
    if old.exists():
        print(f"note: the old run could not be deleted completely; delete {old}", file=sys.stderr)


def _unfinished(out: Path, staging: Path | None, epochs: int) -> str:
    """What the user should know about an unfinished run: where it is and how to go on."""
    if staging is None:
        if epochs == 0:
            return f"nothing was saved in {out} yet; run the same command to start again"
        return f"{out / 'checkpoint.pt'} keeps epoch {epochs}; run the same command with --resume to continue"
    if epochs == 0 and not (staging / "checkpoint.pt").exists():
        shutil.rmtree(staging, ignore_errors=True)  # nothing of the new run to keep
        return f"{out} still holds the old run, unchanged; nothing of the new run was kept"
    return (f"{out} still holds the old run, unchanged; the new run is kept in {staging} (its checkpoint keeps epoch {epochs}). "
            f"To continue it, run the same command with --out {staging} --resume instead of --out {out} --overwrite "
            f"(the run then stays in {staging}); to discard it, delete {staging} or run the --overwrite command again")


def _run_record(config: Any, train_size: int, device: Any, world_size: int) -> dict[str, Any]:
    """What ``fit`` will store in the checkpoint about this run, and resume compares.

    Computing it checks what ``fit`` checks once it knows the data, the device and the number of
    processes (a warm-up longer than training, a --batch-size the processes cannot share), so that
    error comes before a run folder is created.
    """
    from tutorial_lib.train import run_record

    try:
        return run_record(config, train_size, device, world_size)
    except ValueError as err:
        message = _flag_words(err)
        if world_size > 1:
            message = message.replace("world size", "world size (torchrun --nproc_per_node)", 1)
        raise CLIError(message) from None


def _check_resume(out: Path, now: dict[str, Any]) -> None:
    """Refuse to resume with other settings than the checkpoint's, naming the flags that differ.

    ``fit`` refuses too, in Python's terms; this compares the same record first (``_run_record``).
    """
    import pickle

    import torch

    from tutorial_lib.train import CHECKPOINT_NAME, checkpoint_record

    path = out / CHECKPOINT_NAME
    try:
        # mmap: only the settings are read here, not the weights.
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as err:
        raise CLIError(f"cannot read {path} ({type(err).__name__}): it is damaged or not a checkpoint; use --overwrite "
                       "instead of --resume to train the run again") from None
    if not isinstance(state, dict) or state.get("format") != 2 or not isinstance(state.get("config"), dict):
        raise CLIError(f"{path} was written by an older version of tutorial_lib and cannot be resumed; use --overwrite "
                       "instead of --resume to train the run again")
    saved = checkpoint_record(state)
    differ = [key for key in now if saved.get(key) != now[key]]
    # The warm-up in steps follows from --epochs and --num-samples: named only when nothing else differs.
    differ = [key for key in differ if key != "warmup_steps"] or differ
    if differ:
        labels = {**_setting_flags(), "train_size": "--num-samples (training images)", "augment": "--augment-scale/--flip",
                  "precision": "--precision (as resolved on the device)", "warmup_steps": "the warm-up steps",
                  "world_size": "processes (torchrun --nproc_per_node)"}
        shown = "; ".join(f"{labels.get(key, key)}: {_show(saved.get(key))} in the checkpoint, {_show(now[key])} now" for key in differ)
        raise CLIError(f"cannot resume exactly: the run in {out} was started with other settings ({shown}); give the flags "
                       "of the command that started it, or use --overwrite instead of --resume to replace the run")


# --------------------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------------------


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


def _fit_failure(err: BaseException, config: Any, out: Path, staging: Path | None, run_dir: Path) -> str:
    """The one-line message for an exception that stopped training, with where the run stands."""
    if isinstance(err, FloatingPointError):
        # The library's advice names Python arguments; keep its diagnosis (where the loss blew up).
        head = " ".join(str(err).split()).split(". Try:")[0]
        message = f"{head}; try a lower --lr (now {config.lr:g}) or --grad-clip 1.0"
    elif isinstance(err, OSError):
        message = f"cannot write the run to {run_dir}: {err.strerror or err}"
    elif "holds another model's weights" in str(err):
        # The checkpoint records fit's settings; the model's come from the flags, so name those.
        return (f"cannot resume: the run in {out} was started with another model; give the model flags of the command "
                "that started it (--arch, --width, --norm, --per-scale-bn), or use --overwrite instead of --resume to "
                "replace the run")
    else:
        message = _flag_words(err)
    if staging is None:
        if (run_dir / "checkpoint.pt").exists():
            # The folder now holds a run: a new command needs a flag, and --resume would repeat the failure.
            return f"{message} (to train again with other flags, add --overwrite)"
        return message
    if (staging / "checkpoint.pt").exists():
        return (f"{message} ({out} still holds the old run, unchanged; the unfinished new run is in {staging}: delete it, "
                "or run the --overwrite command again)")
    shutil.rmtree(staging, ignore_errors=True)
    return f"{message} ({out} still holds the old run, unchanged)"


def _torchrun_position() -> tuple[int, int, int]:
    """``(rank, local_rank, world_size)`` from the variables torchrun sets; ``(0, 0, 1)`` without them.

    Raises:
        CLIError: for a ``$WORLD_SIZE`` above 1 without the other variables, or values that are not numbers.
    """
    names = ("WORLD_SIZE", "RANK", "LOCAL_RANK")
    try:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return 0, 0, 1
        missing = [f"${name}" for name in (*names, "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
        if missing:
            raise CLIError(f"$WORLD_SIZE is {world_size} but {', '.join(missing)} not set; start the processes with "
                           "torchrun --nproc_per_node=N -m tutorial_lib train ..., which sets them all")
        return int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), world_size
    except ValueError:
        shown = ", ".join(f"${name}={os.environ.get(name)!r}" for name in names if name in os.environ)
        raise CLIError(f"the torchrun variables must be integers, got {shown}") from None


def _distributed_device(text: str | None, local_rank: int) -> Any:
    """The device of this process under torchrun: ``cuda:$LOCAL_RANK``, or the CPU.

    Raises:
        CLIError: for MPS, a GPU named by number (every process would take it), or more processes
            on this machine than it has GPUs.
    """
    import torch

    device = _device(text)
    if device.type == "mps":
        raise CLIError("distributed training (torchrun) runs on CUDA GPUs or the CPU, not on MPS; use --device cpu")
    if device.type != "cuda":
        return device
    if device.index is not None:
        raise CLIError(f"--device {device} under torchrun would put every process on that one GPU; give --device cuda "
                       "(or leave it out): each process then takes the GPU numbered by its $LOCAL_RANK")
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise CLIError(f"torchrun started more processes on this machine than it has GPUs ({count}); use "
                       f"--nproc_per_node={count} or fewer, or --device cpu")
    return torch.device("cuda", local_rank)


@contextlib.contextmanager
def _process_group(device: Any, rank: int, world_size: int) -> Iterator[None]:
    """Initialize ``torch.distributed`` for this process around a run, and destroy it afterwards.

    One process (``world_size`` 1): nothing. Several: nccl for CUDA (PyTorch's backend for GPUs),
    gloo for the CPU; the rendezvous address comes from torchrun's ``$MASTER_ADDR``/``$MASTER_PORT``.

    Raises:
        CLIError: if the backend is missing from this PyTorch build, or the processes cannot meet.
    """
    if world_size == 1:
        yield
        return
    import torch
    import torch.distributed as dist

    if not dist.is_available():
        raise CLIError("this PyTorch build has no torch.distributed; train with one process (without torchrun)")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl" and not dist.is_nccl_available():
        raise CLIError("this PyTorch build has no nccl backend for CUDA GPUs; use --device cpu (gloo), or a PyTorch "
                       "build with CUDA for Linux")
    if backend == "gloo" and not dist.is_gloo_available():
        raise CLIError("this PyTorch build has no gloo backend for training on the CPU")
    if backend == "nccl":
        torch.cuda.set_device(device)
    try:
        dist.init_process_group(backend, rank=rank, world_size=world_size, device_id=device if backend == "nccl" else None)
    except (RuntimeError, ValueError) as err:
        raise CLIError(f"the {world_size} processes could not start their {backend} process group: "
                       f"{' '.join(str(err).split())}") from None
    try:
        yield
    finally:
        dist.destroy_process_group()


def _cmd_train(args: argparse.Namespace) -> int:
    """Resolve the recipe with the flags, then train (under torchrun: in a process group), test and report.

    Every check that needs no data runs first, so a mistyped flag costs no waiting.
    """
    if args.resume and args.overwrite:
        raise CLIError("--resume and --overwrite exclude each other: --resume continues the run in DIR, --overwrite replaces it")
    recipe, config = _resolve(args)
    rank, local_rank, world_size = _torchrun_position()
    device = _device(args.device) if world_size == 1 else _distributed_device(args.device, local_rank)
    with _process_group(device, rank, world_size):
        return _train(args, recipe, config, device, rank, world_size)


def _train(args: argparse.Namespace, recipe: dict[str, Any], config: Any, device: Any, rank: int, world_size: int) -> int:
    """Train, evaluate every test split, write metrics.json; ``rank`` 0 alone handles the run folder.

    The other processes of a distributed run load the data and train (``fit`` shares the work),
    then return: rank 0 tests the model and reports.
    """
    from tutorial_lib.env import environment_report, seed_everything
    from tutorial_lib.recipes import build_run, recalibrated
    from tutorial_lib.train import evaluate, fit

    out = Path(args.out)
    lead = rank == 0
    staging = _check_out(out, resume=args.resume, overwrite=args.overwrite) if lead else None

    try:
        seed = seed_everything(recipe["seed"])
    except (ValueError, TypeError) as err:
        raise CLIError(_flag_words(err)) from None
    data_options = dict(recipe["data"], seed=seed)
    train_data = _load(args, "train", data_options)
    if len(train_data) < config.batch_size:
        raise CLIError(f"--batch-size {config.batch_size} is more than the {len(train_data)} training images; "
                       "lower --batch-size or raise --num-samples")
    try:
        model, evaluated = build_run(recipe, len(train_data.classes))
    except (ValueError, TypeError) as err:
        raise CLIError(_flag_words(err)) from None
    # Loaded before training, so a missing test split is reported before the wait, not after it.
    test_data = {split: _load(args, split, data_options) for split in _test_splits(args.dataset)}
    record = _run_record(config, len(train_data), device, world_size)
    if args.resume and lead:
        _check_resume(out, record)

    created = lead and not out.exists()
    run_dir = _start_folder(out, staging) if lead else out
    epochs = 0
    try:
        try:
            history = fit(model, train_data, config, out_dir=run_dir, resume=args.resume, device=device,
                          progress=not args.no_progress, compile=args.compile,
                          activation_checkpointing=args.activation_checkpointing, workers=args.workers)
        except (ValueError, TypeError, FloatingPointError, OSError) as err:
            if created and staging is None and not any(out.iterdir()):
                out.rmdir()  # a failed command leaves no empty folder behind
            raise CLIError(_fit_failure(err, config, out, staging, run_dir)) from None
        epochs = len(history)
        if not lead:
            return 130 if history.interrupted else 0
        if history.interrupted:
            print(f"interrupted: {_unfinished(out, staging, epochs)}", file=sys.stderr)
            return 130

        start = time.perf_counter()
        evaluated = recalibrated(recipe, model, evaluated, train_data)
        test = {}
        for split, data in test_data.items():
            by = "size" if getattr(data, "object_sizes", None) is not None else None
            test[split] = evaluate(evaluated, data, by=by)
    except KeyboardInterrupt:  # during evaluation: fit handles its own
        print(f"interrupted while testing: {_unfinished(out, staging, epochs)}", file=sys.stderr)
        return 130
    metrics = {
        "dataset": args.dataset,
        "recipe": args.recipe,
        "test": test,
        "train_seconds": history.train_seconds,
        "eval_seconds": time.perf_counter() - start,
        "history": history.to_dict(),
        "config": {"dataset": args.dataset, "recipe": args.recipe, **recipe, "device": str(next(model.parameters()).device),
                   "world_size": world_size},
        "environment": environment_report(),
        "command": ["python", "-m", "tutorial_lib", *(args.argv or [])],
    }
    _write_json(run_dir / "metrics.json", metrics)
    if staging is not None:
        _replace_run(staging, out)
    for split, result in test.items():
        print(f"{split:>10}: accuracy {result['accuracy']:.4f}  loss {result['loss']:.4f}  ({result['count']} images)")
    print(f"train_seconds: {history.train_seconds:.1f}  -> {out / 'metrics.json'}")
    return 0


# --------------------------------------------------------------------------------------------------
# The parser and the entry point
# --------------------------------------------------------------------------------------------------


def build_parser(prog: str = "python -m tutorial_lib") -> argparse.ArgumentParser:
    """Build the parser with one subparser per command.

    Args:
        prog: how the help names the program (``tutorial-lib`` when run as the installed command).
    """
    parser = _Parser(prog=prog, description=_DESCRIPTION, epilog=_EPILOG, formatter_class=_Formatter)
    sub = parser.add_subparsers(title="commands", dest="command", required=True, metavar="COMMAND",
                                parser_class=_LazyParser)

    env = sub.add_parser("env", formatter_class=_Formatter,
                         help="print the environment report: versions, device, threads, and whether the built-in dataset "
                         "can be made offline (exit status 1 if not)",
                         description="Print what a result depends on: the Python and library versions, the device, "
                         "the thread count, and whether the built-in multiscale-digits dataset can be made offline. "
                         "Exit status 0, or 1 when the dataset cannot be made (a broken install).")
    env.add_argument("--json", action="store_true", help="print JSON instead of aligned text")
    env.set_defaults(func=_cmd_env)

    # The generated usage lists all ~30 flags (20 lines); the groups below show them with their help.
    train = sub.add_parser("train", formatter_class=_Formatter, epilog=_TRAIN_EPILOG, populate=_populate_train,
                           usage="%(prog)s --dataset NAME --out DIR [flags ...]",
                           help="train a model from a recipe, test it, and write DIR/checkpoint.pt and DIR/metrics.json")
    train.set_defaults(func=_cmd_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 done, 1 env's data check failed, 2 error, 130 interrupted).

    Usage errors (a missing or malformed flag) and ``--help`` exit from argparse with ``SystemExit``
    (status 2 and 0), which a console script passes on as the exit status.

    Args:
        argv: the arguments after the program name; ``None`` reads ``sys.argv``.
    """
    installed = argv is None and Path(sys.argv[0]).name == "tutorial-lib"
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser("tutorial-lib" if installed else "python -m tutorial_lib").parse_args(argv)
    args.argv = argv
    try:
        return args.func(args)
    except CLIError as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # outside training (loading data, say): nothing to keep
        print("interrupted", file=sys.stderr)
        return 130
