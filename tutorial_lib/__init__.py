"""Multi-scale ResNet-101, step by step: the package behind the notebooks.

The main entry points are importable from the package itself::

    import tutorial_lib as tl

    recipe = tl.get_recipe("cpu-baseline")                  # what `python -m tutorial_lib train` runs
    train = tl.load_dataset("multiscale-digits", "train", **recipe["data"])
    model, evaluated = tl.build_run(recipe, num_classes=len(train.classes))
    history = tl.fit(model, train, **recipe["fit"], seed=recipe["seed"])
    print(tl.evaluate(evaluated, tl.load_dataset("multiscale-digits", "test", **recipe["data"])))

Everything else lives in one module per concept (``help(tutorial_lib.<module>)`` for each):

=============  ==================================================================================
module         what it holds
=============  ==================================================================================
``env``        versions, device choice, threads and seeds (``environment_report``, ``seed_everything``)
``data``       the embedded ``multiscale-digits`` dataset, real-dataset loaders, batching, ``Augment``
``layers``     convolution helpers, output sizes, theoretical and measured receptive fields
``cost``       parameters and multiply-adds (FLOPs) of a network
``blocks``     ``BasicBlock``, ``Bottleneck`` and Res2Net's multi-scale bottleneck
``models``     ``ResNet`` with torchvision's state_dict layout, the named builders, ``load_weights``
``norm``       BatchNorm from scratch, GroupNorm/LayerNorm/none, BN recalibration
``multiscale`` resolution schedules, per-scale BatchNorm, multi-scale testing, feature pyramids
``train``      ``FitConfig``, ``fit``, ``evaluate``, the run ``History`` and exact checkpoints
``speed``      ``fit``'s speed and memory options: ``torch.compile``, activation checkpointing
``tuning``     the learning-rate range test, schedule curves, a small Optuna search, seed statistics
``recipes``    named training recipes (``cpu-baseline`` ... ``gpu-imagenette-resnet101``)
``viz``        the notebooks' plots
``checks``     self-checks for the notebooks' exercises, and ``prove_equal``
``cli``        ``python -m tutorial_lib env`` and ``python -m tutorial_lib train``
=============  ==================================================================================

Importing the package is cheap: a module (and PyTorch) is imported the first time one of its names
is used (PEP 562 module ``__getattr__``), so ``python -m tutorial_lib --help`` answers at once.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: The modules listed above, importable as attributes (``tutorial_lib.train``).
MODULES = ("env", "data", "layers", "cost", "blocks", "models", "norm", "multiscale", "train", "speed", "tuning", "recipes",
           "viz", "checks", "cli")

# The entry points a learner reaches for first, and the module that defines each: one table, so the
# package's namespace cannot drift from the modules' (tests/test_packaging.py checks both ways).
_EXPORTS = {
    "seed_everything": "env",
    "choose_device": "env",
    "environment_report": "env",
    "load_dataset": "data",
    "Augment": "data",
    "count_parameters": "cost",
    "count_flops": "cost",
    "BasicBlock": "blocks",
    "Bottleneck": "blocks",
    "ResNet": "models",
    "create_model": "models",
    "load_weights": "models",
    "resnet18": "models",
    "resnet34": "models",
    "resnet50": "models",
    "resnet101": "models",
    "resnet152": "models",
    "res2net50_26w_4s": "models",
    "res2net101_26w_4s": "models",
    "msresnet101": "multiscale",
    "get_norm_layer": "norm",
    "FitConfig": "train",
    "fit": "train",
    "evaluate": "train",
    "load_checkpoint": "train",
    "lr_range_test": "tuning",
    "search": "tuning",
    "get_recipe": "recipes",
    "list_recipes": "recipes",
    "build_run": "recipes",
}

__all__ = ["__version__", *MODULES, *_EXPORTS]


def __getattr__(name: str) -> object:
    """Import a module or an entry point the first time it is used."""
    if name in MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}; see help(tutorial_lib) for what it holds")


def __dir__() -> list[str]:
    return sorted(__all__)
