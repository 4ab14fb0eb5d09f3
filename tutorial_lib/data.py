"""Datasets for the series: the embedded ``multiscale-digits`` and loaders for real datasets.

Why an embedded, synthetic-but-real dataset? The multi-scale notebooks (06 and 07) ask one question
again and again: *how does accuracy change when the object in the picture is smaller or larger than
the objects the network was trained on?* To answer it by measurement we need three things that
downloaded datasets do not give us on a laptop with no network:

1. **Control of object scale.** Every image here holds one handwritten digit pasted at a known size
   (its side in pixels is stored in ``dataset.object_sizes``), so accuracy can be plotted against
   object size, and the ``test-small`` / ``test-large`` splits hold objects clearly outside the
   training range. Scale variation is the problem feature pyramids (Lin et al., 2017, FPN) and
   Res2Net (Gao et al., 2019) set out to solve, and the train/test object-size discrepancy is what
   Touvron et al. (2019, "Fixing the train-test resolution discrepancy") measure.
2. **Real pixels.** The digits are real handwriting (scikit-learn's ``load_digits``: 1,797 digits,
   8x8 pixels, 16 grey levels) and the backgrounds are crops of real photographs and textures that
   scikit-image ships, so the network must separate a shape from clutter, not a white glyph from
   black.
3. **Honest evaluation.** The test splits use *other* handwritten digits than training (split by
   source digit) and crops from a region of every photo that training never sees, so test accuracy
   measures generalisation, not memory.

Both source packages are pip dependencies, so the dataset builds offline, deterministically from a
seed, at thousands of images per second, and is cached under ``data/`` with a manifest.

``load_dataset("imagenette" | "cifar10", ...)`` wraps torchvision's own dataset classes; they touch
the network only when called with ``download=True``.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import math
import os
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from tutorial_lib._validate import check_bool, check_choice, check_int, check_number

__all__ = [
    "DATASETS",
    "DATA_DIR_ENV",
    "DEFAULT_NUM_SAMPLES",
    "DIGIT_IMAGE_SIZE_RANGE",
    "DIGIT_SPLITS",
    "GENERATOR_VERSION",
    "OBJECT_SIZE_FRACTIONS",
    "REAL_SPLITS",
    "DatasetNotFoundError",
    "MultiScaleDigits",
    "TorchvisionDataset",
    "default_data_dir",
    "generate_multiscale_digits",
    "load_dataset",
    "Augment",
    "TensorSubset",
    "as_augment",
    "augment_from_strength",
    "batches",
    "check_dataset",
    "to_float_images",
    "validation_split",
    "object_size_range",
    "source_digit_indices",
]

DATASETS: tuple[str, ...] = ("multiscale-digits", "imagenette", "cifar10")
"""Names accepted by :func:`load_dataset`."""

DIGIT_SPLITS: tuple[str, ...] = ("train", "test", "test-small", "test-large")
"""Splits of ``multiscale-digits``: one training split, an in-distribution test split with the same
object sizes, and two scale-shifted test splits."""

DIGIT_IMAGE_SIZE_RANGE: tuple[int, int] = (32, 256)
"""Smallest and largest ``image_size`` (inclusive, pixels) of a generated ``multiscale-digits`` split,
in :func:`load_dataset` and :func:`generate_multiscale_digits` alike."""

REAL_SPLITS: tuple[str, ...] = ("train", "test")
"""Splits of the real datasets (``"test"`` is torchvision's validation/test part)."""

GENERATOR_VERSION = 2
"""Bumped whenever the generator's output changes, so stale caches are rebuilt."""

OBJECT_SIZE_FRACTIONS: dict[str, tuple[float, float]] = {
    "train": (0.30, 0.55),
    "test": (0.30, 0.55),
    "test-small": (0.14, 0.22),
    "test-large": (0.70, 0.95),
}
"""Object side as a fraction of the image side, per split (inclusive range).

At ``image_size=64`` these give 20-35 px for train/test, 9-14 px for test-small and 45-60 px for
test-large: the shifted ranges are disjoint from the training range (the nearest sizes are 6 and 10
px apart), so a network has seen no test-small or test-large object size during training.
"""

DEFAULT_NUM_SAMPLES: dict[str, int] = {
    "train": 16_000,
    "test": 2_000,
    "test-small": 2_000,
    "test-large": 2_000,
}
"""Images per split by default. The training count is sized for the CPU recipe's target (>= 95% on
``test`` within about 90 s of training on 2 cores); 2,000 test images put the standard error of an
accuracy near 95% at about 0.5 percentage points (sqrt(0.95 * 0.05 / 2000))."""

DATA_DIR_ENV = "TUTORIAL_DATA_DIR"
"""Environment variable that overrides the default data folder."""

# The 1,797 digits of ``load_digits`` are split once, for every seed: the first 1,437 (80%) are the
# only digits training ever uses, the last 360 are the only digits the test splits use. The file
# records no writer, so one writer's digits may fall on both sides; a contiguous cut (rather than
# every fifth row) at least keeps neighbouring rows, the likeliest to share a writer, together.
# The test side holds 33-37 examples of every class, the training side 141-146.
_NUM_TRAIN_DIGITS = 1_437
_SPLIT_CODES = {"train": 0, "test": 1, "test-small": 2, "test-large": 3}

# Backgrounds: images bundled inside the scikit-image wheel (no download; checked with the network
# off). Photos give large smooth regions and edges, textures give dense clutter. Grey ones get a
# random pale tint per item, so colour alone never tells background from digit.
_BACKGROUNDS: tuple[str, ...] = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "brick",
    "grass",
    "gravel",
    "camera",
    "coins",
    "moon",
)
# Each background is resized so its shorter side is this many image sides, giving a coarse and a
# fine view of the same scene.
_BACKGROUND_ZOOMS: tuple[float, ...] = (2.5, 4.0)
# The right-most 30% of every resized background (at least one image side wide) is reserved for the
# test splits; training crops come only from the rest.
_TEST_REGION_FRACTION = 0.30
# The upsampled digit intensity v in [0, 1] becomes opacity through a ramp: strokes (v >= 0.65) are
# opaque, the faint fringe that 4x4 block-averaging left around them (v <= 0.35) is transparent,
# which keeps strokes thin, and edges stay soft.
_ALPHA_LOW = 0.35
_ALPHA_HIGH = 0.65
# A soft halo of the opposite lightness (black behind a light digit, white behind a dark one) keeps
# the outline readable where the background is mixed, e.g. a bright coin on a dark table. Its radius
# grows with the object (about 1/16 of its side, see ``_halo_radius``) and it is partly transparent.
_HALO_OPACITY = 0.6
# Minimum luminance difference between the digit colour and the background under its strokes.
_MIN_CONTRAST = 0.45
# Rec. 601 luma weights, used to measure how light the background under a digit is.
_LUMA = (0.299, 0.587, 0.114)
# Items are rendered in chunks so the working set stays in cache and peak memory stays small.
_CHUNK = 512
# Columns of the per-item table of uniform random numbers (see ``generate_multiscale_digits``).
_U_DIGIT, _U_SIZE, _U_X, _U_Y, _U_BACKGROUND, _U_CROP_Y, _U_CROP_X, _U_FLIP = range(8)
_U_TINT_HUE, _U_TINT_SAT, _U_HUE, _U_SAT, _U_LUMA = range(8, 13)
_NUM_UNIFORMS = 13


class DatasetNotFoundError(FileNotFoundError):
    """A real dataset is not on disk (or is corrupted); the message says what to run."""


# --------------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------------


