"""Named training recipes: plain dicts of data, model and ``fit`` settings.

A recipe is the whole description of a run, so a notebook, the CLI and a benchmark that name the
same recipe train the same network the same way. Each recipe has four parts::

    {
        "description": "...",          # one line: what it is for
        "data": {...},                 # keyword options of tutorial_lib.data.load_dataset
        "model": {"arch": ..., ...},   # a tutorial_lib.models architecture and its options
        "fit": {...},                  # tutorial_lib.train.FitConfig settings (all but seed)
        "eval": {...},                 # how the CLI evaluates: test sizes, flips, BN recalibration
        "seed": 0,                     # seeds the data, the model's initial weights and fit
    }

``get_recipe`` returns a deep copy (editing it cannot change the registry) and ``with_overrides``
applies ``"section.key"`` overrides, which is what the CLI's flags do. ``register_recipe`` adds a
recipe (a notebook's experiment, say) under a new name. ``build_run`` turns a recipe into the model
it trains and the wrapper it is evaluated through.

How each recipe was chosen, with every measurement behind it, is recorded next to the measurements
in ``benchmarks/results/README.md``; the comments here say what each recipe is and why.
"""

from __future__ import annotations

import copy
from typing import Any

from tutorial_lib.models import ARCH_NAMES
from tutorial_lib.train import FitConfig

__all__ = ["DEFAULT_RECIPE", "MODEL_ARCHS", "SECTIONS", "build_run", "get_recipe", "inference_macs", "list_recipes", "recalibrated", "register_recipe",
           "validate_recipe", "with_overrides"]

#: Sections of a recipe, and which keys each may hold (``fit``'s come from ``FitConfig``).
SECTIONS = ("data", "model", "fit", "eval")
_MODEL_KEYS = ("arch", "width", "stem", "norm", "zero_init_residual", "stride_in", "pool", "per_scale_bn",
               "scales", "scale_pool", "head")
# The model settings only the multi-scale ResNet-101 (tutorial_lib.multiscale.msresnet101) has.
_SCALE_CHANNEL_KEYS = ("scales", "scale_pool", "head")
#: What ``model.arch`` may name: a plain ResNet of tutorial_lib.models (ARCH_NAMES), or
#: ``"msresnet101"``, the series' multi-scale ResNet-101 (scale channels around a ResNet-101,
#: tutorial_lib.multiscale.msresnet101), whose extra settings are ``scales``, ``scale_pool`` and ``head``.
MODEL_ARCHS = (*ARCH_NAMES, "msresnet101")
# How the CLI evaluates: at which input sizes (one size: plain evaluation at it; several: the
# average of softmax outputs, tutorial_lib.multiscale.MultiScaleTTA), with flips or not, and
# whether BatchNorm statistics are first recomputed at each test size (multiscale.recalibrated_tta);
# for msresnet101, the scale factors of the channels at test time when they differ from training's
# (the channels share one network, so channels can be added after training: notebook 09).
_EVAL_KEYS = ("test_sizes", "flip", "recalibrate_bn", "scales")
_DATA_KEYS = ("image_size", "num_samples", "object_size")
# A recipe's fit section holds FitConfig's settings except seed: the recipe's top-level seed seeds
# the data and the model's initial weights as well, and is passed to fit as its seed.
_FIT_KEYS = tuple(name for name in FitConfig.names() if name != "seed")

# The CPU baseline: the single-scale reference every other recipe is compared with. ResNet-18 at
# width 16 with the "small" stem (one 3x3 convolution, no pooling: the CIFAR networks of He et al.
# 2016, sec 4.2), because the digits are small and the budget is about 90 s on two cores. Images are
# stored at 64 px and trained and tested at 32 px: the 8x8 source digits show all their detail at
# 10-17 px, and 64 px keeps the small test digits sharp for the multi-scale recipes. AdamW with a
# one-cycle schedule (Smith & Topin 2019) reaches high accuracy in few epochs; label smoothing 0.1
# (Szegedy et al. 2016, sec 7); shifts only (a mirrored digit is no digit, and scale augmentation is
# notebook 07's subject). bfloat16 where the hardware runs it natively. The measurements that chose
# each value: benchmarks/results/README.md.
_CPU_BASELINE: dict[str, Any] = {
    "description": "single-scale CPU baseline: ResNet-18, width 16, small stem, 32 px, AdamW one-cycle",
    "data": {"image_size": 64},
    "model": {"arch": "resnet18", "width": 16, "stem": "small", "norm": "batch"},
    "fit": {
        "epochs": 4,
        "batch_size": 64,
        "optimizer": "adamw",
        "lr": 4e-3,
        "weight_decay": 5e-4,
        "schedule": "onecycle",
        "label_smoothing": 0.1,
        "augment": {"max_shift": 0.1},
        "train_sizes": [32],
        "channels_last": True,
        "precision": "auto",
    },
    "eval": {"test_sizes": [32]},
    "seed": 0,
}

