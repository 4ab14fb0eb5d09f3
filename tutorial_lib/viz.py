"""Plots used by the notebooks.

Each function draws on a fresh (or given) matplotlib axes and returns the figure, so a notebook cell
ends with ``plt.show()`` and a test can inspect the figure without a display.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from torch import Tensor
    from torch.utils.data import Dataset

    from tutorial_lib.train import History
    from tutorial_lib.tuning import LRRangeTest

__all__ = [
    "plot_accuracy_by_size",
    "plot_batch_size_sensitivity",
    "plot_cost_curve",
    "plot_depth_statistics",
    "plot_feature_maps",
    "plot_feature_pyramid",
    "plot_gradient_norms",
    "plot_histories",
    "plot_history",
    "plot_lr_range_test",
    "plot_lr_schedules",
    "plot_object_sizes",
    "plot_resolution_sweep",
    "plot_running_estimates",
    "plot_search_history",
    "plot_search_params",
    "show_gallery",
    "show_receptive_fields",
    "show_splits",
]


# --- training curves and gradient norms (tutorial_lib.train; notebooks 02, 05-08) ------------------


def _figure_and_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """``(figure, ax)`` for ``ax``, or a new figure of ``figsize`` with one axes when ``ax`` is None."""
    import matplotlib.pyplot as plt

    if ax is None:
        return plt.subplots(figsize=figsize)
    return ax.figure, ax


def _moving_average(values: list[float], window: int) -> list[float]:
    """Trailing mean over up to ``window`` values, same length as ``values``."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _step_epochs(history: History) -> list[float]:
    """The x position, in epochs, of every recorded step (step i ends at (i + 1) / steps_per_epoch)."""
    epochs = max(len(history.epochs), 1)
    per_epoch = max(len(history.step_loss) // epochs, 1) if history.epochs else max(len(history.step_loss), 1)
    return [(i + 1) / per_epoch for i in range(len(history.step_loss))]


def _check_history(history: Any, name: str = "history") -> None:
    if not all(hasattr(history, a) for a in ("epochs", "step_loss", "step_lr")):
        raise TypeError(f"{name} must be a tutorial_lib.train.History (what fit returns), got {type(history).__name__}")


def plot_history(history: History, *, title: str | None = None, smooth: int = 20) -> Figure:
    """Loss and accuracy of one ``fit`` run: two panels, x axis in epochs.

    The loss panel shows every step (faint), its trailing mean over ``smooth`` steps, and the
    validation loss at each epoch end; the accuracy panel shows train and validation accuracy per
    epoch.

    Args:
        history: the ``History`` that ``tutorial_lib.train.fit`` returned.
        title: figure title.
        smooth: window of the trailing mean of the step losses (1 for none).

    Returns:
        The matplotlib figure.
    """
    import matplotlib.pyplot as plt

    _check_history(history)
    if isinstance(smooth, bool) or not isinstance(smooth, int) or smooth < 1:
        raise ValueError(f"smooth must be a positive integer window, got {smooth!r}")
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    x = _step_epochs(history)
    ax_loss.plot(x, history.step_loss, color="C0", alpha=0.25, linewidth=0.8, label="train (step)")
    ax_loss.plot(x, _moving_average(list(history.step_loss), smooth), color="C0", label=f"train (mean of {smooth})")
    epochs = [r["epoch"] for r in history.epochs]
    val_loss = [r["val_loss"] for r in history.epochs]
    if any(v is not None for v in val_loss):
        ax_loss.plot(epochs, val_loss, "o-", color="C1", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    ax_loss.legend()
    ax_acc.plot(epochs, [r["train_acc"] for r in history.epochs], "o-", color="C0", label="train")
    val_acc = [r["val_acc"] for r in history.epochs]
    if any(v is not None for v in val_acc):
        ax_acc.plot(epochs, val_acc, "o-", color="C1", label="validation")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1.02))
    ax_acc.legend()
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_histories(histories: Mapping[str, History], *, title: str | None = None, smooth: int = 20) -> Figure:
    """Compare several ``fit`` runs: smoothed training loss (left) and accuracy per epoch (right).

    Accuracy is the validation accuracy when the runs have it (solid), and the training accuracy
    otherwise (dashed).

    Args:
        histories: ``{run_name: History}``, in legend order.
        title: figure title.
        smooth: window of the trailing mean of the step losses.

    Returns:
        The matplotlib figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if not hasattr(histories, "items") or not histories:
        raise TypeError("histories must be a non-empty dict {run_name: History}")
    if isinstance(smooth, bool) or not isinstance(smooth, int) or smooth < 1:
        raise ValueError(f"smooth must be a positive integer window, got {smooth!r}")
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    for i, (name, history) in enumerate(histories.items()):
        _check_history(history, f"histories[{name!r}]")
        color = f"C{i}"
        ax_loss.plot(_step_epochs(history), _moving_average(list(history.step_loss), smooth), color=color, label=name)
        epochs = [r["epoch"] for r in history.epochs]
        val_acc = [r["val_acc"] for r in history.epochs]
        if any(v is not None for v in val_acc):
            ax_acc.plot(epochs, val_acc, "o-", color=color, label=f"{name} (validation)")
        else:
            ax_acc.plot(epochs, [r["train_acc"] for r in history.epochs], "o--", color=color, label=f"{name} (train)")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title=f"training loss (mean of {smooth} steps)")
    validated = [any(r["val_acc"] is not None for r in h.epochs) for h in histories.values()]
    accuracy_title = ("validation accuracy after each epoch" if all(validated)
                      else "training accuracy, mean over each epoch" if not any(validated)
                      else "validation (solid) or training (dashed) accuracy per epoch")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title=accuracy_title, ylim=(0, 1.02))
    ax_acc.xaxis.set_major_locator(MaxNLocator(integer=True))  # one point per epoch: no fractional ticks
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_gradient_norms(
    norms: Mapping[str, float] | Mapping[str, Mapping[str, float]],
    *,
    ax: Axes | None = None,
    title: str | None = None,
    log: bool = True,
) -> Figure:
    """Per-layer gradient norms (e.g. from ``tutorial_lib.train.gradient_norms``), input to output.

    Args:
        norms: ``{layer_name: norm}`` for one model, or ``{model_name: {layer_name: norm}}`` to
            compare several; layers are plotted in the order given (forward order).
        ax: axes to draw on; a new figure when ``None``.
        title: axes title.
        log: logarithmic y axis (gradient norms span orders of magnitude in deep plain networks).

    Returns:
        The matplotlib figure.
    """
    if not hasattr(norms, "items") or not norms:
        raise TypeError("norms must be a non-empty dict {layer: norm} or {model: {layer: norm}}")
    series = norms if all(hasattr(v, "items") for v in norms.values()) else {"model": norms}
    fig, ax = _figure_and_axes(ax, (7, 3.6))
    for name, layer_norms in series.items():
        values = [float(v) for v in layer_norms.values()]
        ax.plot(range(1, len(values) + 1), values, "o-", markersize=3, label=str(name))
    ax.set(xlabel="layer (1 = nearest the input)", ylabel="gradient norm of the weights", title=title or "gradient norm per layer")
    if log:
        ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")
    if len(series) > 1 or "model" not in series:
        ax.legend()
    fig.tight_layout()
    return fig


# --- data galleries (tutorial_lib.data, multiscale-digits; notebook 00's data tour) -----------------


def _display_image(image: Tensor | np.ndarray) -> np.ndarray:
    """A (3, H, W) tensor or array, float in [0, 1] or uint8, as an (H, W, 3) float array for imshow."""
    import numpy as np

    array = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    if array.ndim != 3 or array.shape[0] not in (1, 3):
        raise ValueError(f"expected a (3, H, W) or (1, H, W) image, got shape {tuple(array.shape)}")
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    array = np.clip(array.transpose(1, 2, 0), 0.0, 1.0)
    return array[:, :, 0] if array.shape[2] == 1 else array


def _check_dataset(dataset: Any, name: str = "dataset") -> None:
    if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__") or len(dataset) == 0:
        raise TypeError(f"{name} must be a non-empty Dataset of (image, label), e.g. from tutorial_lib.data.load_dataset")


def _item_title(dataset: Dataset, index: int, label: int) -> str:
    """'7 · 24 px' when the dataset records object sizes, else the class name."""
    classes = getattr(dataset, "classes", None)
    text = str(classes[label]) if classes is not None else str(label)
    sizes = getattr(dataset, "object_sizes", None)
    if sizes is not None:
        text += f" · {int(sizes[index])} px"
    return text


def show_gallery(
    dataset: Dataset,
    n: int = 16,
    *,
    ncols: int = 8,
    indices: Sequence[int] | None = None,
    seed: int = 0,
    sort_by_size: bool = False,
    title: str | None = None,
    scale: float = 1.5,
) -> Figure:
    """A grid of examples, each titled with its label and, for ``multiscale-digits``, its object size.

    Args:
        dataset: any Dataset of ``(image, label)`` with (3, H, W) images; ``classes`` and
            ``object_sizes`` attributes are used when present.
        n: number of examples (ignored when ``indices`` is given).
        ncols: examples per row.
        indices: the exact items to show; a seeded random sample of ``n`` when ``None``.
        seed: seed of that sample (the same seed shows the same items).
        sort_by_size: order the examples by object size, smallest first.
        title: figure title; by default the dataset's split.
        scale: inches per example.

    Returns:
        The matplotlib figure.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    _check_dataset(dataset)
    if indices is None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        rng = np.random.default_rng(seed)
        indices = rng.choice(len(dataset), size=min(n, len(dataset)), replace=False)
    indices = [int(i) for i in indices]
    if not indices or any(not -len(dataset) <= i < len(dataset) for i in indices):
        raise ValueError(f"indices must be a non-empty list of item numbers in [0, {len(dataset)})")
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"ncols must be a positive integer, got {ncols!r}")
    sizes = getattr(dataset, "object_sizes", None)
    if sort_by_size:
        if sizes is None:
            raise ValueError("sort_by_size=True needs a dataset with object_sizes (multiscale-digits)")
        indices.sort(key=lambda i: (int(sizes[i]), i))
    ncols = min(ncols, len(indices))
    nrows = -(-len(indices) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(scale * ncols, scale * nrows + 0.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, index in zip(axes.flat, indices):
        image, label = dataset[index]
        ax.imshow(_display_image(image), interpolation="nearest")
        ax.set_title(_item_title(dataset, index, int(label)), fontsize=9)
    split = getattr(dataset, "split", None)
    if title is None and split is not None:
        title = f"split {split!r}"
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def show_splits(
    splits: Mapping[str, Dataset], n: int = 8, *, seed: int = 0, scale: float = 1.5, title: str | None = None
) -> Figure:
    """Each split side by side, one row per split, examples ordered by object size.

    The images all have the same side, so the rows show what changes between splits: the size of
    the object inside the image. Each row is labelled with its split and its range of object sizes.

    Args:
        splits: ``{split_name: dataset}``, in row order, e.g. the four ``multiscale-digits`` splits.
        n: examples per row (a seeded random sample of each split).
        seed: seed of the samples.
        scale: inches per example.
        title: figure title.

    Returns:
        The matplotlib figure.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    if not hasattr(splits, "items") or not splits:
        raise TypeError("splits must be a non-empty dict {split_name: dataset}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    for name, dataset in splits.items():
        _check_dataset(dataset, f"splits[{name!r}]")
    fig, axes = plt.subplots(len(splits), n, figsize=(scale * n + 1.0, scale * len(splits) + 0.4), squeeze=False)
    for row, (name, dataset) in enumerate(splits.items()):
        rng = np.random.default_rng(seed)
        indices = [int(i) for i in rng.choice(len(dataset), size=min(n, len(dataset)), replace=False)]
        sizes = getattr(dataset, "object_sizes", None)
        label_text = str(name)
        if sizes is not None:
            indices.sort(key=lambda i: (int(sizes[i]), i))
            label_text += f"\n{int(sizes.min())}-{int(sizes.max())} px"
        for col, ax in enumerate(axes[row]):
            ax.set_xticks([])
            ax.set_yticks([])
            if col >= len(indices):
                ax.axis("off")
                continue
            image, label = dataset[indices[col]]
            ax.imshow(_display_image(image), interpolation="nearest")
            ax.set_title(_item_title(dataset, indices[col], int(label)), fontsize=9)
        axes[row][0].set_ylabel(label_text, rotation=0, ha="right", va="center", fontsize=10)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_object_sizes(splits: Mapping[str, Dataset], *, ax: Axes | None = None, title: str | None = None) -> Figure:
    """Histogram of object sizes (pixels) per split: the ranges a network trains and is tested on.

    Args:
        splits: ``{split_name: dataset}`` whose datasets have ``object_sizes``.
        ax: axes to draw on; a new figure when ``None``.
        title: axes title.

    Returns:
        The matplotlib figure.
    """
    import numpy as np

    if not hasattr(splits, "items") or not splits:
        raise TypeError("splits must be a non-empty dict {split_name: dataset}")
    for name, dataset in splits.items():
        if getattr(dataset, "object_sizes", None) is None:
            raise TypeError(f"splits[{name!r}] has no object_sizes; plot_object_sizes needs multiscale-digits splits")
    fig, ax = _figure_and_axes(ax, (7, 3.2))
    width = 0.9 / len(splits)   # bars side by side within each pixel size, so no split hides another
    for i, (name, dataset) in enumerate(splits.items()):
        sizes = np.asarray(dataset.object_sizes)
        values, counts = np.unique(sizes, return_counts=True)
        offset = (i - (len(splits) - 1) / 2) * width
        ax.bar(values + offset, counts / counts.sum(), width=width, color=f"C{i}",
               label=f"{name} ({values.min()}-{values.max()} px)")
    image_size = getattr(next(iter(splits.values())), "image_size", None)
    xlabel = "object side (pixels)" + (f" in a {image_size}x{image_size} image" if image_size else "")
    ax.set(xlabel=xlabel, ylabel="fraction of the split", title=title or "object sizes per split")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# --- convolution: feature maps, receptive fields, cost curves (notebooks 01, 03, 04) -------------


def plot_feature_maps(maps: Tensor | np.ndarray, n: int = 16, *, ncols: int = 8, title: str | None = None,
                      labels: Sequence[str] | None = None, scale: float = 1.4, cmap: str = "magma") -> Figure:
    """Show the first ``n`` channels of a feature map, each on its own colour scale.

    Each channel is scaled to its own minimum and maximum: absolute values differ by orders of
    magnitude between channels, and what a learner looks for is the *pattern* (edges, blobs, where
    a channel fires).

    Args:
        maps: A ``(C, H, W)`` or ``(1, C, H, W)`` tensor or array.
        n: How many channels to show (the first ``n``; at most ``C``).
        ncols: Panels per row.
        title: Figure title.
        labels: Optional panel titles, one per shown channel (default: the channel index).
        scale: Panel size in inches.
        cmap: Matplotlib colour map.

    Returns:
        The matplotlib figure.

    Raises:
        ValueError: If ``maps`` is not 3-D (or 4-D with batch 1), or ``n``/``ncols`` < 1.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    array = maps.detach().float().cpu().numpy() if hasattr(maps, "detach") else np.asarray(maps, dtype=float)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3:
        raise ValueError(f"maps must be (C, H, W) or (1, C, H, W), got shape {tuple(array.shape)}")
    if n < 1 or ncols < 1:
        raise ValueError(f"n and ncols must be >= 1, got n={n}, ncols={ncols}")
    n = min(n, array.shape[0])
    if labels is not None and len(labels) < n:
        raise ValueError(f"labels has {len(labels)} entries but {n} channels are shown")
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(scale * ncols, (scale + 0.25) * nrows + (0.4 if title else 0)),
                             squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index >= n:
            continue
        ax.imshow(array[index], cmap=cmap)
        ax.set_title(str(labels[index]) if labels is not None else f"ch {index}", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def show_receptive_fields(image: Tensor | np.ndarray, boxes: Mapping[str, tuple[int, int, int]], *,
                          title: str | None = None, ax: Axes | None = None, dotted: Sequence[str] = ()) -> Figure:
    """Draw square receptive fields on an image.

    Args:
        image: ``(H, W, 3)`` array (uint8 or float in [0, 1]) or a ``(3, H, W)`` tensor.
        boxes: ``{label: (top, left, size)}`` in input pixels. A box that leaves the image is drawn
            dashed, clipped to the image border, and its legend entry says so.
        title: Axes title.
        ax: Axes to draw on (default: a new figure).
        dotted: labels of boxes to draw dotted (e.g. measured fields beside theoretical ones), so a
            box that nearly coincides with another stays distinguishable; a box beyond the image
            stays dashed.

    Returns:
        The matplotlib figure.

    Raises:
        ValueError: If ``image`` has the wrong shape or a box is malformed.
    """
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.patches import Rectangle

    if hasattr(image, "detach"):
        array = _display_image(image)
    else:
        array = np.asarray(image)
        if array.ndim != 3 or array.shape[2] != 3:
            raise ValueError(f"image must be (H, W, 3), got shape {array.shape}")
    # Wide enough for the image (5 in tall) and the legend beside it.
    fig, ax = _figure_and_axes(ax, (5 * array.shape[1] / array.shape[0] + 3.5, 5))
    ax.imshow(array)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, (label, box) in enumerate(boxes.items()):
        if len(box) != 3 or box[2] < 1:
            raise ValueError(f"box {label!r} must be (top, left, size) with size >= 1, got {box!r}")
        top, left, size = box
        height, width = array.shape[:2]
        # Clip to the image; pixel i covers [i - 0.5, i + 0.5] in imshow coordinates.
        y0, x0 = max(top, 0), max(left, 0)
        y1, x1 = min(top + size, height), min(left + size, width)
        clipped = (y0, x0, y1, x1) != (top, left, top + size, left + size)
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, lw=2,
                               linestyle="--" if clipped else ":" if label in dotted else "-", edgecolor=colors[index % len(colors)],
                               label=f"{label}: {size} px" + (" (beyond the image)" if clipped else "")))
    ax.set_xlim(-0.5, array.shape[1] - 0.5)
    ax.set_ylim(array.shape[0] - 0.5, -0.5)
    # Beside the image, not on it: a legend inside the axes would hide the boxes it names.
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=8)
    ax.set_title(title or "receptive fields of one output pixel")
    ax.axis("off")
    fig.tight_layout()
    return fig


