import sys
sys.path.insert(0, "/tmp/gen")
from nbgen import md, code, save

cells = []
A = cells.append

A(md(r"""
# 07 · Multi-scale training: one network for small, medium and large objects

A convolutional network with global average pooling accepts an image of any size, so it is
tempting to believe it is *scale invariant*. It is not: its filters are a fixed number of pixels
wide, so it recognises an object at the pixel sizes it was trained on, and at little else. This
notebook first measures that failure on `multiscale-digits`, then fixes it with the tools of
`tutorial_lib.multiscale`, one at a time and each measured: changing the test resolution (the
FixRes effect), recalibrating BatchNorm at that resolution, training at several resolutions
(random or progressive), giving each training resolution its own BatchNorm, and averaging
predictions over several test resolutions. It ends with one table of every method, its accuracy
on the three test splits, its training time and its inference cost, each row with the CLI command
that reproduces it.

**Learning objectives.** After this notebook you can

1. explain why a CNN trained at one resolution fails on objects of another pixel size, and predict
   which test resolution undoes a known scale shift;
2. train with several resolutions (a random draw per step, or a progressive schedule) and say why
   the draw depends only on `(seed, step)`;
3. say what BatchNorm's statistics have to do with resolution, and use recalibration and per-scale
   BatchNorm to handle it;
4. implement multi-scale testing (averaging softmax outputs over resolutions) and weigh its
   accuracy against its inference cost.

**Prerequisites.** Notebooks 00 (the dataset and its splits), 02 (`fit`), 05 (BatchNorm, its running
statistics and `recalibrate_bn`) and 06 (object scale and receptive fields).

**Expected run time:** about three minutes on a 2-core laptop CPU (four short trainings).
"""))

A(md(r"""
## Setup
"""))

A(code(r"""
import copy
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from tutorial_lib import checks, viz
from tutorial_lib.cost import count_flops
from tutorial_lib.data import OBJECT_SIZE_FRACTIONS, load_dataset, object_size_range
from tutorial_lib.env import choose_device, seed_everything
from tutorial_lib.models import resnet18
from tutorial_lib.multiscale import (MultiScaleTTA, PerScaleBatchNorm2d, ProgressiveResolution, RandomResolution,
                                     Resized, convert_to_per_scale_bn, recalibrate_at, resize_batch)
from tutorial_lib.train import evaluate, fit
"""))

A(md(r"""
## Parameters

The images are stored at `DATA_SIZE` = 64 pixels and every model sees them resized to the
resolution it trains or tests at. Storing them larger than the training resolution matters: a
small digit tested at 64 px still has all its detail. The defaults train four ResNet-18s of width
16 (the `cpu-baseline` network) on 8,000 images for 3 epochs, a quarter of the full recipe's budget,
so that the notebook runs in about three minutes. The full-budget recipes are at the end
(section 8) with their CLI commands. On a GPU, set `DEVICE = "cuda"`, `NUM_TRAIN = 16000`,
`EPOCHS = 8` and `NUM_TEST = 2000`.
""", ))

A(code(r"""
SEED = 0
DEVICE = None                  # None: automatic (cuda > mps > cpu), or "cpu", "cuda", "mps"
DATA_SIZE = 64                 # side of the stored images, in pixels
TRAIN_SIZE = 32                # the single-scale resolution (the cpu-baseline recipe's)
MULTI_SIZES = (24, 32, 40)     # the resolutions of multi-resolution training
TEST_SIZES = (16, 24, 32, 40, 48, 64)   # the test-resolution sweep
TTA_SIZES = (24, 32, 48, 64)   # resolutions averaged by multi-scale testing (the cpu-multiscale recipe's)
NUM_TRAIN = 8000               # training images (the split has 16,000)
NUM_TEST = 1000                # images per test split (each has 2,000)
WIDTH = 16                     # base width of the ResNet-18s
EPOCHS = 3                     # passes over the training images, per model
BATCH_SIZE = 64                # images per step (the cpu-baseline recipe's)
LR = 4e-3                      # AdamW peak learning rate, one-cycle schedule
""", tags=["parameters"]))