def _check_choice(value: Any, valid: tuple[str, ...], what: str) -> str:
    """Return ``value`` if it is one of ``valid``; otherwise raise with a suggestion and the list."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, one of {list(valid)}; got {type(value).__name__}")
    if value in valid:
        return value
    close = difflib.get_close_matches(value, valid, n=1, cutoff=0.5)
    if value.lower() in ("val", "valid", "validation") and "test" in valid:
        close = ["test"]  # torchvision calls the held-out part "val"; the series calls it "test"
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown {what} {value!r}.{hint} Valid {what}s: {', '.join(valid)}")


def object_size_range(
    split: str = "train",
    image_size: int = 64,
    fractions: tuple[float, float] | None = None,
) -> tuple[int, int]:
    """Object sizes in pixels (inclusive) that a ``multiscale-digits`` split draws from.

    Args:
        split: one of :data:`DIGIT_SPLITS`.
        image_size: side of the square images in pixels, >= 16. Not limited to
            :data:`DIGIT_IMAGE_SIZE_RANGE`: it may be the resolution the stored images are resized
            to for testing (notebook 07 tabulates the object sizes at 16 and 24 px).
        fractions: ``(low, high)`` fractions of ``image_size`` to use instead of the split's
            :data:`OBJECT_SIZE_FRACTIONS` entry.

    Returns:
        ``(smallest, largest)`` object side in pixels: the whole pixel sizes inside the fractional
        range.

    Raises:
        TypeError: for a split, ``image_size`` or ``fractions`` of the wrong type.
        ValueError: for an unknown split, ``image_size`` below 16, ``fractions`` that are not two
            numbers with ``0 < low <= high <= 1``, or a range that holds no whole pixel size of at
            least 4 px.
    """
    split = _check_choice(split, DIGIT_SPLITS, "split")
    image_size = check_int("image_size", image_size, minimum=16)
    if fractions is None:
        fractions = OBJECT_SIZE_FRACTIONS[split]
    try:
        values = tuple(fractions) if not isinstance(fractions, (str, bytes)) else None
    except TypeError:  # not iterable
        values = None
    if values is None:
        raise TypeError(f"object_size must be a pair of floats (low, high), got {type(fractions).__name__} ({fractions!r})")
    if len(values) != 2:
        raise ValueError(f"object_size must be a pair of floats (low, high), got {len(values)} values: {fractions!r}")
    low, high = (check_number(f"object_size[{i}]", value) for i, value in enumerate(values))
    if not 0.0 < low <= high <= 1.0:
        raise ValueError(f"object_size fractions must satisfy 0 < low <= high <= 1, got {fractions!r}")
    # The 1e-9 keeps an exact product such as 0.25 * 64 = 16 inside the range despite float error.
    smallest = math.ceil(low * image_size - 1e-9)
    largest = math.floor(high * image_size + 1e-9)
    if smallest > largest or largest < 4:
        raise ValueError(
            f"object_size {fractions!r} at image_size={image_size} holds no whole pixel size of at "
            f"least 4 px; widen the range or raise image_size"
        )
    return max(smallest, 4), largest


# --------------------------------------------------------------------------------------------------
# Sources: real digits and real backgrounds, both shipped inside pip packages
# --------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 handwritten digits as float32 intensities in [0, 1] and int64 labels.

    ``load_digits`` reads ``sklearn/datasets/data/digits.csv.gz`` (64 pixel values and the label
    per row). Importing scikit-learn costs 1-2 s, so the file is read directly when it is where
    ``load_digits`` reads it from, and ``load_digits`` is the fallback; a test checks both agree.
    """
    import importlib.util

    spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
    locations = spec.submodule_search_locations if spec is not None else None
    path = Path(next(iter(locations)), "datasets", "data", "digits.csv.gz") if locations else None
    if path is not None and path.is_file():
        table = np.loadtxt(path, delimiter=",")
        pixels, targets = table[:, :-1].reshape(-1, 8, 8), table[:, -1]
    else:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        pixels, targets = bunch.images, bunch.target
    images = (pixels / 16.0).astype(np.float32)  # 16 grey levels -> [0, 1]
    labels = targets.astype(np.int64)
    return images, labels


def source_digit_indices(split: str) -> np.ndarray:
    """Indices into scikit-learn's ``load_digits()`` that a split may draw its digits from.

    ``"train"`` uses the first 1,437 digits; every test split uses the other 360. The partition is
    fixed (it does not depend on the seed), so no seed ever shows a test digit during training.

    Args:
        split: one of :data:`DIGIT_SPLITS`.

    Returns:
        A sorted int64 array of digit indices.
    """
    split = _check_choice(split, DIGIT_SPLITS, "split")
    total = len(_digits()[1])
    if split == "train":
        return np.arange(0, _NUM_TRAIN_DIGITS, dtype=np.int64)
    return np.arange(_NUM_TRAIN_DIGITS, total, dtype=np.int64)


def _resize_uint8(image: np.ndarray, shorter_side: int) -> np.ndarray:
    """Resize an (H, W, 3) uint8 image so its shorter side is ``shorter_side`` (PIL, deterministic)."""
    from PIL import Image

    height, width = image.shape[:2]
    scale = shorter_side / min(height, width)
    size = (max(shorter_side, round(width * scale)), max(shorter_side, round(height * scale)))
    # Pillow resamples 8-bit images in fixed-point integer arithmetic: the same bytes on every machine.
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))


def _halo_radius(size: int) -> int:
    """Halo radius in pixels for an object side of ``size`` pixels: about size / 16, at least 1."""
    return max(1, (int(size) + 8) // 16)


@functools.lru_cache(maxsize=8)
def _background_bank(image_size: int, region: str) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Background images for one region ("train" or "test"), resized for ``image_size``.

    Returns:
        (images, is_grey): a tuple of (3, H, W) uint8 arrays, each large enough for a crop of
        ``image_size`` plus the halo margin on both sides, and a bool array that marks the grey ones
        (they get a random tint per item).
    """
    canvas = image_size + 2 * _halo_radius(image_size)
    import skimage.data

    images: list[np.ndarray] = []
    is_grey: list[bool] = []
    for name in _BACKGROUNDS:
        source = np.asarray(getattr(skimage.data, name)())
        grey = source.ndim == 2
        if grey:
            source = np.repeat(source[:, :, None], 3, axis=2)
        source = np.ascontiguousarray(source[:, :, :3], dtype=np.uint8)
        for zoom in _BACKGROUND_ZOOMS:
            resized = _resize_uint8(source, round(zoom * image_size))
            width = resized.shape[1]
            test_width = max(canvas, round(_TEST_REGION_FRACTION * width))
            part = resized[:, : width - test_width] if region == "train" else resized[:, width - test_width :]
            if min(part.shape[:2]) < canvas:  # cannot happen with the zooms above; guards edits to them
                raise AssertionError(f"background {name} is too small for image_size={image_size}")
            # Stored channel-first so a crop's rows are contiguous bytes (fast to gather).
            images.append(np.ascontiguousarray(part.transpose(2, 0, 1)))
            is_grey.append(grey)
    return tuple(images), np.array(is_grey)


@functools.lru_cache(maxsize=256)
def _bilinear_taps(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source taps and weights that upsample 8 pixels to ``size`` (half-pixel centres, clamped).

    This is the same sampling grid as ``F.interpolate(mode="bilinear", align_corners=False)``, done
    in numpy with element-wise float32 arithmetic so the result never depends on the thread count.
    """
    position = (np.arange(size, dtype=np.float64) + 0.5) * (8.0 / size) - 0.5
    position = np.clip(position, 0.0, 7.0)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, 7)
    weight = (position - low).astype(np.float32)
    return low, high, weight


def _upsample_digits(digits: np.ndarray, size: int) -> np.ndarray:
    """Bilinearly upsample (M, 8, 8) float32 digits to (M, size, size)."""
    low, high, weight = _bilinear_taps(size)
    rows = digits[:, low, :] * (1.0 - weight)[None, :, None] + digits[:, high, :] * weight[None, :, None]
    return rows[:, :, low] * (1.0 - weight)[None, None, :] + rows[:, :, high] * weight[None, None, :]


def _dilate(masks: np.ndarray, radius: int) -> np.ndarray:
    """Grey-scale dilation of (M, s, s) maps by a (2r+1)-square: a maximum over shifted copies.

    The square is separable (rows, then columns), and a radius r is reached in about log2(r) steps
    of radius 1, 2, 4, ... (dilations compose by adding radii), each step one pair of maxima.
    """
    steps: list[int] = []
    while sum(steps) < radius:
        steps.append(min(2 ** len(steps), radius - sum(steps)))
    out = masks
    for axis in (1, 2):
        for shift in steps:
            grown = out.copy()
            ahead = [slice(None)] * 3
            behind = [slice(None)] * 3
            ahead[axis], behind[axis] = slice(shift, None), slice(None, -shift)
            np.maximum(grown[tuple(behind)], out[tuple(ahead)], out=grown[tuple(behind)])
            np.maximum(grown[tuple(ahead)], out[tuple(behind)], out=grown[tuple(ahead)])
            out = grown
    return out