def plot_cost_curve(x: Iterable[float], series: Mapping[str, Iterable[float]], *, xlabel: str, ylabel: str,
                    title: str | None = None, reference: Mapping[str, Iterable[float]] | None = None,
                    logy: bool = False, ax: Axes | None = None) -> Figure:
    """Line plot of one or more cost series against a common x axis (e.g. GMACs vs resolution).

    Args:
        x: The x values.
        series: ``{label: y values}``, each as long as ``x`` (solid lines with markers).
        xlabel: X axis label.
        ylabel: Y axis label.
        title: Axes title.
        reference: Optional ``{label: y values}`` drawn as dashed lines without markers (a model or
            prediction to compare the measurements with).
        logy: Log-scale y axis.
        ax: Axes to draw on (default: a new figure).

    Returns:
        The matplotlib figure.

    Raises:
        ValueError: If a series' length differs from ``x``'s, or ``series`` is empty.
    """
    x = list(x)
    if not series:
        raise ValueError("series is empty; pass {label: values}")
    fig, ax = _figure_and_axes(ax, (6, 3.5))
    for dashed, group in ((False, series), (True, reference or {})):
        for label, values in group.items():
            values = list(values)
            if len(values) != len(x):
                raise ValueError(f"series {label!r} has {len(values)} values for {len(x)} x values")
            if dashed:
                ax.plot(x, values, linestyle="--", color="0.4", label=label)
            else:
                ax.plot(x, values, marker="o", label=label)
    if logy:
        ax.set_yscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# --- 05 inter-layer normalization: running statistics, activations through depth, batch size -----