A(code(r"""
seed_everything(SEED)
device = choose_device(DEVICE)
print(f"device: {device}")

SPLITS = ("test-small", "test", "test-large")
train_data = load_dataset("multiscale-digits", "train", image_size=DATA_SIZE, num_samples=NUM_TRAIN, seed=SEED)
tests = {split: load_dataset("multiscale-digits", split, image_size=DATA_SIZE, num_samples=NUM_TEST, seed=SEED)
         for split in SPLITS}
print(train_data)
for data in tests.values():
    print(data)
"""))

A(md(r"""
## 1. The problem: a network trained at one scale

First the baseline of the series: one resolution, `TRAIN_SIZE` = 32 px. `fit(train_sizes=[32])`
resizes every 64-px batch to 32 px before the forward pass (with antialiasing, since it shrinks),
so the training objects are 30-55% of 32 pixels: 10-17 px wide. Every training run in this notebook
goes through the same small function, so the runs differ only in the options passed to it: same
initial weights (same seed), same batches in the same order, same optimizer and schedule.
"""))

A(code(r"""
def train(train_sizes, *, progressive=False, per_scale_bn=False):
    # One ResNet-18 of the cpu-baseline family, trained on train_data; returns (model, history).
    seed_everything(SEED)
    model = resnet18(num_classes=10, width=WIDTH, stem="small")
    if per_scale_bn:
        convert_to_per_scale_bn(model, train_sizes)
    history = fit(model, train_data, epochs=EPOCHS, batch_size=BATCH_SIZE, lr=LR, label_smoothing=0.1,
                  augment={"max_shift": 0.1}, train_sizes=list(train_sizes), progressive=progressive,
                  channels_last=True, seed=SEED, device=device)
    return model.eval(), history


models, histories = {}, {}
models["single-scale"], histories["single-scale"] = train([TRAIN_SIZE])
"""))

A(md(r"""
Test it the way it was trained, at 32 px, on the three splits, with accuracy broken down by object
size. `Resized(model, 32)` puts the resize in front of the model so that `evaluate` works
unchanged; the object sizes the dataset records are in pixels of the stored 64-px image, so the
plot rescales them to the pixels the network actually sees.
"""))

A(code(r"""
def size_rows(model, size, *, bins_per_split=4):
    # Accuracy by object size on every test split at test resolution `size`, sizes in network pixels.
    rows, accuracy = [], {}
    for split, data in tests.items():
        low, high = object_size_range(split, DATA_SIZE)
        edges = torch.linspace(low - 0.5, high + 0.5, bins_per_split + 1).tolist()
        result = evaluate(Resized(model, size), data, by="size", size_bins=edges)
        accuracy[split] = result["accuracy"]
        scale = size / DATA_SIZE
        rows += [dict(row, size_min=row["size_min"] * scale, size_max=row["size_max"] * scale)
                 for row in result["by_size"]]
    return rows, accuracy


rows, single_acc = size_rows(models["single-scale"], TRAIN_SIZE)
for split in SPLITS:
    print(f"{split:>10}: accuracy {single_acc[split]:.3f} at {TRAIN_SIZE} px")
fig = viz.plot_accuracy_by_size({"single-scale, tested at 32 px": rows}, train_range=object_size_range("train", TRAIN_SIZE),
                                chance=0.1, title="trained and tested at 32 px: accuracy against object size")
plt.show()
"""))

A(code(r"""
assert single_acc["test"] > 0.5, "the single-scale network should have learned the in-range split (5x chance)"
assert single_acc["test"] - max(single_acc["test-small"], single_acc["test-large"]) > 0.25
print("in range:", f"{single_acc['test']:.3f};", "out of range:",
      f"small {single_acc['test-small']:.3f}, large {single_acc['test-large']:.3f}")
""", tags=["nbval-check-output"]))

A(md(r"""
Inside the shaded band (the object sizes seen in training) the network does well; outside it,
accuracy collapses towards chance, on both sides. Same digits, same task, same network: only the
number of pixels an object covers changed. Global average pooling makes the *output* independent
of the image size, not the *features*: a 3×3 filter tuned to a stroke 2 pixels thick does not fire
on a stroke 1 pixel thick, and the deeper filters that combine strokes into digit parts are tuned
to parts of a certain size.
"""))

A(md(r"""
## 2. The test-resolution sweep: move the objects back into range

If a network only knows objects of 10-17 px, a split whose objects are 14-22% of the image needs a
*larger* test image to show them at that size, and a split of large objects a *smaller* one. The
arithmetic: an object covering a fraction *f* of the image is *f · s* pixels wide at test
resolution *s*.
"""))

