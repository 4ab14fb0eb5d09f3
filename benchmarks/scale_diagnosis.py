"""Why does cpu-multiscale still misread a quarter of the small digits? (issue 14)

``cpu-multiscale`` (ResNet-18, width 16, small stem, trained at 24/32/48 px drawn per step, tested
with the softmax average over 24/32/48/64 px, BatchNorm recalibrated per size) reaches about 94% on
``test`` but only 71-76% on ``test-small`` (digits 9-14 px in the 64-px stored images, 0.14-0.22
of the side, against 0.30-0.55 in training). Two suspects:

* **resolution**: a small digit covers too few pixels for filters learnt on 7-26 px digits, and
  even the 64-px view of the recipe's test-time average shows it at only 9-14 px;
* **pooling**: global average pooling averages the last feature map over the whole image, so a
  digit that fills 2-5% of the area is diluted by background features. Max pooling, or GeM
  (generalised mean, Radenović, Tolias & Chum, "Fine-tuning CNN image retrieval with no human
  annotation", TPAMI 2019), weights the strongest responses instead.

For every seed and every global pooling (``model.pool``: avg, max, gem) this script trains
``cpu-multiscale`` as the CLI's ``train`` does, then measures on the three test splits:

1. ``recipe``: the recipe's own evaluation, recalibrated multi-scale TTA over its ``eval.test_sizes``
   (equal to the CLI's result for the same seed), with accuracy by object-size bin;
2. ``single_size``: one input size at a time, BatchNorm recalibrated at that size on training images
   (``recalibrate_at``, the recipe's batch size and seed): do more pixels alone read small digits?
3. ``oracle_crop``: each digit cropped by its known box, grown so the digit fills the same fraction
   of the crop as a training digit fills a training image (the geometric centre of
   ``OBJECT_SIZE_FRACTIONS["train"]``, 0.41), clamped to the image (the window is shifted inside it;
   a window larger than the image is padded with the mean colour of the image outside the box),
   resized to ``--base-size`` (32 px, the recipe's middle training size) and read with the 32-px
   statistics. No method that does not know the box can beat it: the upper bound for any scale
   method on this data;
4. ``scale_channels``: ``ScaleChannelNetwork`` (Jansson & Lindeberg, "Scale-invariant scale-channel
   networks: deep networks that generalise to previously unseen scales", J. Math. Imaging Vision 64,
   2022) around the trained network, no retraining: the image resized to 32 px, then channels at
   factors ``--scales`` (16/32/64 px in ``rescale`` mode; a zoomed-out, whole and 2x-zoomed centre at
   32 px in ``foveated`` mode), logits pooled by max or mean over scales. BatchNorm: every channel
   gets its own copy of the network recalibrated on training images passed through that very channel
   (``Resized(ScaleChannelNetwork(copy, (s,), mode=m), 32)``), since after multi-scale training the
   running statistics match none of the channel sizes. The factor-1 channel is exactly the 32-px
   single-size network. MACs per image are given as a ratio to one 32-px pass (``count_flops``).

The verdict (last line) compares, on ``test-small`` and averaged over seeds: the gap from the
recipe's evaluation to the oracle crop; the part of it closed by the best single size with average
pooling (resolution); the part closed by the recipe's evaluation with the best other pooling
(pooling); and the part closed by the best single size under the best other pooling (both
together: more pixels help only if the pooling does not average the enlarged digit away). A suspect
is convicted when it closes at least half of the gap; both together when neither alone does but the
combination does. ``--summarize FILE`` recomputes the summary and verdict of a stored file. The best single size is
chosen on the test split itself: this is a diagnosis, not a model selection.

Writes one JSON (default ``benchmarks/results/scale_diagnosis.json``, rewritten after every run) with
the machine, the command, the settings and one record per seed and pooling; prints a summary table
(mean +- standard deviation over seeds) and, last, the verdict. Full run (per run: one
``cpu-multiscale`` training plus about four times the recipe's own evaluation time)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/scale_diagnosis.py --seeds 0 1 2

Quick check of the plumbing (about three minutes on a busy 2-core machine)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/scale_diagnosis.py --seeds 0 --pools avg max \\
        --num-samples 512 --epochs 1 --num-test 200 --out /tmp/scale_diagnosis.json
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from compare_recipes import _machine as recipes_machine  # same folder: run as a script
from compare_recipes import _write
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from tutorial_lib.cost import count_flops
from tutorial_lib.data import DEFAULT_NUM_SAMPLES, DIGIT_SPLITS, OBJECT_SIZE_FRACTIONS, batches, load_dataset, to_float_images
from tutorial_lib.env import choose_device, environment_report, seed_everything
from tutorial_lib.models import POOL_NAMES
from tutorial_lib.multiscale import SCALE_MODE_NAMES, SCALE_POOL_NAMES, MultiScaleTTA, Resized, ScaleChannelNetwork, recalibrated_tta, resize_batch
from tutorial_lib.norm import recalibrate_bn
from tutorial_lib.recipes import build_run, get_recipe, recalibrated, with_overrides
from tutorial_lib.train import FitConfig, evaluate, fit, uses_channels_last

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "scale_diagnosis.json"
RECIPE = "cpu-multiscale"
# The CLI's test splits (cli._test_splits for multiscale-digits).
SPLITS = tuple(s for s in DIGIT_SPLITS if s.startswith("test"))
# Images per forward pass in this script's own evaluations (no effect on the result): about 64 at
# 32 px, fewer at larger sizes. On the 2-core machine (1 thread) a 128-px pass runs 1.4x faster per
# image in batches of 4-16 than of 256: the activations then stay in cache.
EVAL_PIXELS = 64 * 32 * 32
NUM_RECAL_BATCHES = 50  # recalibrated_tta's default, which the recipe's evaluation uses


def _machine() -> str:
    """The machine in one line: compare_recipes.py's, plus the thread count the timings ran on."""
    return f"{recipes_machine()}, {torch.get_num_threads()} torch thread(s)"