def plot_running_estimates(traces: Mapping[str, Iterable[float]], *, target: float | None = None,
                           xlabel: str = "training step", ylabel: str = "running_mean",
                           title: str | None = None, ax: Axes | None = None) -> Figure:
    """How running estimates (e.g. BatchNorm's ``running_mean``) approach a target, step by step.

    Args:
        traces: ``{label: values}``, one value per step (step 1 first).
        target: the value the estimates should reach (dashed line), or ``None``.
        xlabel: x axis label.
        ylabel: y axis label.
        title: axes title.
        ax: axes to draw on; a new figure when ``None``.

    Returns:
        The matplotlib figure.
    """
    if not hasattr(traces, "items") or not traces:
        raise TypeError("traces must be a non-empty dict {label: values per step}")
    fig, ax = _figure_and_axes(ax, (9, 3.4))
    for label, values in traces.items():
        values = [float(v) for v in values]
        ax.plot(range(1, len(values) + 1), values, marker="o", markersize=3, label=str(label))
    if target is not None:
        ax.axhline(float(target), color="0.3", linestyle="--", label=f"target {float(target):.3g}")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title or "running estimates")
    ax.grid(alpha=0.3)
    # Beside the axes: estimates fill the plot from start to end, and a legend inside would touch one.
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    return fig


