"""Time the embedded dataset: generating every multiscale-digits split, then a cached load.

Generation is measured end to end in a fresh process, as a learner meets it the first time:
reading the sources (scikit-learn's digits, scikit-image's photos) is included in the "cold"
figure and excluded from the per-split "warm" figures. The cache goes to a temporary folder, so the
project's data/ folder is neither used nor changed.

Prints, per split, images per second; then the time of a cached load of the train split (target
< 1 s); and last the overall generation rate in images per second (target >= 5,000 on a 2-core CPU).

    .venv/bin/python benchmarks/bench_data.py
    .venv/bin/python benchmarks/bench_data.py --image-size 32 --seed 1
"""

from __future__ import annotations

import argparse
import tempfile
import time

from tutorial_lib import data


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=64, help="square image side in px (default 64)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--loads", type=int, default=3, help="cached loads to time; the median is reported")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    counts = dict(data.DEFAULT_NUM_SAMPLES)
    total_images = sum(counts.values())

    # Cold start: the sources are read once per process (digits CSV, photos decoded and resized).
    start = time.perf_counter()
    data._digits()
    data._background_bank(args.image_size, "train")
    data._background_bank(args.image_size, "test")
    sources = time.perf_counter() - start
    print(f"reading sources (digits + {len(data._BACKGROUNDS)} backgrounds): {sources:.2f} s")

    rendering = 0.0
    for split, count in counts.items():
        start = time.perf_counter()
        data.generate_multiscale_digits(split, seed=args.seed, image_size=args.image_size, num_samples=count)
        elapsed = time.perf_counter() - start
        rendering += elapsed
        low, high = data.object_size_range(split, args.image_size)
        print(f"{split:>10}: {count:6d} images, objects {low}-{high} px, {elapsed:5.2f} s, {count / elapsed:8.0f} images/s")

    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        data.load_dataset("multiscale-digits", "train", root=root, seed=args.seed, image_size=args.image_size)
        first = time.perf_counter() - start
        loads = []
        for _ in range(args.loads):
            start = time.perf_counter()
            train = data.load_dataset("multiscale-digits", "train", root=root, seed=args.seed, image_size=args.image_size)
            loads.append(time.perf_counter() - start)
        loads.sort()
        size_mb = train.images.numel() / 1e6
        print(f"train split, first load (render + hash + save): {first:.2f} s")
        print(f"train split, cached load (read + sha256 check, {size_mb:.0f} MB): {loads[len(loads) // 2]:.2f} s")

    print(f"cold generation, sources included: {total_images / (sources + rendering):.0f} images/s")
    print(f"generation: {total_images / rendering:.0f} images/s")


if __name__ == "__main__":
    main()