A(code(r"""
print(f"{'split':>10} {'fraction':>11} | " + " ".join(f"{s:>7}" for s in TEST_SIZES))
for split in ("train",) + SPLITS:
    low, high = OBJECT_SIZE_FRACTIONS[split]
    ranges = [object_size_range(split, s) if s * low >= 4 else None for s in TEST_SIZES]
    cells = [f"{r[0]:>3}-{r[1]:<3}" if r else "   -   " for r in ranges]
    print(f"{split:>10} {low:.2f}-{high:.2f} | " + " ".join(cells))
"""))

A(md(r"""
In pixels, at each test resolution (columns): the training objects at 32 px are 10-17 px; the
small digits reach that range only at 64 px, the large ones at 16-24 px. Now measure it: the same
trained network, tested at every resolution of `TEST_SIZES`.
"""))

A(code(r"""
def sweep(model):
    # {split: {test_size: accuracy}} over TEST_SIZES.
    return {split: {size: evaluate(Resized(model, size), data)["accuracy"] for size in TEST_SIZES}
            for split, data in tests.items()}


sweeps = {"single-scale": sweep(models["single-scale"])}
for split, by_size in sweeps["single-scale"].items():
    best = max(by_size, key=by_size.get)
    print(f"{split:>10}: " + "  ".join(f"{s}px {a:.3f}" for s, a in by_size.items()) + f"   best: {best} px")
fig = viz.plot_resolution_sweep(sweeps, train_sizes=[TRAIN_SIZE], chance=0.1,
                                title="one network trained at 32 px, tested at every resolution")
plt.show()
"""))

A(code(r"""
best_size = {split: max(by_size, key=by_size.get) for split, by_size in sweeps["single-scale"].items()}
assert best_size["test-small"] > TRAIN_SIZE > best_size["test-large"], best_size
gain = {split: sweeps["single-scale"][split][best_size[split]] - single_acc[split] for split in SPLITS}
assert gain["test-small"] > 0.1 and gain["test-large"] > 0.1, gain
print("best test resolution:", best_size)
print("gain over testing at 32 px:", {split: round(g, 3) for split, g in gain.items()})
""", tags=["nbval-check-output"]))

A(md(r"""
Changing nothing but the test resolution recovers most of what was lost on both shifted splits:
the small digits are best read at a larger resolution, the large ones at a smaller one. This is
the effect Touvron et al. (2019, "Fixing the train-test resolution discrepancy", FixRes) measured
on ImageNet, where random-resized-crop augmentation makes training objects look larger than test
objects: the best test resolution is *higher* than the training one, and with a short fine-tuning
at the test resolution a ResNet-50 trained at 224 px reaches 79.8% top-1 (77.1% when trained at only
128 px). Notice two things in the plot. The curves are not symmetric around the matched size:
blurring (down-scaling) loses less than a too-small object does. And the small split, at 64 px,
does not reach the accuracy of `test` at 32 px even though its objects then have the training
pixel sizes: at 64 px the *background* is rendered with twice the detail the network ever saw,
which shifts the statistics every BatchNorm layer expects. That is the subject of the next section.

The catch is that this section cheated: it chose the resolution *per split*, knowing which split
holds small objects. A deployed model does not know the size of the object it is about to see.
Sections 4-7 remove the need to know.
"""))

A(md(r"""
## 3. BatchNorm recalibration at the test resolution

In evaluation mode a BatchNorm layer normalises with the running mean and variance it collected
during training, at the training resolution. At another resolution the same convolutions produce
other statistics (FixRes, section 3, measures this for the pooled features), so every layer
normalises with the wrong numbers. `recalibrate_at(model, data, size)` re-estimates them on
training images resized to `size`, every weight frozen (notebook 05's `recalibrate_bn`, behind a
resize). It needs no labels and takes seconds. Recalibrate a copy of the single-scale network at
each split's best resolution:
"""))

A(code(r"""
recalibrated = {}
for split, size in best_size.items():
    if size == TRAIN_SIZE:
        continue
    model = recalibrate_at(copy.deepcopy(models["single-scale"]), train_data, size, num_batches=30,
                           batch_size=BATCH_SIZE, device=device)
    recalibrated[split] = evaluate(Resized(model, size), tests[split])["accuracy"]
    print(f"{split:>10} at {size} px: {sweeps['single-scale'][split][size]:.3f} with the 32-px statistics, "
          f"{recalibrated[split]:.3f} recalibrated")
"""))

