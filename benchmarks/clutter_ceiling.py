"""Where does a recipe's test error come from: new handwriting, new backgrounds, or the clutter?

``multiscale-digits``' test split differs from training in two ways: its digits are other
handwritten digits (the last 360 of scikit-learn's 1,797) and its backgrounds come from a region of
every photo that training never sees. This script takes the gap apart for one recipe and seed:

1. **Clutter kept, one factor swapped.** The recipe's network (trained like the CLI does, or loaded
   from a CLI run folder with ``--run``) is tested on four renderings of 2,000 test images that
   differ only in where the digits and the backgrounds come from
   (``generate_multiscale_digits(..., digit_pool=, background_region=)``).
2. **Clutter removed.** The same network is trained again, with the same settings, on the training
   split's digits *without* background: each image re-drawn as a white digit on black, at the very
   size and place it has in the training split. It is tested on the test split's digits re-drawn the
   same way. This measures how well the network reads *new handwriting* when nothing else is hard.
3. **Where the errors sit.** Test errors of (1) grouped by source digit: how many of the 360 test
   digits hold half of them, and which (notebook 08 shows them).

Prints each figure and writes them to ``benchmarks/results/clutter_ceiling.json``. About 4 minutes
on the 2-core reference machine (two trainings of the recipe plus the evaluations)::

    .venv/bin/python benchmarks/clutter_ceiling.py --recipe cpu-tuned --seed 0
    .venv/bin/python benchmarks/clutter_ceiling.py --run DIR   # reuse a CLI run's checkpoint for (1)
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from tutorial_lib import data
from tutorial_lib.env import seed_everything
from tutorial_lib.recipes import build_run, get_recipe
from tutorial_lib.train import evaluate, fit, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RESULTS = ROOT / "benchmarks" / "results" / "clutter_ceiling.json"


def clean_copy(rendered: dict[str, np.ndarray]) -> TensorDataset:
    """The same digits at the same sizes and places, white on black: no background, halo or colour.

    Uses the generator's own upsampling and opacity ramp, so a stroke is exactly as thick as in the
    cluttered image.
    """
    digit_images, _ = data._digits()
    images = np.zeros_like(rendered["images"])
    for i, (index, (x0, y0, x1, _)) in enumerate(zip(rendered["digit_indices"], rendered["boxes"])):
        size = int(x1 - x0)
        alpha = data._upsample_digits(digit_images[index][None], size)[0]
        alpha = np.clip((alpha - data._ALPHA_LOW) / (data._ALPHA_HIGH - data._ALPHA_LOW), 0.0, 1.0)
        images[i, :, y0 : y0 + size, x0 : x0 + size] = np.rint(alpha * 255.0).astype(np.uint8)
    return TensorDataset(torch.from_numpy(images), torch.from_numpy(rendered["labels"]))


def as_dataset(rendered: dict[str, np.ndarray]) -> TensorDataset:
    return TensorDataset(torch.from_numpy(rendered["images"]), torch.from_numpy(rendered["labels"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="cpu-tuned")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run", type=Path, help="a CLI run folder of the same recipe and seed: reuse its checkpoint")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    args = parser.parse_args()

    recipe = get_recipe(args.recipe)
    recipe["seed"] = args.seed
    seed = seed_everything(args.seed)
    size = recipe["data"].get("image_size", 64)
    train_split = data.generate_multiscale_digits("train", seed=seed, image_size=size)
    record: dict = {"recipe": args.recipe, "seed": args.seed, "torch": torch.__version__, "python": platform.python_version()}

    # 1. The cluttered network, on four renderings of the test split.
    model, evaluated = build_run(recipe, 10)
    if args.run is not None:
        model.load_state_dict(load_checkpoint(args.run / "checkpoint.pt")["model"])
    else:
        start = time.perf_counter()
        fit(model, as_dataset(train_split), **recipe["fit"], seed=seed, progress=False)
        record["train_seconds"] = round(time.perf_counter() - start, 1)
    swaps = {}
    for digits in ("train", "test"):
        for region in ("train", "test"):
            rendered = data.generate_multiscale_digits("test", seed=seed, image_size=size, digit_pool=digits, background_region=region)
            name = f"{digits} digits, {region} backgrounds"
            result = evaluate(evaluated, as_dataset(rendered), return_predictions=True)
            swaps[name] = result["accuracy"]
            print(f"cluttered network, {name}: accuracy {swaps[name]:.4f}", flush=True)
            if digits == region == "test":
                test_split, predicted = rendered, result["predictions"].numpy()
    record["cluttered"] = swaps

    # 3. Errors by source digit, on the real test split.
    hit = predicted == test_split["labels"]
    sources, inverse = np.unique(test_split["digit_indices"], return_inverse=True)
    errors = np.bincount(inverse, weights=~hit, minlength=len(sources)).astype(int)
    counts = np.bincount(inverse, minlength=len(sources))
    order = np.argsort(-errors, kind="stable")
    half = int(np.searchsorted(np.cumsum(errors[order]), errors.sum() / 2) + 1)
    record["errors"] = {"total": int(errors.sum()), "source_digits_in_test": len(sources),
                        "source_digits_with_an_error": int((errors > 0).sum()),
                        "source_digits_holding_half_the_errors": half,
                        "source_digits_never_right": int(((errors > 0) & (errors == counts)).sum())}
    print(f"test errors: {record['errors']}", flush=True)
    # The digits that hold half the errors: index into load_digits(), label, images, errors, and
    # the network's most frequent wrong answer for them.
    record["hardest_digits"] = [
        {"digit_index": int(sources[i]), "label": int(test_split["labels"][inverse == i][0]), "images": int(counts[i]),
         "errors": int(errors[i]), "most_frequent_wrong_answer": int(np.bincount(predicted[(inverse == i) & ~hit]).argmax())}
        for i in order[:half]
    ]

    # 2. The same network and settings, trained and tested without clutter.
    seed_everything(args.seed)
    clean_model, clean_evaluated = build_run(recipe, 10)
    start = time.perf_counter()
    fit(clean_model, clean_copy(train_split), **recipe["fit"], seed=seed, progress=False)
    record["clean_train_seconds"] = round(time.perf_counter() - start, 1)
    record["clean"] = {
        "test digits": evaluate(clean_evaluated, clean_copy(test_split))["accuracy"],
        "train digits (seen)": evaluate(clean_evaluated, clean_copy(data.generate_multiscale_digits(
            "test", seed=seed, image_size=size, digit_pool="train")))["accuracy"],
    }
    for name, accuracy in record["clean"].items():
        print(f"clean network, {name} without background: accuracy {accuracy:.4f}", flush=True)

    results = json.loads(args.results.read_text()) if args.results.exists() else {"description": __doc__.splitlines()[0], "runs": []}
    results["runs"].append(record)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=1) + "\n")
    print(f"-> {args.results}")


if __name__ == "__main__":
    main()