def _hsv_to_rgb(hue: np.ndarray, saturation: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB for (M,) arrays in [0, 1]; returns (M, 3)."""
    channels = []
    for offset in (5.0, 3.0, 1.0):  # R, G, B in the piecewise-linear form of the hexcone model
        k = np.mod(offset + hue * 6.0, 6.0)
        channels.append(value - value * saturation * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0))
    return np.stack(channels, axis=1)


def _contrasting_colours(background_luma: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Pick one RGB colour in [0, 1] per item whose luma differs from the background's by >= 0.45.

    A random hue and saturation give variety; the colour is then mixed with white (on a dark
    background) or black (on a light one) until its luma reaches a target drawn from the range that
    keeps the contrast readable.
    """
    rgb = _hsv_to_rgb(uniforms[:, _U_HUE], 0.3 + 0.7 * uniforms[:, _U_SAT], np.ones(len(uniforms)))
    luma = rgb[:, 0] * _LUMA[0] + rgb[:, 1] * _LUMA[1] + rgb[:, 2] * _LUMA[2]  # element-wise: no BLAS
    draw = uniforms[:, _U_LUMA]
    light = background_luma < 0.5
    low = np.minimum(background_luma + _MIN_CONTRAST, 1.0)
    high = np.maximum(background_luma - _MIN_CONTRAST, 0.0)
    target = np.where(light, low + (1.0 - low) * draw, high * draw)
    whiten = np.clip((target - luma) / np.maximum(1.0 - luma, 1e-6), 0.0, 1.0)
    darken = np.clip(target / np.maximum(luma, 1e-6), 0.0, 1.0)
    towards_white = rgb + (1.0 - rgb) * whiten[:, None]
    towards_black = rgb * darken[:, None]
    return np.where((target >= luma)[:, None], towards_white, towards_black)


# --------------------------------------------------------------------------------------------------
# The generator
# --------------------------------------------------------------------------------------------------


def generate_multiscale_digits(
    split: str,
    *,
    seed: int = 0,
    image_size: int = 64,
    num_samples: int | None = None,
    object_size: tuple[float, float] | None = None,
    digit_pool: str | None = None,
    background_region: str | None = None,
) -> dict[str, np.ndarray]:
    """Render one split of ``multiscale-digits`` in memory (no cache; :func:`load_dataset` caches).

    Each image is built in four steps, all vectorised over the whole split:

    1. crop an ``image_size`` square from a background photo or texture (random image, zoom,
       position, horizontal flip; grey textures get a random tint);
    2. draw a digit from the split's pool of source digits and an object side ``s`` uniformly from
       the split's pixel range, then upsample the 8x8 digit to ``s x s`` (bilinear);
    3. place it at a uniform position that keeps it fully inside the image;
    4. colour it so its luma differs from the background under its strokes by at least 0.45, lay
       a faint halo of the opposite lightness around it, and alpha-blend it with an opacity ramp
       from the digit's intensity (soft, anti-aliased edges).

    All randomness comes from one ``numpy`` Generator seeded by ``(seed, split)``, drawn as an
    ``(num_samples, 13)`` table of uniforms: item ``i`` depends only on row ``i``, so a smaller
    ``num_samples`` gives a prefix of a larger one. The arithmetic is element-wise numpy, integer
    resizing and exact maxima (nothing whose rounding depends on threads), so the same arguments
    give the same bytes in every process and run (for the same versions of numpy, Pillow and the
    source packages; :data:`GENERATOR_VERSION` tracks changes here).

    Args:
        split: one of :data:`DIGIT_SPLITS`.
        seed: non-negative integer seed.
        image_size: side of the square images in pixels (32-256).
        num_samples: number of images; defaults to :data:`DEFAULT_NUM_SAMPLES` for the split.
        object_size: optional ``(low, high)`` object side as fractions of ``image_size``, replacing
            the split's :data:`OBJECT_SIZE_FRACTIONS` entry.
        digit_pool: ``"train"`` or ``"test"``: draw the digits from that side of the source-digit
            partition (:func:`source_digit_indices`) instead of the split's own side.
        background_region: ``"train"`` or ``"test"``: crop the backgrounds from that region of the
            photos instead of the split's own. With these two, the test split's gap to training can
            be taken apart: new handwriting, new backgrounds, or both
            (``benchmarks/clutter_ceiling.py``). Neither is offered by :func:`load_dataset`: the
            cached splits always use their own digits and region.

    Returns:
        A dict of numpy arrays: ``images`` (N, 3, S, S) uint8, ``labels`` (N,) int64,
        ``object_sizes`` (N,) int64 (object side in pixels), ``digit_indices`` (N,) int64 (index into
        ``load_digits()``) and ``boxes`` (N, 4) int64 as ``(x0, y0, x1, y1)``, x1/y1 exclusive.

    Raises:
        ValueError: for an unknown split or an out-of-range argument.
        TypeError: for a non-integer ``seed``, ``image_size`` or ``num_samples``.
    """
    split = _check_choice(split, DIGIT_SPLITS, "split")
    seed = check_int("seed", seed, minimum=0)
    image_size = check_int("image_size", image_size, minimum=DIGIT_IMAGE_SIZE_RANGE[0], maximum=DIGIT_IMAGE_SIZE_RANGE[1])
    if num_samples is None:
        num_samples = DEFAULT_NUM_SAMPLES[split]
    num_samples = check_int("num_samples", num_samples, minimum=1)
    smallest, largest = object_size_range(split, image_size, object_size)

    own = "train" if split == "train" else "test"
    digit_pool = own if digit_pool is None else _check_choice(digit_pool, ("train", "test"), "digit_pool")
    background_region = own if background_region is None else _check_choice(background_region, ("train", "test"), "background_region")

    digit_images, digit_labels = _digits()
    pool = source_digit_indices(digit_pool)
    backgrounds, is_grey = _background_bank(image_size, background_region)

    generator = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, _SPLIT_CODES[split]])))
    uniforms = generator.random((num_samples, _NUM_UNIFORMS))

    def integers(column: int, count: np.ndarray | int) -> np.ndarray:
        """Map a column of uniforms to integers in [0, count)."""
        return np.minimum((uniforms[:, column] * count).astype(np.int64), np.asarray(count) - 1)

    digit_indices = pool[integers(_U_DIGIT, len(pool))]
    sizes = smallest + integers(_U_SIZE, largest - smallest + 1)
    xs = integers(_U_X, image_size - sizes + 1)
    ys = integers(_U_Y, image_size - sizes + 1)
    background_ids = integers(_U_BACKGROUND, len(backgrounds))
    heights = np.array([b.shape[1] for b in backgrounds])[background_ids]
    widths = np.array([b.shape[2] for b in backgrounds])[background_ids]
    # Every image is composed on a canvas one halo radius larger on each side and then cropped to its
    # centre, so a halo around a digit that touches the image border continues outside the image
    # instead of ending in a visible straight edge.
    margin = _halo_radius(image_size)
    canvas = image_size + 2 * margin
    crop_ys = integers(_U_CROP_Y, heights - canvas + 1)
    crop_xs = integers(_U_CROP_X, widths - canvas + 1)
    flips = (uniforms[:, _U_FLIP] < 0.5).astype(np.int64)
    # Grey textures: multiply by a pale random colour (saturation <= 0.5) so they are not all grey.
    # The tint is a fixed-point factor in [0, 256], so tinting is exact integer arithmetic.
    tints = _hsv_to_rgb(uniforms[:, _U_TINT_HUE], 0.5 * uniforms[:, _U_TINT_SAT], np.ones(num_samples))
    tints = np.rint(tints * 256.0).astype(np.uint16)[:, :, None, None]

    images = np.empty((num_samples, 3, image_size, image_size), dtype=np.uint8)
    # Window views of each background and of its mirror image (a reversed view, no copy), with the
    # channel axis moved behind the crop position: indexing one by (y, x) yields (3, C, C) crops.
    windows = [
        [
            np.moveaxis(np.lib.stride_tricks.sliding_window_view(view, (canvas, canvas), axis=(1, 2)), 0, 2)
            for view in (b, b[:, :, ::-1])
        ]
        for b in backgrounds
    ]
    luma = np.array(_LUMA, dtype=np.float32)[None, :, None, None]
    for start in range(0, num_samples, _CHUNK):
        stop = min(start + _CHUNK, num_samples)
        items = np.arange(start, stop)
        chunk = np.empty((stop - start, 3, canvas, canvas), dtype=np.uint8)
        # 1. Background crops, grouped by (background, mirrored); grey ones are tinted on the way.
        group = background_ids[items] * 2 + flips[items]
        for key in np.unique(group):
            local = np.nonzero(group == key)[0]
            crops = windows[key // 2][key % 2][crop_ys[items[local]], crop_xs[items[local]]]
            if is_grey[key // 2]:
                crops = np.multiply(crops, tints[items[local]], dtype=np.uint16)
                crops >>= 8
            chunk[local] = crops
        # 2-4. Digits, grouped by object size so each group is one batched upsample. The composited
        #    box is the digit's square grown by the halo radius r on every side.
        for size in np.unique(sizes[items]):
            local = np.nonzero(sizes[items] == size)[0]
            index = items[local]
            radius = _halo_radius(size)
            alpha = _upsample_digits(digit_images[digit_indices[index]], int(size))
            alpha = np.clip((alpha - _ALPHA_LOW) / (_ALPHA_HIGH - _ALPHA_LOW), 0.0, 1.0)
            alpha = np.pad(alpha, ((0, 0), (radius, radius), (radius, radius)))
            # The halo mask is dilated in uint8 (4x less memory traffic than float32; max is exact).
            halo = _dilate(np.rint(alpha * 255.0).astype(np.uint8), radius)[:, None]
            halo = halo.astype(np.float32) * np.float32(_HALO_OPACITY / 255.0)
            alpha = alpha[:, None]
            side = int(size) + 2 * radius
            boxes = np.lib.stride_tricks.sliding_window_view(chunk, (side, side), axis=(2, 3), writeable=True)
            top = ys[index] + margin - radius
            left = xs[index] + margin - radius
            patch = boxes[local, :, top, left].astype(np.float32)  # (M, 3, s + 2r, s + 2r)
            under = ((patch * luma).sum(axis=1, keepdims=True) * alpha).sum(axis=(1, 2, 3))
            under = under / np.maximum(alpha.sum(axis=(1, 2, 3)), 1e-6) / 255.0
            colour = _contrasting_colours(under.astype(np.float64), uniforms[index])
            colour = (colour * 255.0).astype(np.float32)[:, :, None, None]
            # Halo first (under the digit), then the digit itself: two "over" compositing steps.
            #    Each step is x += (target - x) * opacity, written in place to spare temporaries.
            halo_colour = np.where((colour * luma).sum(axis=1, keepdims=True) >= 127.5, 0.0, 255.0)
            patch -= halo_colour.astype(np.float32)
            patch *= 1.0 - halo
            patch += halo_colour.astype(np.float32)
            patch -= colour
            patch *= 1.0 - alpha
            patch += colour
            np.rint(patch, out=patch)
            boxes[local, :, top, left] = np.clip(patch, 0, 255).astype(np.uint8)
        images[start:stop] = chunk[:, :, margin : margin + image_size, margin : margin + image_size]

    return {
        "images": images,
        "labels": digit_labels[digit_indices],
        "object_sizes": sizes.astype(np.int64),
        "digit_indices": digit_indices.astype(np.int64),
        "boxes": np.stack([xs, ys, xs + sizes, ys + sizes], axis=1).astype(np.int64),
    }


# --------------------------------------------------------------------------------------------------
# The Dataset object
# --------------------------------------------------------------------------------------------------


class MultiScaleDigits(Dataset):
    """One split of ``multiscale-digits``: ``(image, label)`` pairs plus per-item metadata.

    Images are stored once as uint8 (4x smaller than float32) in ``images``; ``__getitem__`` converts
    one image to float32 in [0, 1]. A training loop may also index ``images`` and ``labels``
    directly to build whole batches at once (and skip ``transform``).

    Attributes:
        images: (N, 3, S, S) uint8 tensor, the stored form.
        labels: (N,) int64 tensor of digits 0-9.
        object_sizes: (N,) int64 tensor, the side of each digit's square in pixels.
        digit_indices: (N,) int64 tensor, each item's source digit in scikit-learn's ``load_digits()``.
        boxes: (N, 4) int64 tensor, each digit's box ``(x0, y0, x1, y1)`` in pixels (x1, y1 exclusive).
        classes: class names, ``["0", ..., "9"]``.
        split: the split name.
        image_size: S.
        manifest: the cache manifest (seed, sizes, counts, object-size ranges, generator version,
            sha256 of the arrays).
        transform: optional callable applied to the float image in ``__getitem__``.
    """

    classes: list[str] = [str(digit) for digit in range(10)]

    def __init__(
        self,
        arrays: Mapping[str, torch.Tensor],
        *,
        split: str,
        image_size: int,
        manifest: Mapping[str, Any],
        transform: Callable[[torch.Tensor], Any] | None = None,
    ) -> None:
        super().__init__()
        self.images = arrays["images"]
        self.labels = arrays["labels"]
        self.object_sizes = arrays["object_sizes"]
        self.digit_indices = arrays["digit_indices"]
        self.boxes = arrays["boxes"]
        self.classes = list(MultiScaleDigits.classes)
        self.split = split
        self.image_size = image_size
        self.manifest = dict(manifest)
        self.transform = transform

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = self.images[index].to(torch.float32).div_(255.0)
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])

    def __repr__(self) -> str:
        low, high = self.manifest["object_size_pixels"]
        return (
            f"MultiScaleDigits(split={self.split!r}, num_samples={len(self)}, image_size={self.image_size}, "
            f"object sizes {low}-{high} px, seed={self.manifest['seed']})"
        )