A(md(r"""
Where the test resolution is far from the training one, the statistics matter: recalibration is
free accuracy (it only touches buffers, not weights). It does not teach the network anything new:
the filters still only know one object scale, and the resolution must still be chosen per split.
"""))

A(md(r"""
## 4. Multi-resolution training

The fix at training time is to show the network objects at many pixel sizes: resize each training
batch to a resolution drawn from a set (Simonyan & Zisserman 2015, "scale jittering", section 3.1;
Howard 2013). At 24, 32 and 40 px (`MULTI_SIZES`) the training objects span 7 to 22 pixels instead of
10 to 17.

Which resolution does step *t* use? `RandomResolution` draws it from a hash of `(seed, step)`, not
from a random generator that advances as training runs. Two consequences: a resumed run draws
exactly the sizes the uninterrupted one would have drawn, without saving any state; and in
distributed data-parallel training every process draws the same size at the same step without a
single message between them, which matters because their batches must have one shape for the
gradient all-reduce to pair up.
"""))

A(code(r"""
draw_a, draw_b = RandomResolution(MULTI_SIZES, seed=SEED), RandomResolution(MULTI_SIZES, seed=SEED)
first = [draw_a(step) for step in range(24)]
print("steps 0-23:", first)
assert first == [draw_b(step) for step in range(24)], "two processes, same seed: same sizes"
assert draw_a(1000) == draw_b(1000) and [draw_a(s) for s in range(5)] == first[:5], "order of calls does not matter"
counts = {size: sum(draw_a(step) == size for step in range(3000)) / 3000 for size in MULTI_SIZES}
print("share of 3,000 steps per size:", {size: round(share, 3) for size, share in counts.items()})
"""))

A(md(r"""
Cost: a convolution's multiply-adds grow with the number of pixels, so a step at *s* pixels costs
about (*s*/32)² of a 32-px step. Averaged over the sizes drawn:
"""))

A(code(r"""
relative_cost = sum((size / TRAIN_SIZE) ** 2 for size in MULTI_SIZES) / len(MULTI_SIZES)
print(f"average cost of a step at {MULTI_SIZES} px: {relative_cost:.2f} x a {TRAIN_SIZE}-px step")
"""))

A(md(r"""
About the same cost as single-scale training (the `cpu-multiscale` recipe uses these sizes for
that reason; section 8). Train it with the same number of steps:
"""))

A(code(r"""
models["multi-resolution"], histories["multi-resolution"] = train(MULTI_SIZES)
sweeps["multi-resolution"] = sweep(models["multi-resolution"])
fig = viz.plot_resolution_sweep(sweeps, train_sizes={"single-scale": [TRAIN_SIZE], "multi-resolution": MULTI_SIZES},
                                chance=0.1, title="single-scale against multi-resolution training (circles: training sizes)")
plt.show()
"""))

A(code(r"""
for split in SPLITS:
    one, multi = sweeps["single-scale"][split], sweeps["multi-resolution"][split]
    print(f"{split:>10}: best single-scale {max(one.values()):.3f} ({max(one, key=one.get)} px), "
          f"best multi-resolution {max(multi.values()):.3f} ({max(multi, key=multi.get)} px)")
def band(by_size, keep=0.9):
    # The test resolutions at which a model keeps `keep` of its own best accuracy.
    best = max(by_size.values())
    return [size for size, accuracy in by_size.items() if accuracy >= keep * best]


print("resolutions keeping 90% of the best `test` accuracy: single-scale", band(sweeps["single-scale"]["test"]),
      "multi-resolution", band(sweeps["multi-resolution"]["test"]))
assert len(band(sweeps["multi-resolution"]["test"])) > len(band(sweeps["single-scale"]["test"]))
""", tags=["nbval-check-output"]))

A(md(r"""
The multi-resolution network's curves are wider: it keeps its accuracy over a broader band of
test resolutions, because it has seen objects over a broader band of pixel sizes. It is a more
scale-*tolerant* network, not a scale-*invariant* one: far from every training size it still fails.
"""))