# The multi-scale CPU recipe (notebook 07): the baseline's network, images and batch, trained at one
# resolution per step drawn from 24/32/48 px (objects of 7-26 px instead of 10-17), for 3 epochs
# instead of 4 so the compute stays about the baseline's (a step costs 1.27 times a 32-px one), and
# tested with the softmax average over 24-64 px, BatchNorm statistics recomputed per test size
# (FixRes, Touvron et al. 2019, on why statistics move with resolution). Measurements and the
# variants not taken: benchmarks/results/README.md.
_CPU_MULTISCALE: dict[str, Any] = copy.deepcopy(_CPU_BASELINE)
_CPU_MULTISCALE["description"] = ("multi-scale CPU recipe: cpu-baseline trained at 24/32/48 px (one drawn per step) "
                                  "for 3 epochs, tested with the softmax average over 24/32/48/64 px, BatchNorm recalibrated per size")
_CPU_MULTISCALE["fit"].update(train_sizes=[24, 32, 48], epochs=3)
_CPU_MULTISCALE["eval"] = {"test_sizes": [24, 32, 48, 64], "recalibrate_bn": True}

# The tuned CPU recipe (notebook 08): the baseline with only training settings changed (same
# network, images, batch and steps, so the same time): peak learning rate 8e-3 and label smoothing
# 0.2, each chosen on a validation split held out by source digit (data.validation_split), never on
# the test split. Measurements, the variants not taken, and why 98% is out of reach:
# benchmarks/results/README.md.
_CPU_TUNED: dict[str, Any] = copy.deepcopy(_CPU_BASELINE)
_CPU_TUNED["description"] = "tuned CPU recipe: cpu-baseline with peak lr 8e-3 and label smoothing 0.2 (same steps)"
_CPU_TUNED["fit"].update(lr=8e-3, label_smoothing=0.2)

# The series' final model on the CPU (notebook 09): a ResNet-101 ([3, 4, 23, 3] bottlenecks) at
# width 4 (its last stage is 128 channels wide, like cpu-baseline's ResNet-18 at width 16; on the
# 2-core machine a step costs 1.4 times cpu-baseline's, against 2.2 times at width 8), zero-initialised
# residual branches (Goyal et al. 2017, section 5.1: without them this depth stayed at chance for the
# first two epochs), GeM pooling (Radenovic et al. 2019; issue 14's diagnosis: it reads small digits
# better than average pooling), and scale channels (Jansson & Lindeberg 2022): the same network on the
# image at 1/2 and 1x of the training size, trained end to end through the maximum of the channels'
# logits, at cpu-multiscale's training sizes 24/32/48 px drawn per step (so the channels see digits of
# 4-26 px; trained at 32 px alone, the 16-px channel never saw a digit filling its image). Tested
# on the 64-px stored image with channels at 1/4, 1/2 and 1x (16, 32 and 64 px: a large, a training-
# size and a small digit each reach the training digits' pixel size in one of them), each channel with
# BatchNorm statistics of its own side (multiscale.recalibrated_channels). Measurements and the
# variants not taken: benchmarks/results/README.md.
_CPU_MSRESNET101: dict[str, Any] = copy.deepcopy(_CPU_BASELINE)
_CPU_MSRESNET101["description"] = ("multi-scale ResNet-101 on the CPU: width 4, GeM, scale channels at 1/2 and 1x of 24/32/48 px "
                                   "trained end to end (max over scales), tested with channels at 16/32/64 px, BatchNorm "
                                   "recalibrated per channel")