def plot_depth_statistics(stats: Mapping[str, Mapping[str, Sequence[float]]], *, title: str | None = None) -> Figure:
    """Mean and standard deviation of each residual block's output, input to output, per model.

    Args:
        stats: ``{model_name: {"mean": [...], "std": [...]}}``, one value per block in forward order.
        title: figure title.

    Returns:
        The matplotlib figure (left: standard deviation, log scale; right: mean, symmetric log scale).
    """
    import matplotlib.pyplot as plt

    if not hasattr(stats, "items") or not stats:
        raise TypeError("stats must be a non-empty dict {model_name: {'mean': [...], 'std': [...]}}")
    for name, series in stats.items():
        if not hasattr(series, "keys") or not {"mean", "std"} <= set(series.keys()):
            raise TypeError(f"stats[{name!r}] must be a dict with 'mean' and 'std' lists")
        if len(series["mean"]) != len(series["std"]) or not series["std"]:
            raise ValueError(f"stats[{name!r}] needs non-empty 'mean' and 'std' of the same length")
    fig, (ax_std, ax_mean) = plt.subplots(1, 2, figsize=(11, 3.8))
    # A marker and a line style per model, hollow markers on every other one: two models whose
    # curves coincide (BatchNorm and GroupNorm at initialization) both stay visible.
    styles = [("o", "-"), ("s", "--"), ("^", "-."), ("D", ":")]
    for i, (name, series) in enumerate(stats.items()):
        blocks = range(1, len(series["std"]) + 1)
        marker, linestyle = styles[i % len(styles)]
        style = {"marker": marker, "linestyle": linestyle, "markersize": 6 if i % 2 else 4, "color": f"C{i}",
                 "markerfacecolor": "none" if i % 2 else f"C{i}", "label": str(name)}
        ax_std.plot(blocks, [float(v) for v in series["std"]], **style)
        ax_mean.plot(blocks, [float(v) for v in series["mean"]], **style)
    ax_std.set_yscale("log")
    ax_mean.set_yscale("symlog", linthresh=1.0)
    ax_std.set(xlabel="residual block (1 = nearest the input)", ylabel="std of the block output",
               title="standard deviation (log scale)")
    ax_mean.set(xlabel="residual block (1 = nearest the input)", ylabel="mean of the block output",
                title="mean (symmetric log scale: linear between -1 and 1)")
    for ax in (ax_std, ax_mean):
        ax.grid(alpha=0.3, which="both")
    ax_std.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_batch_size_sensitivity(
    results: Mapping[str, Mapping[int, float]],
    *,
    reference: Mapping[str, Mapping[int, float]] | None = None,
    title: str | None = None,
    ax: Axes | None = None,
    label: str = "measured",
    ylabel: str = "test error (%)",
    connect: bool = True,
) -> Figure:
    """Test error against images per batch, one line per normalization (Wu & He 2018, Fig. 1 style).

    Args:
        results: ``{norm_name: {batch_size: accuracy in [0, 1]}}``.
        reference: optional ``{norm_name: {batch_size: error in %}}`` drawn as square markers (e.g. a paper's).
            Only for errors measured on the same task: another task's errors belong on their own axes.
        title: axes title.
        ax: axes to draw on; a new figure when ``None``.
        label: what ``results`` are, shown in the legend after each norm name (``"measured"``,
            ``"seed 0"``, a paper and its table).
        ylabel: the y axis label: name the task and the split.
        connect: join a norm's points with a line; ``False`` for a few batch sizes out of a larger
            sweep (a line would invent the values between them).

    Returns:
        The matplotlib figure; the x axis runs from the largest batch to the smallest, as in the paper.
    """
    if not hasattr(results, "items") or not results:
        raise TypeError("results must be a non-empty dict {norm_name: {batch_size: accuracy}}")
    fig, ax = _figure_and_axes(ax, (6.5, 3.6))
    sizes = set()
    for i, (name, by_size) in enumerate(results.items()):
        if not hasattr(by_size, "items") or not by_size:
            raise TypeError(f"results[{name!r}] must be a non-empty dict {{batch_size: accuracy}}")
        xs = sorted(by_size, reverse=True)
        sizes.update(xs)
        # A marker and a line style per norm: two curves that coincide stay visible.
        style = ("o", "-") if i % 2 == 0 else ("s", "--")
        ax.plot(xs, [100.0 * (1.0 - float(by_size[b])) for b in xs], marker=style[0], linestyle=style[1] if connect else "none",
                color=f"C{i}", markerfacecolor=f"C{i}" if i % 2 == 0 else "none", markersize=7, label=f"{name} ({label})")
    for i, (name, by_size) in enumerate((reference or {}).items()):
        xs = sorted(by_size, reverse=True)
        sizes.update(xs)
        # Markers only: a paper may report a few batch sizes, and a line would invent the ones between.
        ax.plot(xs, [float(by_size[b]) for b in xs], "s", color=f"C{i}", alpha=0.6, markersize=8, label=f"{name} (paper)")
    ax.set_xscale("log", base=2)
    ticks = sorted(sizes, reverse=True)
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(t) for t in ticks])
    ax.set_xlim(max(ticks) * 1.3, min(ticks) / 1.3)
    ax.set(xlabel="images per batch", ylabel=ylabel, title=title or "batch-size sensitivity")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# --- 06 multi-scale architectures: a feature pyramid, accuracy against object size ---------------