def _logits(model: nn.Module, data: Any, size: int) -> Tensor:
    """The model's logits on every item of ``data``, in order (eval mode, no autograd); ``size``: the side it computes at."""
    batch_size = max(4, EVAL_PIXELS // size**2)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    try:
        with torch.inference_mode():
            for images, _ in batches(data, batch_size, device, channels_last=uses_channels_last(model)):
                out.append(model(images).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(out)


def _accuracy(logits: Tensor, labels: Tensor) -> float:
    return (logits.argmax(dim=1) == labels).float().mean().item()


def _crop_start(centre: float, window: int, side: int) -> int:
    """First pixel of a ``window`` centred on ``centre``, shifted to lie inside ``[0, side)`` (or to cover it)."""
    low, high = min(0, side - window), max(0, side - window)
    return min(max(round(centre - window / 2), low), high)


def oracle_crops(data: Any, fraction: float, size: int) -> Tensor:
    """Every digit cropped by its box grown to ``side / fraction``, resized to ``size``: float images ``(N, 3, size, size)``."""
    images, boxes = data.images, data.boxes
    side = images.shape[-1]
    out = torch.empty(len(images), images.shape[1], size, size)
    for i in range(len(images)):
        x0, y0, x1, y1 = boxes[i].tolist()
        window = max(1, round(max(x1 - x0, y1 - y0) / fraction))
        image = to_float_images(images[i])
        outside = torch.ones(side, side, dtype=torch.bool)
        outside[y0:y1, x0:x1] = False
        colour = image[:, outside].mean(dim=1) if outside.any() else image.mean(dim=(1, 2))
        left, top = _crop_start((x0 + x1) / 2, window, side), _crop_start((y0 + y1) / 2, window, side)
        canvas = colour[:, None, None].repeat(1, window, window)
        ix0, ix1, iy0, iy1 = max(left, 0), min(left + window, side), max(top, 0), min(top + window, side)
        canvas[:, iy0 - top:iy1 - top, ix0 - left:ix1 - left] = image[:, iy0:iy1, ix0:ix1]
        out[i] = resize_batch(canvas[None], size)[0]
    return out


def train_run(seed: int, pool: str, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Train ``cpu-multiscale`` with ``model.pool = pool`` exactly as ``python -m tutorial_lib train`` does.

    Same code path as ``tutorial_lib.cli._cmd_train``, step for step and in the same order (the order
    matters: building the model draws its initial weights from the generator ``seed_everything``
    seeded): the recipe with the flags' overrides (``with_overrides``; ``--num-samples`` and
    ``--epochs`` are the CLI's flags of those names), ``FitConfig(**recipe["fit"], seed=...)``,
    ``seed_everything``, the training split with ``dict(recipe["data"], seed=seed)``, ``build_run``,
    the test splits with the same options (``num_samples`` replaced by ``--num-test``; its default
    is the splits' default size, which the CLI loads), ``fit`` with a run folder and no progress bar
    on the CLI's default device, then ``recalibrated`` and ``evaluate(..., by="size")`` in
    ``measure``. So, with ``--num-test`` at its default, the ``recipe`` accuracies equal the CLI's
    ``train --dataset multiscale-digits --recipe cpu-multiscale --seed S`` for ``pool="avg"`` (the
    ResNet's default), on the same machine and thread count. Checked with ``--seeds 1 --pools avg --num-samples 512
    --epochs 1 --num-test 512`` against the CLI with ``--num-samples 512 --epochs 1``: the same accuracy,
    loss (to all digits) and size bins on all three splits.
    """
    overrides = {"model.pool": pool, "seed": seed, "data.num_samples": args.num_samples, "fit.epochs": args.epochs}
    recipe = with_overrides(get_recipe(RECIPE), overrides)
    config = FitConfig(**recipe["fit"], seed=recipe["seed"])
    seed = seed_everything(recipe["seed"])
    data_options = dict(recipe["data"], seed=seed)
    train_data = load_dataset("multiscale-digits", "train", **data_options)
    model, evaluated = build_run(recipe, len(train_data.classes))
    tests = {split: load_dataset("multiscale-digits", split, **dict(data_options, num_samples=args.num_test)) for split in SPLITS}
    with tempfile.TemporaryDirectory(prefix="scale_diagnosis_") as run_dir:
        history = fit(model, train_data, config, out_dir=run_dir, device=device, progress=False)
    return {"recipe": recipe, "model": model, "evaluated": evaluated, "train_data": train_data, "tests": tests, "history": history}


def measure(run: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Measurements 1-4 of the module docstring on one trained network, with their times."""
    recipe, model, train_data, tests = run["recipe"], run["model"], run["train_data"], run["tests"]
    recal = {"batch_size": recipe["fit"].get("batch_size", 128), "seed": recipe.get("seed", 0)}  # what recipes.recalibrated passes
    seconds: dict[str, float] = {}
    labels = {split: data.labels for split, data in tests.items()}

    # 1. The recipe's evaluation: the CLI's two calls. Forward hooks on the per-size networks keep
    # each size's logits on the way (they only read outputs), so sizes the TTA holds cost nothing
    # more as single sizes.
    start = time.perf_counter()
    tta = recalibrated(recipe, model, run["evaluated"], train_data)
    seconds["recipe_recalibrate"] = time.perf_counter() - start
    if not isinstance(tta, MultiScaleTTA) or tta.flip or len({id(tta.network(s)) for s in tta.sizes}) != len(tta.sizes):
        raise ValueError(f"{RECIPE} is expected to evaluate with recalibrated multi-scale TTA, without flips")
    captured: dict[int, list[Tensor]] = {size: [] for size in tta.sizes}
    handles = [tta.network(size).register_forward_hook(lambda _m, _i, out, size=size: captured[size].append(out.float().cpu()))
               for size in tta.sizes]
    recipe_eval: dict[str, Any] = {}
    single_logits: dict[int, dict[str, Tensor]] = {size: {} for size in tta.sizes}
    start = time.perf_counter()
    try:
        for split, data in tests.items():
            for chunks in captured.values():
                chunks.clear()
            recipe_eval[split] = evaluate(tta, data, by="size")
            for size in tta.sizes:
                single_logits[size][split] = torch.cat(captured[size])
    finally:
        for handle in handles:
            handle.remove()
    seconds["recipe_evaluate"] = time.perf_counter() - start

    # 2. Single sizes, each with its own recalibrated copy (recalibrated_tta's per-size copies).
    networks = {size: tta.network(size) for size in tta.sizes}
    extra = sorted((set(args.sizes) | {args.base_size}) - set(tta.sizes))
    start = time.perf_counter()
    if extra:
        more = recalibrated_tta(model, train_data, extra, num_batches=NUM_RECAL_BATCHES, **recal)
        networks.update({size: more.network(size) for size in extra})
    seconds["single_recalibrate"] = time.perf_counter() - start
    start = time.perf_counter()
    for size in extra:
        single_logits[size] = {split: _logits(Resized(networks[size], size), data, size) for split, data in tests.items()}
    seconds["single_evaluate"] = time.perf_counter() - start
    single = {str(size): {split: _accuracy(single_logits[size][split], labels[split]) for split in tests}
              for size in sorted(single_logits)}

    # 3. The oracle crop, read with the base size's statistics.
    low, high = recipe["data"].get("object_size") or OBJECT_SIZE_FRACTIONS["train"]
    fraction = math.sqrt(low * high)
    start = time.perf_counter()
    oracle = {}
    for split, data in tests.items():
        crops = TensorDataset(oracle_crops(data, fraction, args.base_size), data.labels)
        oracle[split] = _accuracy(_logits(networks[args.base_size], crops, args.base_size), labels[split])
    seconds["oracle_evaluate"] = time.perf_counter() - start

    # 4. Scale channels without retraining, one recalibrated copy per channel. The factor-1 channel
    # sees resize_batch(x, base) unchanged in both modes, and its recalibration would read exactly
    # the batches recalibrate_at(copy, base) read: it is the base single size's network and logits.
    scales = tuple(args.scales)
    _check_scale_channels(model, to_float_images(tests[SPLITS[0]].images[:8]), scales, args.base_size)
    seconds["channels_recalibrate"] = seconds["channels_evaluate"] = 0.0
    channels: dict[str, Any] = {}
    for mode in SCALE_MODE_NAMES:
        stacked = {split: [] for split in tests}
        for scale in scales:
            if scale == 1:
                for split in tests:
                    stacked[split].append(single_logits[args.base_size][split])
                continue
            start = time.perf_counter()
            channel = Resized(ScaleChannelNetwork(copy.deepcopy(model), (scale,), mode=mode), args.base_size)
            recalibrate_bn(channel, train_data, NUM_RECAL_BATCHES, **recal)
            seconds["channels_recalibrate"] += time.perf_counter() - start
            start = time.perf_counter()
            for split, data in tests.items():
                stacked[split].append(_logits(channel, data, max(channel.model.channel_sizes(args.base_size))))
            seconds["channels_evaluate"] += time.perf_counter() - start
        for scale_pool in SCALE_POOL_NAMES:
            channels[f"{scale_pool}/{mode}"] = {split: _accuracy(_pool_scales(torch.stack(stacked[split]), scale_pool), labels[split])
                                                for split in tests}

    base_macs = count_flops(model, args.base_size)["macs"]
    macs = {"recipe": sum(count_flops(model, s)["macs"] for s in tta.sizes) / base_macs,
            "single_size": {str(s): count_flops(model, s)["macs"] / base_macs for s in sorted(single_logits)},
            "oracle_crop": 1.0,
            "scale_channels": {f"{p}/{m}": count_flops(ScaleChannelNetwork(model, scales, pool=p, mode=m).eval(), args.base_size)["macs"] / base_macs
                               for m in SCALE_MODE_NAMES for p in SCALE_POOL_NAMES}}
    return {"recipe": recipe_eval, "single_size": single, "oracle_crop": oracle, "oracle_fraction": round(fraction, 4),
            "scale_channels": channels, "macs_ratio": macs, "seconds": {k: round(v, 1) for k, v in seconds.items()}}


def _pool_scales(logits: Tensor, pool: str) -> Tensor:
    """``ScaleChannelNetwork.forward``'s pooling of stacked channel logits ``(S, N, K)``."""
    return logits.amax(dim=0) if pool == "max" else logits.mean(dim=0)


def _check_scale_channels(model: nn.Module, images: Tensor, scales: tuple[float, ...], base: int) -> None:
    """One-channel networks, stacked and pooled here, give the library's ``ScaleChannelNetwork`` output."""
    x = resize_batch(images.to(next(model.parameters()).device), base)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for mode in SCALE_MODE_NAMES:
                stacked = torch.stack([ScaleChannelNetwork(model, (s,), mode=mode)(x) for s in scales])
                for pool in SCALE_POOL_NAMES:
                    reference = ScaleChannelNetwork(model, scales, pool=pool, mode=mode)(x)
                    if not torch.allclose(_pool_scales(stacked, pool), reference, atol=1e-5):
                        raise AssertionError(f"channel-by-channel {pool}/{mode} differs from ScaleChannelNetwork")
    finally:
        model.train(was_training)


def _measures(record: dict[str, Any]) -> dict[str, dict[str, float]]:
    """``{measure name: {split: accuracy}}`` of one run record, in table order."""
    rows = {"recipe TTA": {split: r["accuracy"] for split, r in record["recipe"].items()}}
    rows.update({f"single {size} px": accs for size, accs in record["single_size"].items()})
    rows["oracle crop"] = record["oracle_crop"]
    rows.update({f"channels {name}": accs for name, accs in record["scale_channels"].items()})
    return rows


def _macs(record: dict[str, Any]) -> dict[str, float]:
    m = record["macs_ratio"]
    return {"recipe TTA": m["recipe"], **{f"single {s} px": r for s, r in m["single_size"].items()}, "oracle crop": m["oracle_crop"],
            **{f"channels {name}": r for name, r in m["scale_channels"].items()}}


def summarize(runs: list[dict[str, Any]], pools: Sequence[str]) -> dict[str, dict[str, dict[str, list[float]]]]:
    """``{pool: {measure: {split: [mean, std]}}}`` over seeds (std 0 with one seed)."""
    summary: dict[str, dict[str, dict[str, list[float]]]] = {}
    for pool in pools:
        records = [_measures(r) for r in runs if r["pool"] == pool]
        if not records:
            continue
        summary[pool] = {}
        for name in records[0]:
            summary[pool][name] = {}
            for split in SPLITS:
                values = [r[name][split] for r in records]
                summary[pool][name][split] = [statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0]
    return summary


def verdict(summary: dict[str, dict[str, dict[str, list[float]]]]) -> str:
    """Which suspect the test-small means convict (see the module docstring), as one line."""
    ref = "avg" if "avg" in summary else next(iter(summary))
    small = {pool: {name: v["test-small"] for name, v in rows.items()} for pool, rows in summary.items()}
    tta, tta_std = small[ref]["recipe TTA"]
    oracle = small[ref]["oracle crop"][0]
    best_size = max((name for name in small[ref] if name.startswith("single")), key=lambda name: small[ref][name][0])
    best_single = small[ref][best_size][0]
    best_channels = max((name for name in small[ref] if name.startswith("channels")), key=lambda name: small[ref][name][0])
    facts = (f"test-small, {ref} pooling: recipe {tta:.1%}, best {best_size} {best_single:.1%}, "
             f"best {best_channels} {small[ref][best_channels][0]:.1%}, oracle crop {oracle:.1%}")
    gap = oracle - tta
    if gap <= max(0.01, 2 * tta_std):
        return f"verdict: neither suspect: the oracle crop is no better than the recipe ({facts})"
    resolution = (best_single - tta) / gap
    closed = [f"more pixels close {resolution:.0%} of the gap"]
    convicted = ["resolution"] if resolution >= 0.5 else []
    others = [pool for pool in small if pool != ref]
    if others:
        best_pool = max(others, key=lambda pool: small[pool]["recipe TTA"][0])
        pooling = (small[best_pool]["recipe TTA"][0] - tta) / gap
        closed.append(f"{best_pool} pooling closes {pooling:.0%}")
        if pooling >= 0.5:
            convicted.append("pooling")
        # The two suspects can act together: more pixels only help if the pooling does not average
        # the enlarged digit away. The best single size under the best other pooling measures that.
        pool_size = {pool: max((n for n in small[pool] if n.startswith("single")), key=lambda n: small[pool][n][0]) for pool in others}
        together_pool = max(others, key=lambda pool: small[pool][pool_size[pool]][0])
        together = (small[together_pool][pool_size[together_pool]][0] - tta) / gap
        closed.append(f"{together_pool} pooling at {pool_size[together_pool]} closes {together:.0%}")
        if together >= 0.5 and not convicted:
            convicted.append(f"both together ({together_pool} pooling with more pixels)")
    name = " and ".join(convicted) if convicted else "neither suspect alone"
    return f"verdict: {name} ({facts}; {', '.join(closed)})"


def print_summary(summary: dict[str, dict[str, dict[str, list[float]]]], runs: list[dict[str, Any]]) -> None:
    """Mean +- std over seeds, in percent, one block per pooling."""
    for pool, rows in summary.items():
        records = [r for r in runs if r["pool"] == pool]
        train = statistics.mean(r["train_seconds"] for r in records)
        evaluation = statistics.mean(sum(r["seconds"].values()) for r in records)
        print(f"\npool {pool} ({len(records)} seed(s); train {train:.0f} s, evaluation {evaluation:.0f} s per run)")
        print(f"  {'measure':<24}" + "".join(f"{split:>14}" for split in SPLITS) + f"{'MACs x32px':>12}")
        macs = _macs(records[0])
        for name, values in rows.items():
            cells = "".join(f"{100 * values[split][0]:>9.1f} ±{100 * values[split][1]:>3.1f}" for split in SPLITS)
            print(f"  {name:<24}{cells}{macs[name]:>12.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--pools", nargs="+", choices=POOL_NAMES, default=["avg", "max", "gem"], help="global poolings (model.pool)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 48, 64, 96, 128],
                        help="single test sizes in px (the recipe's TTA sizes are reported too, at no cost)")
    parser.add_argument("--scales", type=float, nargs="+", default=[0.5, 1.0, 2.0], help="scale-channel factors, relative to --base-size")
    parser.add_argument("--base-size", type=int, default=32, help="the training size: oracle crops and scale-channel inputs")
    parser.add_argument("--num-samples", type=int, default=None, help="training images (default: the recipe's, 16,000)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the recipe's, 3)")
    parser.add_argument("--num-test", type=int, default=DEFAULT_NUM_SAMPLES["test"], help="images per test split (default: all)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the JSON file to write")
    parser.add_argument("--summarize", type=Path, default=None, metavar="JSON",
                        help="train nothing: recompute the summary and verdict of a stored results file, and rewrite it")
    args = parser.parse_args(argv)
    if args.summarize is not None:
        results = json.loads(args.summarize.read_text())
        pools = list(dict.fromkeys(r["pool"] for r in results["runs"]))
        results["summary"] = summarize(results["runs"], pools)
        results["verdict"] = verdict(results["summary"])
        _write(args.summarize, results)
        print_summary(results["summary"], results["runs"])
        print(results["verdict"])
        return 0
    argv = sys.argv[1:] if argv is None else argv
    threads = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} " if "OMP_NUM_THREADS" in os.environ else ""

    device = choose_device()  # the CLI's default device
    results: dict[str, Any] = {
        "description": __doc__.splitlines()[0],
        "machine": _machine(),
        "environment": environment_report(),
        "command": threads + shlex.join([".venv/bin/python", "benchmarks/scale_diagnosis.py", *argv]),
        "settings": {"recipe": RECIPE, **{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}},
        "runs": [],
    }
    for seed in args.seeds:
        for pool in args.pools:  # alternate the poolings, so load changes hit them alike
            start = time.perf_counter()
            run = train_run(seed, pool, args, device)
            record = {"seed": seed, "pool": pool, "train_seconds": round(run["history"].train_seconds, 1),
                      "steps": len(run["history"].step_loss), **measure(run, args)}
            record["wall_seconds"] = round(time.perf_counter() - start, 1)
            results["runs"].append(record)
            _write(args.out, results)
            small = _measures(record)
            print(f"seed {seed} pool {pool}: train {record['train_seconds']} s, evaluation {sum(record['seconds'].values()):.0f} s "
                  f"{record['seconds']}; test-small: " + ", ".join(f"{name} {acc['test-small']:.3f}" for name, acc in small.items()), flush=True)
    results["summary"] = summarize(results["runs"], args.pools)
    results["verdict"] = verdict(results["summary"])
    _write(args.out, results)
    print_summary(results["summary"], results["runs"])
    print(results["verdict"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