_CPU_MSRESNET101["model"] = {"arch": "msresnet101", "width": 4, "stem": "small", "norm": "batch", "zero_init_residual": True,
                             "pool": "gem", "scales": [0.5, 1.0], "scale_pool": "max"}
_CPU_MSRESNET101["fit"].update(train_sizes=[24, 32, 48])
_CPU_MSRESNET101["eval"] = {"test_sizes": [64], "scales": [0.25, 0.5, 1.0], "recalibrate_bn": True}

# Real images on a GPU (notebook 10, README "On a GPU"): torchvision's full-width ResNet-101 (width 64,
# the ImageNet stem) on Imagenette (fast.ai's 10 easy ImageNet classes; its 160-px release), images
# resized and centre-cropped to 160 px, trained at 128 px for 5 epochs: the fast.ai Imagenette
# leaderboard's 128-px, 5-epoch track, whose best entry is 87.4% (xse_resnext50; github.com/fastai/
# imagenette). That entry is a tuned xResNet (Mish, self-attention, BlurPool); this is a plain
# ResNet-101 from scratch with the series' CPU recipe settings, so expect less. Batch 128 with the
# baseline's learning rate scaled by the square-root rule for Adam-type optimizers (Malladi et al.
# 2022, "On the SDEs and Scaling Rules for Adaptive Gradient Algorithms": 4e-3 x sqrt(128/64) = 5.7e-3,
# rounded to 6e-3; a first value to try, not a tuned one), zero-initialised residual
# branches (Goyal et al. 2017, sec 5.1), random zooms (the scale range of a random-resized crop,
# 0.35-1 of the area, as a zoom of 1-1.7), shifts and horizontal flips (a mirrored church is a
# church). bfloat16 where the GPU runs it (Ampere and later), channels-last for tensor cores. Not
# measured here: the series' machine has no GPU; the code path is tested on the CPU with a small
# folder of JPEGs (tests/test_imagenette.py).
_GPU_IMAGENETTE: dict[str, Any] = {
    "description": "ResNet-101 (full width) on Imagenette at 128 px for 5 epochs: a GPU run (fast.ai leaderboard track)",
    "data": {"image_size": 160},
    "model": {"arch": "resnet101", "width": 64, "stem": "imagenet", "norm": "batch", "zero_init_residual": True},
    "fit": {
        "epochs": 5,
        "batch_size": 128,
        "optimizer": "adamw",
        "lr": 6e-3,
        "weight_decay": 5e-2,
        "schedule": "onecycle",
        "label_smoothing": 0.1,
        "augment": {"max_shift": 0.1, "scale": [1.0, 1.7], "flip": True},
        "train_sizes": [128],
        "channels_last": True,
        "precision": "auto",
    },
    "eval": {"test_sizes": [128]},
    "seed": 0,
}

_RECIPES: dict[str, dict[str, Any]] = {
    "cpu-baseline": _CPU_BASELINE,
    "cpu-multiscale": _CPU_MULTISCALE,
    "cpu-tuned": _CPU_TUNED,
    "cpu-msresnet101": _CPU_MSRESNET101,
    "gpu-imagenette-resnet101": _GPU_IMAGENETTE,
}

#: The recipe the CLI and the notebooks start from.
DEFAULT_RECIPE = "cpu-baseline"


def list_recipes() -> list[str]:
    """Names of the registered recipes, in registration order."""
    return list(_RECIPES)


def get_recipe(name: str = DEFAULT_RECIPE) -> dict[str, Any]:
    """A deep copy of the recipe called ``name``.

    Raises:
        ValueError: if ``name`` is unknown; the message lists the valid names.
    """
    if not isinstance(name, str) or name not in _RECIPES:
        raise ValueError(f"unknown recipe {name!r}; valid recipes: {', '.join(_RECIPES)}")
    return copy.deepcopy(_RECIPES[name])


def _valid_keys(section: str) -> tuple[str, ...]:
    if section == "model":
        return _MODEL_KEYS
    if section == "data":
        return _DATA_KEYS
    if section == "eval":
        return _EVAL_KEYS
    return _FIT_KEYS