A(md(r"""
## 5. Progressive resizing

Instead of a random size per step, go from small to large: `ProgressiveResolution` splits training
into equal phases, one per size, smallest first (fast.ai's DAWNBench ImageNet runs, Howard 2018;
Tan & Le 2021, EfficientNetV2, section 4, who also grow the augmentation strength with the size).
The cheap small images come first, while the network learns coarse shapes; the expensive large
ones come last. The schedule is again a pure function of the step:
"""))

A(code(r"""
total_steps = EPOCHS * (len(train_data) // BATCH_SIZE)
schedule = ProgressiveResolution(MULTI_SIZES, total_steps)
changes = [step for step in range(1, total_steps) if schedule(step) != schedule(step - 1)]
print(f"{total_steps} steps; size changes at steps {changes}:",
      [schedule(0)] + [schedule(step) for step in changes])
assert [schedule(0)] + [schedule(step) for step in changes] == sorted(MULTI_SIZES)
models["progressive"], histories["progressive"] = train(MULTI_SIZES, progressive=True)
sweeps["progressive"] = sweep(models["progressive"])
"""))

A(md(r"""
Same sizes, same number of steps at each (so the same cost), but the network ends training at the
largest size, and BatchNorm's running statistics, an exponential average dominated by the last
few hundred steps, describe the largest size only. The sweep in section 7 shows what that does.
"""))

A(md(r"""
## 6. Per-scale BatchNorm

In the multi-resolution network one set of BatchNorm statistics is averaged over three
resolutions, so it fits none of them exactly. RS-Nets (Wang et al., ECCV 2020) keep every
convolution shared and give each training resolution **private** BatchNorm statistics and affine
parameters. `convert_to_per_scale_bn(model, sizes)` replaces every `BatchNorm2d` by a
`PerScaleBatchNorm2d` holding one BatchNorm per size, and a forward pre-hook routes each batch to
the BatchNorm of the nearest training size. The cost is a few thousand parameters; the compute
is unchanged.
"""))

A(code(r"""
probe = resnet18(num_classes=10, width=WIDTH, stem="small")
plain_params = sum(p.numel() for p in probe.parameters())
convert_to_per_scale_bn(probe, MULTI_SIZES)
per_scale_params = sum(p.numel() for p in probe.parameters())
print(f"parameters: {plain_params:,} -> {per_scale_params:,} (+{per_scale_params - plain_params:,}, "
      f"{100 * (per_scale_params / plain_params - 1):.1f}%)")

probe.train()
with torch.no_grad():
    for size in MULTI_SIZES:              # one batch per size, each routed to its own BatchNorm
        probe(torch.rand(8, 3, size, size) * (size / 32))
first_bn = probe.bn1
means = {size: first_bn.bns[str(size)].running_mean.mean().item() for size in MULTI_SIZES}
print("bn1 running mean per scale:", {size: round(mean, 4) for size, mean in means.items()})
assert isinstance(first_bn, PerScaleBatchNorm2d) and len(set(means.values())) == len(MULTI_SIZES)
"""))

A(md(r"""
Each scale's BatchNorm saw only its own batches (the fake batches above had different brightness
per size, so their running means differ). Now train it:
"""))

A(code(r"""
models["per-scale BN"], histories["per-scale BN"] = train(MULTI_SIZES, per_scale_bn=True)
sweeps["per-scale BN"] = sweep(models["per-scale BN"])
fig = viz.plot_resolution_sweep(sweeps, train_sizes={name: ([TRAIN_SIZE] if name == "single-scale" else MULTI_SIZES)
                                                     for name in sweeps},
                                chance=0.1, title="four training methods, tested at every resolution")
plt.show()
"""))

A(md(r"""
At a test size between or beyond the training sizes, the per-scale network borrows the BatchNorm
of the nearest training size (ties go to the smaller).
"""))

A(md(r"""
## 7. Multi-scale testing

Every network above does best on each split at a *different* resolution. Without knowing the
split, run the network at several resolutions and average the softmax outputs
(Simonyan & Zisserman 2015, section 3.2, "multi-scale evaluation"). `MultiScaleTTA(model, sizes)`
does it, and returns the log of the averaged probabilities so that `evaluate` computes the
ensemble's accuracy and loss. The price is one forward pass per size.
"""))