def plot_feature_pyramid(
    image: Tensor | np.ndarray,
    features: Mapping[str, Tensor | np.ndarray],
    *,
    title: str | None = None,
    scale: float = 2.3,
) -> Figure:
    """An image and what each level of a feature pyramid makes of it, drawn at its own resolution.

    Top row: the image, then the mean absolute activation over the channels of every level (where
    the level responds at all). Bottom row: one channel per level, the one whose activation varies
    most over the positions (a single "detector"). Pixels are drawn as blocks (no interpolation), so
    the 7x7 grid of a stride-32 level looks as coarse as it is. Each panel has its own colour scale.

    Args:
        image: The input, a ``(3, H, W)`` tensor or array (float in [0, 1] or uint8).
        features: ``{level_name: (C, H, W) or (1, C, H, W) tensor}``, finest first, e.g. the output of
            :func:`tutorial_lib.multiscale.feature_pyramid` for one image.
        title: Figure title.
        scale: Panel size in inches.

    Returns:
        The matplotlib figure.

    Raises:
        TypeError: If ``features`` is not a non-empty dict.
        ValueError: If a feature map is not 3-D (or 4-D with batch 1).
    """
    import matplotlib.pyplot as plt
    import numpy as np

    if not hasattr(features, "items") or not features:
        raise TypeError("features must be a non-empty dict {level_name: (C, H, W) tensor}")
    picture = _display_image(image[0] if hasattr(image, "ndim") and image.ndim == 4 else image)
    maps = {}
    for name, value in features.items():
        array = value.detach().float().cpu().numpy() if hasattr(value, "detach") else np.asarray(value, dtype=float)
        if array.ndim == 4 and array.shape[0] == 1:
            array = array[0]
        if array.ndim != 3:
            raise ValueError(f"features[{name!r}] must be (C, H, W) or (1, C, H, W), got shape {tuple(array.shape)}")
        maps[name] = array
    columns = len(maps) + 1
    fig, axes = plt.subplots(2, columns, figsize=(scale * columns, 2 * scale + 0.6 + (0.3 if title else 0)), squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][0].imshow(picture)
    axes[0][0].set_title(f"input {picture.shape[0]}x{picture.shape[1]}", fontsize=9)
    axes[1][0].axis("off")
    height = picture.shape[0]
    for col, (name, array) in enumerate(maps.items(), start=1):
        channels, rows, _ = array.shape
        stride = height / rows
        axes[0][col].imshow(np.abs(array).mean(axis=0), cmap="magma", interpolation="nearest")
        axes[0][col].set_title(f"{name}: mean |activation|\n{channels} ch, {rows}x{array.shape[2]}, stride {stride:g}", fontsize=9)
        best = int(np.argmax(array.reshape(channels, -1).std(axis=1)))
        axes[1][col].imshow(array[best], cmap="magma", interpolation="nearest")
        axes[1][col].set_title(f"{name}: channel {best}", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _merge_size_rows(rows: Iterable[Mapping[str, float]]) -> list[dict[str, float]]:
    """Rows of several splits as one list sorted by size; a bin present in two splits is pooled."""
    pooled = {}
    for row in rows:
        key = (float(row["size_min"]), float(row["size_max"]))
        hits, count = pooled.get(key, (0.0, 0))
        pooled[key] = (hits + row["accuracy"] * row["count"], count + row["count"])
    return [{"size_min": lo, "size_max": hi, "accuracy": hits / count, "count": count}
            for (lo, hi), (hits, count) in sorted(pooled.items())]


def plot_accuracy_by_size(
    results: Mapping[str, Sequence[Any]],
    *,
    train_range: tuple[int, int] | None = None,
    chance: float | None = None,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Accuracy against object size, one line per model, from ``evaluate(..., by="size")`` rows.

    Each model's value is a list of runs (one per seed); each run is the list of ``by_size`` rows
    (``{"size_min", "size_max", "accuracy", "count"}``) of all the splits it was tested on, evaluated
    with shared bin edges. With one run the error bars are the binomial standard error of each bin,
    ``sqrt(p (1 - p) / count)`` (test-set sampling noise only); with several runs the line is their
    mean and the bars span the lowest to the highest run (seed-to-seed spread).

    Args:
        results: ``{model_name: [run_rows, ...]}``; a single run may be passed as its list of rows.
        train_range: ``(smallest, largest)`` object size seen in training, shaded on the plot.
        chance: Accuracy of guessing (e.g. 0.1 for ten classes), drawn as a dotted line.
        title: Axes title.
        ax: Axes to draw on; a new figure when ``None``.

    Returns:
        The matplotlib figure.

    Raises:
        TypeError: If ``results`` is not a non-empty dict of row lists.
        ValueError: If a model's runs were binned differently (no shared bins to compare).
    """
    import numpy as np

    if not hasattr(results, "items") or not results:
        raise TypeError("results must be a non-empty dict {model_name: [by_size rows of each run]}")
    fig, ax = _figure_and_axes(ax, (7.5, 3.8))
    if train_range is not None:
        low, high = train_range
        ax.axvspan(low - 0.5, high + 0.5, color="0.85", zorder=0, label=f"training sizes ({low}-{high} px)")
    if chance is not None:
        ax.axhline(chance, color="0.4", linestyle=":", linewidth=1, label=f"chance ({chance:g})")
    count = len(results)
    for i, (name, runs) in enumerate(results.items()):
        if not isinstance(runs, (list, tuple)) or not runs:
            raise TypeError(f"results[{name!r}] must be a non-empty list of by_size rows (or of such lists, one per run)")
        if isinstance(runs[0], dict):
            runs = [runs]
        runs = [_merge_size_rows(run) for run in runs]
        bins = [tuple((row["size_min"], row["size_max"]) for row in run) for run in runs]
        if len(set(bins)) != 1:
            raise ValueError(f"the runs of {name!r} have different size bins; evaluate them with the same size_bins edges")
        centers = np.array([(lo + hi) / 2 for lo, hi in bins[0]])
        # A small sideways offset per model keeps overlapping error bars readable.
        centers = centers + 0.25 * (i - (count - 1) / 2)
        acc = np.array([[row["accuracy"] for row in run] for run in runs])
        mean = acc.mean(axis=0)
        if len(runs) == 1:
            counts = np.array([row["count"] for row in runs[0]])
            err = np.sqrt(mean * (1 - mean) / counts)
            yerr = np.vstack([err, err])
            label = f"{name} (bars: ±1 standard error)"
        else:
            yerr = np.vstack([mean - acc.min(axis=0), acc.max(axis=0) - mean])
            label = f"{name} (mean of {len(runs)} seeds, bars: min-max)"
        # One line per contiguous stretch of bins, so gaps between splits are not bridged.
        ends = [0] + [k for k in range(1, len(bins[0])) if bins[0][k][0] > bins[0][k - 1][1] + 1e-9] + [len(bins[0])]
        for part, (start, stop) in enumerate(zip(ends[:-1], ends[1:])):
            ax.errorbar(centers[start:stop], mean[start:stop], yerr=yerr[:, start:stop], color=f"C{i}", marker="o",
                        markersize=4, capsize=3, label=label if part == 0 else None)
    ax.set_ylim(0, 1.02)
    ax.set(xlabel="object side (pixels)", ylabel="accuracy", title=title or "accuracy against object size")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# --- 08 tuning: range test, schedules, search (tutorial_lib.tuning) ------------------------------


def plot_lr_range_test(result: LRRangeTest, *, ax: Axes | None = None, title: str | None = None) -> Figure:
    """Training loss against learning rate from ``tutorial_lib.tuning.lr_range_test`` (log x axis).

    The raw loss is drawn faint, the smoothed loss bold; dashed lines mark ``suggested_lr`` (steepest
    descent) and ``min_loss_lr / 10``. The y axis stops a little above the starting loss so that the
    divergence at the end does not flatten the interesting part.

    Args:
        result: an ``LRRangeTest``.
        ax: axes to draw on; a new figure when ``None``.
        title: axes title.

    Returns:
        The matplotlib figure.
    """
    if not all(hasattr(result, a) for a in ("lrs", "losses", "smoothed", "suggested_lr", "min_loss_lr")):
        raise TypeError(f"result must be what tutorial_lib.tuning.lr_range_test returns, got {type(result).__name__}")
    fig, ax = _figure_and_axes(ax, (6.5, 3.6))
    ax.plot(result.lrs, result.losses, color="C0", alpha=0.3, linewidth=1, label="loss (raw)")
    ax.plot(result.lrs, result.smoothed, color="C0", linewidth=2, label="loss (smoothed)")
    ax.axvline(result.suggested_lr, color="C2", linestyle="--", label=f"steepest descent: {result.suggested_lr:.2g}")
    ax.axvline(result.min_loss_lr / 10, color="C1", linestyle=":", label=f"min-loss rate / 10: {result.min_loss_lr / 10:.2g}")
    ax.set_xscale("log")
    import numpy as np

    low = min(min(result.smoothed), float(np.percentile(result.losses, 5)))
    high = max(result.smoothed[: max(3, len(result.smoothed) // 10)])  # the early, untrained loss
    ax.set_ylim(low - 0.1 * (high - low) - 1e-3, high + 0.4 * (high - low) + 1e-3)
    ax.set(xlabel="learning rate", ylabel="training loss", title=title or "learning-rate range test")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_lr_schedules(
    curves: Mapping[str, Iterable[float]], *, ax: Axes | None = None, title: str | None = None, log: bool = False
) -> Figure:
    """Learning rate against step, one line per schedule (all on one axes).

    Args:
        curves: ``{label: [lr of each step]}``, e.g. from ``tutorial_lib.tuning.schedule_curve`` or
            ``History.step_lr``.
        ax: axes to draw on; a new figure when ``None``.
        title: axes title.
        log: logarithmic y axis (shows the tails of one-cycle and step).

    Returns:
        The matplotlib figure.
    """
    if not hasattr(curves, "items") or not curves:
        raise TypeError("curves must be a non-empty dict {label: [learning rate of each step]}")
    fig, ax = _figure_and_axes(ax, (6.5, 3.4))
    for i, (label, values) in enumerate(curves.items()):
        ax.plot(range(len(values)), list(values), color=f"C{i}", linewidth=2, label=label)
    if log:
        ax.set_yscale("log")
    ax.set(xlabel="optimizer step", ylabel="learning rate", title=title or "learning-rate schedules")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _check_rows(rows: Any) -> None:
    if not isinstance(rows, (list, tuple)) or not all(isinstance(r, dict) and "trial" in r and "state" in r for r in rows):
        raise TypeError("rows must be SearchResult.rows: a list of dicts with 'trial', 'state', 'value' and 'curve'")


def plot_search_history(rows: Sequence[Mapping[str, Any]], *, ax: Axes | None = None, title: str | None = None) -> Figure:
    """Validation accuracy of each trial of ``tutorial_lib.tuning.search``, and the best so far.

    Complete trials are dots, pruned ones crosses at their last reported accuracy, failed ones
    (diverged) a mark at the bottom; the step line is the best complete trial so far.

    Args:
        rows: ``SearchResult.rows``.
        ax: axes to draw on; a new figure when ``None``.
        title: axes title.

    Returns:
        The matplotlib figure.
    """
    _check_rows(rows)
    fig, ax = _figure_and_axes(ax, (6.5, 3.4))
    rows = sorted(rows, key=lambda r: r["trial"])
    done = [r for r in rows if r["state"] == "complete"]
    pruned = [r for r in rows if r["state"] == "pruned" and r.get("curve")]
    failed = [r for r in rows if r["state"] == "fail"]
    ax.plot([r["trial"] for r in done], [r["value"] for r in done], "o", color="C0", label="complete")
    if pruned:
        ax.plot([r["trial"] for r in pruned], [r["curve"][-1] for r in pruned], "x", color="C3", markersize=8, label="pruned (last report)")
    best, xs, ys = None, [], []
    for r in rows:
        if r["state"] == "complete":
            best = r["value"] if best is None else max(best, r["value"])
        if best is not None:
            xs.append(r["trial"])
            ys.append(best)
    if xs:
        ax.step(xs, ys, where="post", color="C1", label="best so far")
    values = [r["value"] for r in done] + [r["curve"][-1] for r in pruned]
    if failed:
        bottom = min(values) if values else 0.0
        ax.plot([r["trial"] for r in failed], [bottom] * len(failed), "v", color="grey", label="failed (diverged)")
    ax.set(xlabel="trial", ylabel="validation accuracy", title=title or "search history")
    ax.set_xticks([r["trial"] for r in rows])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_search_params(
    rows: Sequence[Mapping[str, Any]], space: Mapping[str, tuple[float, float, str]], *, title: str | None = None
) -> Figure:
    """One panel per searched hyperparameter: its value against the trial's validation accuracy.

    Args:
        rows: ``SearchResult.rows``.
        space: ``SearchResult.space`` (``{name: (low, high, "log" | "linear")}``); log-scaled
            parameters get a log x axis.
        title: figure title.

    Returns:
        The matplotlib figure.
    """
    import matplotlib.pyplot as plt

    _check_rows(rows)
    if not hasattr(space, "items") or not space:
        raise TypeError("space must be SearchResult.space, a non-empty dict {name: (low, high, scale)}")
    names = list(space)
    fig, axes = plt.subplots(1, len(names), figsize=(3.0 * len(names), 3.0), sharey=True, squeeze=False)
    for ax, name in zip(axes[0], names):
        low, high, scale = space[name]
        done = [r for r in rows if r["state"] == "complete"]
        pruned = [r for r in rows if r["state"] == "pruned" and r.get("curve")]
        ax.plot([r[name] for r in done], [r["value"] for r in done], "o", color="C0", label="complete")
        if pruned:
            ax.plot([r[name] for r in pruned], [r["curve"][-1] for r in pruned], "x", color="C3", label="pruned")
        if scale == "log":
            from matplotlib.ticker import NullFormatter

            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())  # a decade or two: minor labels would overlap
        ax.set_xlim(low if scale == "log" else low - 0.05 * (high - low), high if scale == "log" else high + 0.05 * (high - low))
        ax.set_xlabel(name)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("validation accuracy")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title or "hyperparameters against validation accuracy")
    fig.tight_layout()
    return fig


# --- 07 multi-scale training: accuracy against test resolution ----------------------------------


def plot_resolution_sweep(
    results: Mapping[str, Mapping[str, Mapping[int, float]]],
    *,
    train_sizes: Mapping[str, Sequence[int]] | Sequence[int] | None = None,
    chance: float | None = None,
    title: str | None = None,
) -> Figure:
    """Accuracy against test resolution, one panel per test split and one line per model.

    Args:
        results: ``{model_name: {split: {test_size: accuracy}}}``, e.g. from evaluating
            ``Resized(model, size)`` at several sizes.
        train_sizes: ``{model_name: sizes}`` or one sequence for all: the training resolutions,
            marked on each line with hollow circles.
        chance: accuracy of guessing, drawn as a dotted line.
        title: figure title.

    Returns:
        The matplotlib figure.

    Raises:
        TypeError: if ``results`` is not a non-empty ``{model: {split: {size: accuracy}}}`` dict.
    """
    import matplotlib.pyplot as plt

    if not hasattr(results, "items") or not results or not all(hasattr(v, "items") and v for v in results.values()):
        raise TypeError("results must be a non-empty dict {model_name: {split: {test_size: accuracy}}}")
    splits = list(next(iter(results.values())))
    fig, axes = plt.subplots(1, len(splits), figsize=(3.6 * len(splits), 3.4), sharey=True, squeeze=False)
    for ax, split in zip(axes[0], splits):
        for i, (name, per_split) in enumerate(results.items()):
            if split not in per_split:
                continue
            sizes = sorted(int(s) for s in per_split[split])
            acc = [per_split[split][s] if s in per_split[split] else per_split[split][str(s)] for s in sizes]
            ax.plot(sizes, acc, marker="o", markersize=4, color=f"C{i}", label=name)
            trained = train_sizes.get(name) if isinstance(train_sizes, dict) else train_sizes
            for s in trained or ():
                if s in sizes:
                    ax.plot([s], [acc[sizes.index(s)]], marker="o", markersize=10, markerfacecolor="none",
                            color=f"C{i}")
        if chance is not None:
            ax.axhline(chance, color="0.4", linestyle=":", linewidth=1)
        ax.set(title=split, xlabel="test resolution (px)", ylim=(0, 1.02))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy")
    axes[0][-1].legend(fontsize=8, loc="lower right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