def validate_recipe(recipe: dict[str, Any]) -> dict[str, Any]:
    """Check a recipe's structure and key names; return it unchanged.

    Values are checked where they are used (``load_dataset``, the model builder, ``fit``), which
    give the precise messages.

    Raises:
        TypeError: if the recipe or a section is not a dict.
        ValueError: for a missing ``model.arch`` or ``fit.epochs``, or an unknown key (listing valid ones).
    """
    if not isinstance(recipe, dict):
        raise TypeError(f"a recipe must be a dict, got {type(recipe).__name__}")
    unknown_top = sorted(set(recipe) - {"description", "seed", *SECTIONS})
    if unknown_top:
        raise ValueError(f"unknown recipe key(s) {unknown_top}; valid keys: description, seed, {', '.join(SECTIONS)}")
    for section in SECTIONS:
        values = recipe.get(section, {})
        if not isinstance(values, dict):
            raise TypeError(f"recipe section {section!r} must be a dict, got {type(values).__name__}")
        valid = _valid_keys(section)
        unknown = sorted(set(values) - set(valid))
        if unknown:
            raise ValueError(f"unknown {section} setting(s) {unknown}; valid {section} settings: {', '.join(valid)}")
    if "arch" not in recipe.get("model", {}):
        raise ValueError("a recipe needs model.arch, e.g. 'resnet18'")
    if "epochs" not in recipe.get("fit", {}):
        raise ValueError("a recipe needs fit.epochs")
    return recipe


def register_recipe(name: str, recipe: dict[str, Any], *, overwrite: bool = False) -> None:
    """Add a recipe to the registry (a deep copy of it).

    Args:
        name: the recipe's name, e.g. ``"cpu-multiscale"``.
        recipe: a dict with ``description``, ``data``, ``model``, ``fit`` and ``seed``.
        overwrite: allow replacing an existing recipe of the same name.

    Raises:
        ValueError: if the name is taken (without ``overwrite``) or the recipe is malformed.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"recipe name must be a non-empty string, got {name!r}")
    if name in _RECIPES and not overwrite:
        raise ValueError(f"recipe {name!r} already exists; pass overwrite=True to replace it")
    _RECIPES[name] = copy.deepcopy(validate_recipe(recipe))


def with_overrides(recipe: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``recipe`` with ``{"section.key": value}`` overrides applied (``None`` values skipped).

    ``"seed"`` overrides the top-level seed. Example: ``{"model.width": 8, "fit.epochs": 1}``.

    Raises:
        ValueError: for an unknown section or key (the message lists the valid ones).
    """
    result = copy.deepcopy(recipe)
    for dotted, value in overrides.items():
        if value is None:
            continue
        if dotted == "seed":
            result["seed"] = value
            continue
        section, _, key = dotted.partition(".")
        if section not in SECTIONS or not key:
            raise ValueError(f"override {dotted!r} must be 'seed' or 'section.key' with section in {', '.join(SECTIONS)}")
        valid = _valid_keys(section)
        if key not in valid:
            raise ValueError(f"unknown {section} setting {key!r}; valid {section} settings: {', '.join(valid)}")
        result.setdefault(section, {})[key] = value
    return validate_recipe(result)


# --------------------------------------------------------------------------------------------------
# From a recipe to a model
# --------------------------------------------------------------------------------------------------