# --------------------------------------------------------------------------------------------------
# The cache
# --------------------------------------------------------------------------------------------------

_ARRAY_KEYS = ("images", "labels", "object_sizes", "digit_indices", "boxes")


def default_data_dir() -> Path:
    """Folder where datasets are cached and real datasets are looked for.

    In order: the ``TUTORIAL_DATA_DIR`` environment variable; the project's ``data/`` folder when the
    package runs from a source checkout (a ``pyproject.toml`` beside it) and that folder is writable;
    otherwise ``~/.cache/tutorial_lib`` (or ``$XDG_CACHE_HOME/tutorial_lib``).

    Returns:
        The folder (not necessarily existing yet).
    """
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override).expanduser()
    project = Path(__file__).resolve().parents[1]
    candidate = project / "data"
    if (project / "pyproject.toml").is_file():
        writable = os.access(candidate, os.W_OK) if candidate.exists() else os.access(project, os.W_OK)
        if writable:
            return candidate
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home) / "tutorial_lib"


def _resolve_root(root: str | os.PathLike[str] | None) -> Path:
    """The data folder: ``root`` when given, else :func:`default_data_dir`."""
    if root is None:
        return default_data_dir()
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a path (str or os.PathLike) or None, got {type(root).__name__}")
    return Path(root).expanduser()