A(code(r"""
def macs_per_image(model, sizes):
    return sum(count_flops(model, size)["macs"] for size in sizes)


tta = {name: {split: evaluate(MultiScaleTTA(model, TTA_SIZES), data)["accuracy"] for split, data in tests.items()}
       for name, model in models.items()}
print(f"multi-scale testing over {TTA_SIZES} px:")
for name, accuracy in tta.items():
    print(f"{name:>17}: " + "  ".join(f"{split} {accuracy[split]:.3f}" for split in SPLITS))
"""))

A(code(r"""
one_size = MultiScaleTTA(models["single-scale"], [TRAIN_SIZE])
plain = evaluate(Resized(models["single-scale"], TRAIN_SIZE), tests["test"])
assert abs(evaluate(one_size, tests["test"])["accuracy"] - plain["accuracy"]) < 1e-9
best_tta = max(tta, key=lambda name: min(tta[name].values()))
print(f"with a single size, multi-scale testing is plain testing ({plain['accuracy']:.3f});",
      f"best worst-split accuracy with {TTA_SIZES}: {best_tta}")
""", tags=["nbval-check-output"]))

A(md(r"""
## 8. Everything in one table

One row per method: the accuracy on each split, the training time measured above, and the
inference cost in multiply-adds per image (notebook 04's `count_flops`). All rows use one test
protocol chosen without looking at the split: the training resolution for the single-scale
model, the average over `TTA_SIZES` for the multi-scale rows. Each row ends with the command that
reproduces it from a terminal, with this notebook's budget (`--num-samples`, `--epochs`); drop
those two flags for the full recipe.
"""))

A(code(r"""
base = ("python -m tutorial_lib train --dataset multiscale-digits --out runs/NAME "
        f"--num-samples {NUM_TRAIN} --epochs {EPOCHS} --seed {SEED}")
multi = ",".join(map(str, MULTI_SIZES))
tta_sizes = ",".join(map(str, TTA_SIZES))
rows = [
    ("single-scale", models["single-scale"], histories["single-scale"], [TRAIN_SIZE], f"--train-sizes {TRAIN_SIZE} --test-sizes {TRAIN_SIZE}"),
    ("single-scale + TTA", models["single-scale"], histories["single-scale"], TTA_SIZES, f"--train-sizes {TRAIN_SIZE} --test-sizes {tta_sizes}"),
    ("multi-res + TTA", models["multi-resolution"], histories["multi-resolution"], TTA_SIZES, f"--train-sizes {multi} --test-sizes {tta_sizes}"),
    ("progressive + TTA", models["progressive"], histories["progressive"], TTA_SIZES, f"--train-sizes {multi} --progressive --test-sizes {tta_sizes}"),
    ("per-scale BN + TTA", models["per-scale BN"], histories["per-scale BN"], TTA_SIZES, f"--train-sizes {multi} --per-scale-bn --test-sizes {tta_sizes}"),
]
table = {}
print(f"{'method':<20}{'test-small':>11}{'test':>7}{'test-large':>11}{'train s':>9}{'MMACs/img':>11}   command")
for name, model, history, sizes, flags in rows:
    evaluated = MultiScaleTTA(model, sizes) if len(sizes) > 1 else Resized(model, sizes[0])
    accuracy = {split: evaluate(evaluated, data)["accuracy"] for split, data in tests.items()}
    table[name] = accuracy
    print(f"{name:<20}{accuracy['test-small']:>11.3f}{accuracy['test']:>7.3f}{accuracy['test-large']:>11.3f}"
          f"{history.train_seconds:>9.0f}{macs_per_image(model, sizes) / 1e6:>11.1f}   {base} {flags}")
"""))

A(code(r"""
worst = {name: min(accuracy["test-small"], accuracy["test-large"]) for name, accuracy in table.items()}
print("worst shifted split:", {name: round(value, 3) for name, value in worst.items()})
assert max(worst.values()) - worst["single-scale"] > 0.2, "multi-scale methods should lift the worst split"
""", tags=["nbval-check-output"]))

A(md(r"""
FULL_BUDGET_PLACEHOLDER
"""))

A(md(r"""
## Exercises

### Exercise 1: choose the test resolution that undoes a scale shift

Write `test_size_for(split, train_size, candidates)`: the size in `candidates` at which the
objects of `split` have the pixel size the training objects had at `train_size`. Use the
geometric centre √(low · high) of each split's fraction range in `OBJECT_SIZE_FRACTIONS`, and
compare sizes on a log scale (too large by 2× is as bad as too small by 2×). Compare your answer
for `test-small` and `test-large` with the sweep of section 2.
"""))