def build_run(recipe: dict[str, Any], num_classes: int):
    """The model a recipe describes, and the wrapper the CLI evaluates it through.

    Args:
        recipe: a recipe (``get_recipe``, ``with_overrides``).
        num_classes: outputs of the classifier.

    Returns ``(model, evaluated)``: ``model`` is what ``fit`` trains; ``evaluated`` is ``model``
    itself, ``Resized(model, size)`` for one test size, or ``MultiScaleTTA(model, sizes, flip)`` for
    several. With ``model.per_scale_bn`` every BatchNorm gets private copies per training size (for
    ``msresnet101``: per input side of every channel at every training size). With ``eval.scales``
    (``msresnet101`` only) the evaluated network is a ``ScaleChannelNetwork`` with those channels
    around the trained network (shared weights, no copy), at the one test size.

    Raises:
        ValueError: for a scale-channel setting on a plain ResNet, per-scale BatchNorm without train
            sizes, or ``eval.scales`` with several test sizes or flips.
    """
    from tutorial_lib.models import create_model
    from tutorial_lib.multiscale import MultiScaleTTA, Resized, ScaleChannelNetwork, convert_to_per_scale_bn, msresnet101

    options = dict(recipe["model"])
    per_scale_bn = options.pop("per_scale_bn", False)
    arch = options.pop("arch")
    scale_channels = arch == "msresnet101"
    if scale_channels:
        model = msresnet101(num_classes=num_classes, **options)
    else:
        extra = [key for key in _SCALE_CHANNEL_KEYS if key in options]
        if extra:
            raise ValueError(f"model.{extra[0]} applies to arch 'msresnet101' only (scale channels); for {arch!r} "
                             "start from a recipe of plain ResNets, e.g. --recipe cpu-baseline")
        if arch not in ARCH_NAMES:
            raise ValueError(f"unknown arch {arch!r}; valid archs: {', '.join(MODEL_ARCHS)}")
        model = create_model(arch, num_classes=num_classes, **options)
    if per_scale_bn:
        sizes = recipe["fit"].get("train_sizes")
        if not sizes:
            raise ValueError("per-scale BatchNorm needs train sizes: add --train-sizes, e.g. 32,48,64")
        if scale_channels:
            # One BatchNorm per side a channel sees in training; at test time a channel reads the
            # statistics of the nearest of these sides (convert_to_per_scale_bn's routing).
            convert_to_per_scale_bn(model.net, sorted({side for size in sizes for side in model.channel_sizes(size)}))
        else:
            convert_to_per_scale_bn(model, sizes)
    evaluation = recipe.get("eval", {})
    test_sizes, flip = evaluation.get("test_sizes"), bool(evaluation.get("flip", False))
    test_scales = evaluation.get("scales")
    if test_scales is not None:
        if not scale_channels:
            raise ValueError("eval.scales (test-time scale channels) applies to arch 'msresnet101' only")
        if not test_sizes or len(test_sizes) != 1 or flip:
            raise ValueError("eval.scales needs exactly one test size and no flips: the channels are the multi-scale test")
        return model, Resized(ScaleChannelNetwork(model.net, test_scales, pool=model.pool, mode=model.mode), test_sizes[0])
    if test_sizes and (len(test_sizes) > 1 or flip):
        return model, MultiScaleTTA(model, test_sizes, flip=flip)
    if test_sizes:
        return model, Resized(model, test_sizes[0])
    return model, model


def inference_macs(recipe: dict[str, Any], num_classes: int = 10) -> int:
    """Multiply-adds to classify one stored image the way ``recipe`` tests it (its ``eval`` protocol).

    Every test size, flip and scale channel is included; counted on PyTorch's meta device, so no
    weights are allocated and nothing is computed. The input is the stored image
    (``data.image_size``, 64 px by default).
    """
    import torch

    from tutorial_lib.cost import count_flops

    with torch.device("meta"):
        _, evaluated = build_run(recipe, num_classes)
    return count_flops(evaluated.eval(), recipe.get("data", {}).get("image_size", 64))["macs"]


def recalibrated(recipe: dict[str, Any], model: Any, evaluated: Any, train_data: Any) -> Any:
    """With ``eval.recalibrate_bn``: the evaluated network with BatchNorm statistics recomputed per test size.

    Each test size (the stored image size when the recipe names none) gets a copy of ``model`` whose
    statistics are re-estimated on training images at that size (``multiscale.recalibrated_tta``);
    for ``msresnet101`` each scale channel gets statistics of its own side instead
    (``multiscale.recalibrated_channels``). Otherwise ``evaluated`` is returned unchanged.
    """
    evaluation = recipe.get("eval", {})
    if not evaluation.get("recalibrate_bn"):
        return evaluated
    from tutorial_lib.multiscale import Resized, recalibrated_channels, recalibrated_tta

    sizes = evaluation.get("test_sizes") or [int(train_data[0][0].shape[-1])]
    options = {"batch_size": recipe["fit"].get("batch_size", 128), "seed": recipe.get("seed", 0)}
    if recipe["model"].get("arch") == "msresnet101":
        if len(sizes) != 1 or evaluation.get("flip"):
            raise ValueError("msresnet101 is tested at one size without flips: its scale channels are the multi-scale test")
        channels = evaluated.model if isinstance(evaluated, Resized) else evaluated
        return recalibrated_channels(channels, train_data, sizes[0], **options)
    return recalibrated_tta(model, train_data, sizes, flip=bool(evaluation.get("flip", False)), **options)