def _content_sha256(arrays: Mapping[str, torch.Tensor]) -> str:
    """sha256 over the raw bytes of the stored arrays, in a fixed key order."""
    digest = hashlib.sha256()
    for key in _ARRAY_KEYS:
        tensor = arrays[key].contiguous()
        digest.update(key.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(memoryview(tensor.numpy()).cast("B"))
    return digest.hexdigest()


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write via a unique temporary file in the same folder, then ``os.replace`` it into place.

    ``os.replace`` is atomic on POSIX and Windows, so a reader sees either the old file or the whole
    new one, and two processes writing the same cache cannot interleave their bytes.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


def _read_cache(data_path: Path, manifest_path: Path, expected: Mapping[str, Any]) -> tuple[dict, dict] | None:
    """Return (arrays, manifest) from a valid cache, or None if it is missing, stale or corrupt."""
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        return None
    if any(manifest.get(key) != value for key, value in expected.items()):
        return None  # stale: another generator version or other parameters
    try:
        arrays = torch.load(data_path, map_location="cpu", weights_only=True)
    except Exception:  # a truncated or garbled file can fail in many ways inside the unpickler
        return None
    if not isinstance(arrays, dict) or set(arrays) != set(_ARRAY_KEYS):
        return None
    if any(not isinstance(arrays[key], torch.Tensor) for key in _ARRAY_KEYS):
        return None
    if _content_sha256(arrays) != manifest.get("sha256"):
        return None
    return arrays, manifest


def _cache_paths(root: Path, expected: Mapping[str, Any]) -> tuple[Path, Path]:
    """File names readable at a glance, plus a short hash of every parameter (object-size range, ...)."""
    key = hashlib.sha256(json.dumps(dict(expected), sort_keys=True).encode()).hexdigest()[:10]
    stem = (
        f"multiscale-digits_{expected['split']}_seed{expected['seed']}_size{expected['image_size']}"
        f"_n{expected['num_samples']}_{key}"
    )
    return root / f"{stem}.pt", root / f"{stem}.json"


def _load_multiscale_digits(
    split: str,
    *,
    root: Path,
    seed: int,
    image_size: int,
    num_samples: int | None = None,
    object_size: tuple[float, float] | None = None,
    cache: bool = True,
    transform: Callable[[torch.Tensor], Any] | None = None,
) -> MultiScaleDigits:
    """Load a split from the cache under ``root``, generating (and caching) it when needed."""
    split = _check_choice(split, DIGIT_SPLITS, "split")
    seed = check_int("seed", seed, minimum=0)
    image_size = check_int("image_size", image_size, minimum=DIGIT_IMAGE_SIZE_RANGE[0], maximum=DIGIT_IMAGE_SIZE_RANGE[1])
    if num_samples is None:
        num_samples = DEFAULT_NUM_SAMPLES[split]
    num_samples = check_int("num_samples", num_samples, minimum=1)
    check_bool("cache", cache)
    if transform is not None and not callable(transform):
        raise TypeError(f"transform must be callable or None, got {type(transform).__name__}")
    pixels = object_size_range(split, image_size, object_size)
    fractions = list(object_size) if object_size is not None else list(OBJECT_SIZE_FRACTIONS[split])
    expected = {
        "dataset": "multiscale-digits",
        "generator_version": GENERATOR_VERSION,
        "split": split,
        "seed": seed,
        "image_size": image_size,
        "num_samples": num_samples,
        "object_size_fraction": [float(f) for f in fractions],
        "object_size_pixels": list(pixels),
    }
    data_path, manifest_path = _cache_paths(root, expected)

    if cache and (data_path.exists() or manifest_path.exists()):
        found = _read_cache(data_path, manifest_path, expected)
        if found is not None:
            arrays, manifest = found
            return MultiScaleDigits(arrays, split=split, image_size=image_size, manifest=manifest, transform=transform)
        warnings.warn(
            f"the cached {split!r} split at {data_path} is stale or corrupt; regenerating it",
            RuntimeWarning,
            stacklevel=3,
        )

    generated = generate_multiscale_digits(
        split, seed=seed, image_size=image_size, num_samples=num_samples, object_size=object_size
    )
    arrays = {key: torch.from_numpy(generated[key]) for key in _ARRAY_KEYS}
    manifest = dict(expected)
    manifest.update(
        {
            "source_digits": "first 1437 of sklearn load_digits" if split == "train" else "last 360 of sklearn load_digits",
            "background_region": (
                f"all but the right-most {_TEST_REGION_FRACTION:.0%} (at least one image side) of each "
                f"resized skimage.data background"
                if split == "train"
                else f"the right-most {_TEST_REGION_FRACTION:.0%} (at least one image side) of each "
                f"resized skimage.data background"
            ),
            "backgrounds": list(_BACKGROUNDS),
            "file": data_path.name,
            "sha256": _content_sha256(arrays),
            "sha256_of": "the raw bytes of " + ", ".join(_ARRAY_KEYS) + " (C order, in that order)",
        }
    )
    if cache:
        try:
            root.mkdir(parents=True, exist_ok=True)
            _atomic_write(data_path, lambda path: torch.save(arrays, path))
            _atomic_write(manifest_path, lambda path: path.write_text(json.dumps(manifest, indent=2) + "\n"))
        except OSError as error:
            warnings.warn(
                f"could not cache multiscale-digits under {root} ({error}); the data is in memory only. "
                f"Set {DATA_DIR_ENV} or pass root= to a writable folder to cache it.",
                RuntimeWarning,
                stacklevel=3,
            )
    return MultiScaleDigits(arrays, split=split, image_size=image_size, manifest=manifest, transform=transform)


# --------------------------------------------------------------------------------------------------
# Real datasets through torchvision
# --------------------------------------------------------------------------------------------------

_IMAGENETTE_FOLDERS = {"160px": "imagenette2-160", "320px": "imagenette2-320", "full": "imagenette2"}
_IMAGENETTE_SIZES: tuple[str, ...] = tuple(_IMAGENETTE_FOLDERS)


class TorchvisionDataset(Dataset):
    """A torchvision dataset with the attributes the series relies on.

    Indexing and length are the wrapped dataset's; the wrapper adds the same descriptive attributes
    ``multiscale-digits`` has, and plain-string class names (torchvision's Imagenette gives tuples of
    synonyms).

    Attributes:
        base: the torchvision dataset (``torchvision.datasets.CIFAR10`` or ``Imagenette``).
        name: ``"cifar10"`` or ``"imagenette"``.
        split: ``"train"`` or ``"test"``.
        image_size: side of the square images the default transform returns.
        classes: one readable name per class index.
    """

    def __init__(self, base: Dataset, *, name: str, split: str, image_size: int, classes: list[str]) -> None:
        super().__init__()
        self.base = base
        self.name = name
        self.split = split
        self.image_size = image_size
        self.classes = classes

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image, label = self.base[index]
        return image, int(label)

    def __repr__(self) -> str:
        return (
            f"TorchvisionDataset(name={self.name!r}, split={self.split!r}, num_samples={len(self)}, "
            f"image_size={self.image_size}, root={str(self.base.root)!r})"
        )


def _default_transform(image_size: int) -> Callable[[Any], torch.Tensor]:
    """Resize the shorter side to ``image_size``, centre-crop a square, convert to a [0, 1] tensor.

    Resize-then-centre-crop keeps the aspect ratio (no stretching) and is deterministic, so the
    same image always gives the same tensor; augmentation, if wanted, belongs in the training recipe.
    """
    from torchvision import transforms

    return transforms.Compose(
        [transforms.Resize(image_size), transforms.CenterCrop(image_size), transforms.ToTensor()]
    )


def _download_command(name: str, split: str, root: Path, extra: str = "") -> str:
    """The exact shell command that downloads a dataset into ``root``."""
    call = f"load_dataset({name!r}, {split!r}, root={str(root)!r}{extra}, download=True)"
    return f'python -c "from tutorial_lib.data import load_dataset; {call}"'


def _load_cifar10(
    split: str,
    *,
    root: Path,
    image_size: int,
    download: bool,
    transform: Callable[[Any], Any] | None = None,
) -> TorchvisionDataset:
    """CIFAR-10 (Krizhevsky, 2009) through ``torchvision.datasets.CIFAR10``."""
    from torchvision.datasets import CIFAR10

    folder = root / CIFAR10.base_folder
    command = _download_command("cifar10", split, root)
    if not download and not folder.is_dir():
        raise DatasetNotFoundError(
            f"CIFAR-10 was not found: there is no folder {folder}. It is not bundled (about 170 MB) and "
            f"is never downloaded unless you ask. To download it once, with network access, run:\n"
            f"    {command}\n"
            f"or, in Python, load_dataset('cifar10', {split!r}, download=True). To use a copy you already "
            f"have, pass root= (or set {DATA_DIR_ENV}) to the folder that contains {CIFAR10.base_folder}/."
        )
    if download:
        root.mkdir(parents=True, exist_ok=True)
    try:
        base = CIFAR10(
            str(root),
            train=split == "train",
            transform=transform if transform is not None else _default_transform(image_size),
            download=download,
        )
    except RuntimeError as error:
        # torchvision checks every batch file against its published md5 and raises RuntimeError
        # when one is missing or differs.
        raise DatasetNotFoundError(
            f"CIFAR-10 under {folder} is incomplete or corrupted (torchvision's md5 check failed: "
            f"{error}). Delete that folder and download it again:\n    {command}"
        ) from error
    return TorchvisionDataset(base, name="cifar10", split=split, image_size=image_size, classes=list(base.classes))


def _load_imagenette(
    split: str,
    *,
    root: Path,
    image_size: int,
    download: bool,
    size: str = "160px",
    transform: Callable[[Any], Any] | None = None,
) -> TorchvisionDataset:
    """Imagenette (10 easy ImageNet classes, fast.ai) through ``torchvision.datasets.Imagenette``."""
    from torchvision.datasets import Imagenette

    size = _check_choice(size, _IMAGENETTE_SIZES, "Imagenette size")
    torchvision_split = "train" if split == "train" else "val"
    folder = root / _IMAGENETTE_FOLDERS[size]
    extra = "" if size == "160px" else f", size={size!r}"
    command = _download_command("imagenette", split, root, extra)
    if not download and not (folder / torchvision_split).is_dir():
        raise DatasetNotFoundError(
            f"Imagenette ({size}) was not found: there is no folder {folder / torchvision_split}. It is "
            f"not bundled and is never downloaded unless you ask. To download it once, with network "
            f"access, run:\n    {command}\n"
            f"To use a copy you already have, pass root= (or set {DATA_DIR_ENV}) to the folder that "
            f"contains {folder.name}/."
        )
    if download:
        root.mkdir(parents=True, exist_ok=True)
    base = Imagenette(
        str(root),
        split=torchvision_split,
        size=size,
        download=download,
        transform=transform if transform is not None else _default_transform(image_size),
    )
    classes = [synonyms[0] for synonyms in base.classes]
    return TorchvisionDataset(base, name="imagenette", split=split, image_size=image_size, classes=classes)


# --------------------------------------------------------------------------------------------------
# The public entry point
# --------------------------------------------------------------------------------------------------

_OPTIONS: dict[str, tuple[str, ...]] = {
    "multiscale-digits": ("num_samples", "object_size", "cache", "transform"),
    "cifar10": ("transform",),
    "imagenette": ("size", "transform"),
}


def load_dataset(
    name: str,
    split: str,
    *,
    root: str | os.PathLike[str] | None = None,
    seed: int = 0,
    image_size: int = 64,
    download: bool = False,
    **options: Any,
) -> Dataset:
    """Load one split of a dataset as a ``torch.utils.data.Dataset`` of ``(image, label)``.

    ``"multiscale-digits"`` is built here from data that pip packages ship (see the module
    docstring), cached under ``root`` the first time and loaded from the cache afterwards.
    ``"imagenette"`` and ``"cifar10"`` are read with torchvision's dataset classes from ``root``;
    they are downloaded only when ``download=True``.

    Args:
        name: ``"multiscale-digits"``, ``"imagenette"`` or ``"cifar10"``.
        split: for ``multiscale-digits`` one of ``"train"``, ``"test"`` (same object sizes as train),
            ``"test-small"``, ``"test-large"`` (objects smaller/larger than any in training); for the
            real datasets ``"train"`` or ``"test"`` (torchvision's validation/test part).
        root: data folder; defaults to :func:`default_data_dir` (the project's ``data/``, or
            ``$TUTORIAL_DATA_DIR``).
        seed: generation seed of ``multiscale-digits`` (the same seed gives the same bytes on every
            run); ignored by the real datasets, whose content is fixed.
        image_size: side of the square images in pixels. ``multiscale-digits`` accepts 32-256 and
            scales its object sizes with it; the real datasets are resized and centre-cropped to it.
        download: allow downloading a real dataset that is not under ``root``; ignored for
            ``multiscale-digits``, which never needs the network.
        **options: for ``multiscale-digits``: ``num_samples`` (int, default
            :data:`DEFAULT_NUM_SAMPLES`), ``object_size`` (``(low, high)`` fractions of the image
            side, default :data:`OBJECT_SIZE_FRACTIONS`), ``cache`` (bool, default True),
            ``transform`` (callable on the float image). For ``imagenette``: ``size`` (``"160px"``
            default, ``"320px"`` or ``"full"``: which published resolution to read) and
            ``transform``. For ``cifar10``: ``transform``. A given ``transform`` replaces the default
            resize/centre-crop/ToTensor of the real datasets.

    Returns:
        A :class:`MultiScaleDigits` or :class:`TorchvisionDataset`; both have ``classes``, ``split``
        and ``image_size``.

    Raises:
        ValueError: for an unknown dataset or split name (the message lists the valid ones) or an
            out-of-range value.
        TypeError: for an unknown option or a value of the wrong type.
        DatasetNotFoundError: when a real dataset is not under ``root`` and ``download`` is False;
            the message gives the command that downloads it.

    Example:
        >>> train = load_dataset("multiscale-digits", "train")
        >>> image, label = train[0]
        >>> image.shape, image.dtype, train.object_sizes[0]
    """
    name = _check_choice(name, DATASETS, "dataset")
    split = _check_choice(split, DIGIT_SPLITS if name == "multiscale-digits" else REAL_SPLITS, f"{name} split")
    check_bool("download", download)
    unknown = sorted(set(options) - set(_OPTIONS[name]))
    if unknown:
        raise TypeError(
            f"unknown option(s) {unknown} for {name!r}; valid options: {', '.join(_OPTIONS[name])} "
            f"(plus root, seed, image_size, download)"
        )
    root_path = _resolve_root(root)
    if name == "multiscale-digits":
        return _load_multiscale_digits(split, root=root_path, seed=seed, image_size=image_size, **options)
    image_size = check_int("image_size", image_size, minimum=8, maximum=1024)
    check_int("seed", seed, minimum=0)
    if name == "cifar10":
        return _load_cifar10(split, root=root_path, image_size=image_size, download=download, **options)
    return _load_imagenette(split, root=root_path, image_size=image_size, download=download, **options)


# --------------------------------------------------------------------------------------------------
# Batches: what fit, evaluate, the range test and BatchNorm recalibration all read
# --------------------------------------------------------------------------------------------------


def to_float_images(images: torch.Tensor) -> torch.Tensor:
    """Images as float32 in [0, 1]: uint8 pixels are divided by 255, floating ones are cast.

    The embedded dataset stores uint8 (a quarter of the memory of float32); the network wants
    floats. This is the one place the conversion happens.

    Raises:
        TypeError: if ``images`` is not a tensor.
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.dtype == torch.uint8:
        return images.to(torch.float32).div_(255.0)
    return images.float()


def check_dataset(name: str, data: Any) -> Any:
    """Return ``data`` if it is a non-empty map-style dataset of ``(image, label)`` items.

    A bare tensor has ``__len__`` and ``__getitem__`` too, but its items are not ``(image, label)``
    pairs, so it is refused with the fix: ``TensorDataset(images, labels)``.

    Raises:
        TypeError: for a tensor, ``None``, or anything without ``__len__``/``__getitem__``.
        ValueError: for an empty dataset.
    """
    if isinstance(data, torch.Tensor):
        raise TypeError(
            f"{name} must be a dataset of (image, label) pairs, got a bare tensor of shape {tuple(data.shape)}; "
            "wrap images and labels as torch.utils.data.TensorDataset(images, labels)"
        )
    if not hasattr(data, "__len__") or not hasattr(data, "__getitem__"):
        raise TypeError(
            f"{name} must be a map-style dataset with __len__ and __getitem__ (e.g. load_dataset(...) or "
            f"TensorDataset(images, labels)), got {type(data).__name__}"
        )
    if len(data) == 0:
        raise ValueError(f"{name} is empty; check the split name and any subset you took")
    return data


def _tensor_view(data: Dataset) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(images, labels)`` tensors when ``data`` exposes them whole (and has no per-item transform)."""
    if isinstance(data, torch.utils.data.TensorDataset) and len(data.tensors) == 2:
        return data.tensors[0], data.tensors[1]
    images, labels = getattr(data, "images", None), getattr(data, "labels", None)
    if isinstance(images, torch.Tensor) and isinstance(labels, torch.Tensor) and len(images) == len(labels) == len(data):
        if getattr(data, "transform", None) is None:  # a per-item transform must run through __getitem__
            return images, labels
    return None


def batches(
    data: Dataset,
    batch_size: int,
    device: str | torch.device = "cpu",
    *,
    shuffle_seed: int | None = None,
    channels_last: bool = False,
    shard: tuple[int, int] | None = None,
    workers: int = 0,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(images, labels)`` batches on ``device``: float images in [0, 1], int64 labels.

    A dataset that exposes its ``images`` and ``labels`` tensors whole (``multiscale-digits``,
    ``TensorSubset``, a two-tensor ``TensorDataset``) is batched by tensor indexing, which on a CPU
    is many times faster than a per-item ``DataLoader``; any other map-style dataset goes through a
    ``DataLoader`` with the same order.

    Args:
        data: a map-style dataset of ``(image, label)``.
        batch_size: images per batch.
        device: where the batches go.
        shuffle_seed: ``None``: dataset order, the last short batch included (evaluation). An
            integer: a permutation drawn from a generator seeded with it, the last incomplete
            batch dropped so every step sees ``batch_size`` images (training; BatchNorm needs
            more than one image).
        channels_last: return images in the NHWC memory layout.
        shard: ``(rank, world_size)``: yield only process ``rank``'s part of every batch, for
            distributed data-parallel training. The batches are the same as without ``shard``
            (same order, same ``batch_size``: the *global* batch); each is cut into ``world_size``
            contiguous slices, and process ``rank`` gets slice ``rank``: items ``rank * b`` to
            ``(rank + 1) * b - 1`` of the batch, ``b = batch_size / world_size``. So the processes'
            slices of a step, put together in rank order, are exactly the batch one process would
            see (a short last batch of evaluation is cut as evenly as ``Tensor.tensor_split`` cuts).
        workers: for a dataset read item by item, the ``DataLoader``'s worker processes (``num_workers``),
            which read and decode images while the model trains; 0 reads them here. The batches are
            the same with any number (the order is fixed before they start).

    Raises:
        TypeError / ValueError: for a dataset that is not one, a bad ``batch_size``, or a ``shard``
            whose rank is outside ``[0, world_size)`` or whose ``world_size`` does not divide ``batch_size``.
    """
    check_dataset("data", data)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    rank, world_size = _check_shard(shard, batch_size)
    workers = check_int("workers", workers, minimum=0)
    device = torch.device(device)
    n = len(data)
    if shuffle_seed is None:
        order, stop = torch.arange(n), n
    else:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(shuffle_seed))
        stop = max(1, n // batch_size) * batch_size if n >= batch_size else n
    parts = [idx.tensor_split(world_size)[rank] if world_size > 1 else idx for idx in order[:stop].split(batch_size)]
    tensors = _tensor_view(data)
    if tensors is None:
        # Pinned (page-locked) host memory lets the copy to a GPU run asynchronously (non_blocking).
        loader = torch.utils.data.DataLoader(data, batch_sampler=[idx.tolist() for idx in parts], num_workers=workers,
                                             pin_memory=device.type == "cuda")
        chunks = iter(loader)
    else:
        chunks = ((tensors[0][idx], tensors[1][idx]) for idx in parts)
    for images, labels in chunks:
        images = to_float_images(images.to(device, non_blocking=True))
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        yield images, torch.as_tensor(labels).to(device=device, dtype=torch.long, non_blocking=True)


def _check_shard(shard: tuple[int, int] | None, batch_size: int) -> tuple[int, int]:
    """``(rank, world_size)`` of ``batches``' ``shard`` argument, checked; ``(0, 1)`` for ``None``."""
    if shard is None:
        return 0, 1
    if not isinstance(shard, (tuple, list)) or len(shard) != 2:
        raise TypeError(f"shard must be a (rank, world_size) pair, got {shard!r}")
    world_size = check_int("shard world_size", shard[1], minimum=1)
    rank = check_int("shard rank", shard[0], minimum=0, maximum=world_size - 1)
    if batch_size % world_size:
        raise ValueError(f"batch_size {batch_size} is not divisible by the world size {world_size}: each of the "
                         f"{world_size} processes must get the same share of every batch; use a multiple of {world_size}")
    return rank, world_size


# --------------------------------------------------------------------------------------------------
# A validation split by source digit
# --------------------------------------------------------------------------------------------------


class TensorSubset(Dataset):
    """Some items of a tensor-backed dataset, still exposing ``images``/``labels`` for fast batching.

    ``batches`` indexes a dataset's tensors directly when it exposes ``images`` and ``labels``
    (much faster on a CPU than ``torch.utils.data.Subset``'s per-item path); this keeps that, plus
    ``object_sizes``, ``digit_indices`` and ``classes`` when the parent has them.

    Args:
        dataset: a dataset with ``images`` (N, C, H, W) and ``labels`` (N,) tensors.
        indices: which items to keep (a 1-D integer or boolean tensor).
    """

    def __init__(self, dataset: Dataset, indices: torch.Tensor) -> None:
        images, labels = getattr(dataset, "images", None), getattr(dataset, "labels", None)
        if not isinstance(images, torch.Tensor) or not isinstance(labels, torch.Tensor):
            raise TypeError(f"{type(dataset).__name__} does not expose .images and .labels tensors; use torch.utils.data.Subset")
        indices = torch.as_tensor(indices)
        self.images = images[indices]
        self.labels = labels[indices]
        for name in ("object_sizes", "digit_indices"):
            value = getattr(dataset, name, None)
            setattr(self, name, None if value is None else torch.as_tensor(value)[indices])
        self.classes = list(getattr(dataset, "classes", None) or [str(c) for c in range(int(labels.max()) + 1)])
        self.split = getattr(dataset, "split", None)
        self.image_size = getattr(dataset, "image_size", None)

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return to_float_images(self.images[index]), int(self.labels[index])

    def __repr__(self) -> str:
        return f"TensorSubset({len(self)} items of {self.split or 'a dataset'})"


def validation_split(dataset: Dataset, fraction: float = 0.2, *, by: str = "source", seed: int = 0) -> tuple[TensorSubset, TensorSubset]:
    """Split a training set into a training part and a held-out validation part.

    Tuning on the test split would make the test accuracy an optimistic, tuned number; the
    validation set must come from the training data. With ``by="source"`` the validation part holds
    every image drawn from the last ``fraction`` of the training split's *source digits* (the
    handwritten digits of ``multiscale-digits``), so it measures what the test split measures,
    generalization to digits never seen in training, without touching a test digit. The cut is
    contiguous, as the train/test cut of the generator is (neighbouring rows are likelier to share
    a writer), and does not depend on the seed.

    Args:
        dataset: a training split exposing ``images`` and ``labels`` (and ``digit_indices`` for
            ``by="source"``), e.g. ``load_dataset("multiscale-digits", "train")``.
        fraction: share of the source digits (``by="source"``) or of the images (``by="item"``)
            held out, in (0, 1).
        by: ``"source"`` (by source digit) or ``"item"`` (a random permutation of the images,
            for datasets without source ids).
        seed: seeds the permutation of ``by="item"``.

    Returns:
        ``(train_part, val_part)``, two ``TensorSubset``.

    Raises:
        ValueError: for a fraction outside (0, 1), an unknown ``by``, or a split that leaves a part empty.
        TypeError: if the dataset lacks the tensors the chosen ``by`` needs.
    """
    check_number("fraction", fraction, minimum=0.0, maximum=1.0, min_inclusive=False, max_inclusive=False)
    check_choice("by", by, ("source", "item"))
    seed = check_int("seed", seed, minimum=0)
    n = len(check_dataset("dataset", dataset))
    if by == "source":
        sources = getattr(dataset, "digit_indices", None)
        if sources is None:
            raise TypeError(f"{type(dataset).__name__} has no digit_indices; use by='item' for a random split")
        sources = torch.as_tensor(sources)
        unique = torch.unique(sources)
        cut = unique[len(unique) - max(1, round(fraction * len(unique)))]
        held = sources >= cut
    else:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        held = torch.zeros(n, dtype=torch.bool)
        held[order[: max(1, round(fraction * n))]] = True
    if held.all() or not held.any():
        raise ValueError(f"fraction={fraction} leaves an empty part of {n} items; use a fraction nearer 0.2")
    return TensorSubset(dataset, (~held).nonzero().flatten()), TensorSubset(dataset, held.nonzero().flatten())


# --------------------------------------------------------------------------------------------------
# Augmentation of whole batches
# --------------------------------------------------------------------------------------------------


# Control points per side of Augment's elastic displacement field.
_ELASTIC_GRID = 8


@dataclass(frozen=True)
class Augment:
    """Random translation and zoom applied to whole batches on the training device.

    Each image gets its own shift and zoom, drawn from a generator seeded by ``fit`` from
    ``(seed, epoch, step)`` (in a distributed run, every process draws for the whole global batch and
    uses its own slice's draws: ``rows``), and is resampled once with ``F.affine_grid`` + ``F.grid_sample``
    (bilinear, reflection padding, so the photo background continues past the edge instead of a
    black border the network could learn to exploit).

    Horizontal flips are off by default, on purpose: a mirrored digit is not the same digit (a
    flipped 2, 3, 4, 5, 7 or 9 is a glyph no one writes), so a flip would teach the network to accept
    shapes that never occur and blur the difference between classes. Flips suit natural photos
    (ImageNet, CIFAR-10), not characters; ``flip=True`` turns them on.

    Args:
        max_shift: largest translation, as a fraction of the image side (0.1 = up to 10% each way).
        scale: ``(low, high)`` range of the zoom factor, drawn log-uniformly; ``(1.0, 1.0)`` keeps the
            object size. A zoom above 1 enlarges the object. Scale augmentation is one of the
            multi-scale training tools of notebook 07, so the CPU baseline leaves it off. This is
            the scale range of a random-resized crop expressed as a zoom: a crop covering a
            fraction ``a`` of the image area, resized back to full size, is a zoom of ``1/sqrt(a)``
            (zooms below 1 show more than the image, the border filled by reflection).
        rotate: largest rotation in degrees, each way (square images). Handwriting slants from
            writer to writer, so a few degrees of rotation are a plausible variation of a digit
            (the classic elastic/affine distortions of Simard et al. 2003, sec 2); large angles are
            not (a 6 turned by 180 degrees is a 9).
        flip: mirror each image left-right with probability 1/2 (off by default; see above).
        elastic: largest displacement of a smooth random warp, as a fraction of the image side
            (0 switches it off). Each image gets its own displacement field: uniform random
            vectors on an 8 x 8 grid of control points, interpolated bicubically to every pixel.
            A cheap variant of the elastic distortion of Simard et al. (2003, sec 2), which made
            new "handwriting" out of MNIST's training digits by smoothing a per-pixel random field
            with a Gaussian; here the coarse control grid does the smoothing, so strokes bend
            without tearing. ``0.03`` moves a pixel of a 32-px image by up to about 1 pixel.
    """

    max_shift: float = 0.1
    scale: tuple[float, float] = (1.0, 1.0)
    rotate: float = 0.0
    flip: bool = False
    elastic: float = 0.0

    def __post_init__(self) -> None:
        check_number("max_shift", self.max_shift, minimum=0.0, maximum=1.0, max_inclusive=False)
        if isinstance(self.scale, (str, bytes)) or not isinstance(self.scale, Sequence) or len(self.scale) != 2:
            raise TypeError(f"scale must be a (low, high) pair of zoom factors such as (0.8, 1.25), got {self.scale!r}")
        low = check_number("scale[0]", self.scale[0], minimum=0.0, min_inclusive=False)
        high = check_number("scale[1]", self.scale[1], minimum=low)
        check_number("rotate", self.rotate, minimum=0.0, maximum=45.0)
        check_bool("flip", self.flip)
        check_number("elastic", self.elastic, minimum=0.0, maximum=0.25)
        object.__setattr__(self, "scale", (low, high))

    def __call__(self, images: torch.Tensor, generator: torch.Generator, *, rows: tuple[int, int] | None = None) -> torch.Tensor:
        """Augment a batch ``(N, C, H, W)``; parameters come from the CPU ``generator``.

        Args:
            images: the batch.
            generator: the source of every random draw.
            rows: ``(start, total)`` when ``images`` is one process's slice of a distributed batch:
                rows ``start`` to ``start + N - 1`` of a batch of ``total`` images (see
                ``batches(shard=...)``). The parameters are drawn for all ``total`` images, in
                the same order as for the whole batch, and only this slice's are used, so the
                processes' slices together are augmented exactly as the whole batch is in one
                process. Drawing parameters (a few numbers per image) for the whole batch costs
                next to nothing; resampling is per image and is done for the slice only.
        """
        n = images.shape[0]
        start, total = (0, n) if rows is None else rows
        if rows is not None and not 0 <= start <= total - n:
            raise ValueError(f"rows=(start, total) must place the {n} images inside the batch, got {rows}")
        keep = slice(start, start + n)
        n = total  # draw for the whole batch, in its order; use this slice's draws
        shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * self.max_shift * 2  # grid spans [-1, 1]
        low, high = math.log(self.scale[0]), math.log(self.scale[1])
        zoom = torch.exp(low + (high - low) * torch.rand(n, generator=generator))
        angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(self.rotate)
        # affine_grid maps output coordinates to input ones: sampling a window 1/zoom as wide enlarges.
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0] = cos
        theta[:, 0, 1] = -sin
        theta[:, 1, 0] = sin
        theta[:, 1, 1] = cos
        theta[:, :, 2] = shift
        if self.flip:  # drawn last, so that flip=False leaves the other draws unchanged
            mirrored = torch.rand(n, generator=generator) < 0.5
            theta[mirrored, :, 0] *= -1  # output x -> input -x: a left-right mirror
        theta = theta[keep].to(device=images.device, dtype=images.dtype)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        if self.elastic > 0:  # drawn after the flips, so elastic=0 leaves the other draws unchanged
            control = (torch.rand(n, 2, _ELASTIC_GRID, _ELASTIC_GRID, generator=generator) * 2 - 1)[keep] * self.elastic * 2
            field = F.interpolate(control.to(device=images.device, dtype=images.dtype), size=images.shape[-2:],
                                  mode="bicubic", align_corners=True)
            field = field.clamp(-2 * self.elastic, 2 * self.elastic)  # bicubic can overshoot its control values
            grid = grid + field.permute(0, 2, 3, 1)  # (N, H, W, 2) offsets in grid units (the side spans 2)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    def to_dict(self) -> dict[str, Any]:
        return {"max_shift": self.max_shift, "scale": list(self.scale), "rotate": self.rotate, "flip": self.flip,
                "elastic": self.elastic}


def as_augment(augment: Augment | dict | bool | None) -> Augment | None:
    """The ``Augment`` that ``fit(augment=...)`` means: ``None``/``False`` none, ``True`` the defaults,
    a dict of ``Augment``'s options, or an ``Augment`` as it is.

    Raises:
        TypeError / ValueError: for another type, an unknown option, or a bad option value.
    """
    if augment is None or augment is False:
        return None
    if augment is True:
        return Augment()
    if isinstance(augment, Augment):
        return augment
    if isinstance(augment, dict):
        valid = ("max_shift", "scale", "rotate", "flip", "elastic")
        unknown = sorted(set(augment) - set(valid))
        if unknown:
            raise ValueError(f"unknown augment option(s) {unknown}; valid options: {', '.join(valid)}")
        return Augment(**augment)
    raise TypeError(f"augment must be None, a bool, a dict or an Augment, got {type(augment).__name__}")


def augment_from_strength(strength: float, *, flip: bool = False) -> Augment | None:
    """One number for the strength of the augmentation: shift, zoom and rotation grow together.

    Tuning one magnitude instead of each operation's own range keeps a search small; RandAugment
    (Cubuk et al. 2020, sec 3) does the same with its global magnitude M. At strength ``s``:
    shifts up to ``0.15 s`` of the side, zoom in ``[1 / (1 + 0.3 s), 1 + 0.3 s]`` (a random-resized
    crop's scale range, as a zoom) and rotations up to ``15 s`` degrees (a slant writers produce).

    Args:
        strength: 0 (no augmentation) to 1.
        flip: add random horizontal flips (leave off for digits: a mirrored digit is no digit).

    Returns:
        An ``Augment``, or ``None`` for strength 0 without flips.
    """
    check_number("strength", strength, minimum=0.0, maximum=1.0)
    check_bool("flip", flip)
    if strength == 0 and not flip:
        return None
    zoom = 1.0 + 0.3 * strength
    return Augment(max_shift=0.15 * strength, scale=(1.0 / zoom, zoom), rotate=15.0 * strength, flip=flip)