A(code(r"""
def test_size_for(split, train_size, candidates):
    ### BEGIN SOLUTION
    def centre(name):
        low, high = OBJECT_SIZE_FRACTIONS[name]
        return math.sqrt(low * high)

    ideal = train_size * centre("train") / centre(split)
    return min(candidates, key=lambda size: (abs(math.log(size / ideal)), size))
    ### END SOLUTION


print({split: test_size_for(split, TRAIN_SIZE, TEST_SIZES) for split in SPLITS})
"""))

A(code(r"""
checks.check_test_size_function(test_size_for)
""", tags=["nbval-check-output"]))

A(md(r"""
### Exercise 2: multi-scale testing by hand

Write `average_softmax(model, images, sizes)`: resize the batch to each size (`resize_batch`), take
the softmax of the model's logits, and return the mean of the probabilities, shape
`(images, classes)`. The check compares it with `MultiScaleTTA`. Then: is averaging *logits*
instead of probabilities the same thing? Try it.
"""))

A(code(r"""
def average_softmax(model, images, sizes):
    ### BEGIN SOLUTION
    probs = [F.softmax(model(resize_batch(images, size)), dim=1) for size in sizes]
    return torch.stack(probs).mean(dim=0)
    ### END SOLUTION


batch = tests["test"].images[:64].float().div(255).to(device)
with torch.no_grad():
    print(average_softmax(models["multi-resolution"], batch, TTA_SIZES)[:2])
"""))

A(code(r"""
checks.check_average_softmax_function(average_softmax, models["multi-resolution"], batch, TTA_SIZES)
""", tags=["nbval-check-output"]))

A(md(r"""
### Exercise 3 (open): a cheaper protocol

Multi-scale testing pays one forward pass per size. Using `sweeps`, find the *single* test
resolution with the best worst-split accuracy for each network, and compare it with the
`TTA_SIZES` average: how much accuracy does the second forward pass buy, per multiply-add?
"""))

A(md(r"""
## Summary

- A CNN recognises objects at the pixel sizes it was trained on. Trained at 32 px (objects of
  10-17 px), the baseline collapses towards chance on objects half or twice that size, although
  global average pooling lets it accept any input size.
- Resizing the test image moves objects back into the trained range (the FixRes effect): small
  objects need a larger test resolution, large ones a smaller one. BatchNorm statistics depend on
  the resolution, so recalibrating them at the test resolution adds accuracy for free.
- Multi-resolution training (a size per step drawn from `(seed, step)`, so resumed and distributed
  runs agree without communication) widens the band of object sizes a network handles; progressive
  resizing visits the same sizes small-to-large; per-scale BatchNorm gives each size its own
  statistics for a few thousand parameters.
- Averaging softmax outputs over several test resolutions removes the need to know the object's
  size, at one forward pass per resolution.

## Quiz

1. A network trained at 32 px is tested on objects that are half the training size. Should the test
   image be smaller or larger, and by how much?
2. Why must the resolution drawn at step *t* be the same on every process of a distributed run?
   What would go wrong otherwise?
3. Progressive resizing ends at the largest size. What does that do to BatchNorm's running
   statistics, and how would you correct it before testing at a small size?
4. Per-scale BatchNorm adds parameters but no multiply-adds. Which parameters, and why no compute?
5. Multi-scale testing over three sizes costs how many times a single 32-px evaluation, when the
   sizes are 24, 32 and 48 px?

## Further reading

- H. Touvron, A. Vedaldi, M. Douze, H. Jégou, "Fixing the train-test resolution discrepancy",
  NeurIPS 2019 (FixRes).
- M. Wang et al., "Resolution Switchable Networks for Runtime Efficient Image Recognition",
  ECCV 2020 (RS-Nets: private BatchNorm per resolution).
- K. Simonyan, A. Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition",
  ICLR 2015, section 3 (scale jittering, multi-scale evaluation).
- M. Tan, Q. Le, "EfficientNetV2: Smaller Models and Faster Training", ICML 2021 (progressive
  learning).
- T.-Y. Lin et al., "Feature Pyramid Networks for Object Detection", CVPR 2017 (multi-scale
  features, notebook 06).
"""))

save(cells, "/work/main/notebooks/07_multiscale_training.ipynb")
print("saved", len(cells))
