# %% [markdown]
# # 09 · The multi-scale ResNet-101, assembled
#
# Notebook 07 ended with a network that reads digits of the training size well and small digits
# badly: the `cpu-multiscale` recipe, trained at three resolutions and tested with the softmax
# average over four, still misreads about a quarter of the digits that are 9-14 px wide in the
# 64-px images. This notebook first finds out *why*, with measurements instead of guesses, then
# builds what the measurements call for, and ends the multi-scale part of the series with its
# titular model: a ResNet-101 (the [3, 4, 23, 3] bottleneck layout of notebook 04, at a width a
# CPU can train) wrapped in **scale channels**, the same network applied to several rescaled
# copies of each image, trained end to end. Every method is read across every object size the
# dataset holds, beside its cost.
#
# **Learning objectives.** After this notebook you can
#
# 1. diagnose a scale failure with controlled measurements (more pixels, other pooling, an oracle
#    crop that bounds what any scale method can reach) before choosing a method;
# 2. build a scale-channel network in a few lines, prove it equal to `tutorial_lib`'s, and say what
#    max and average pooling over scales do differently;
# 3. choose the channels that cover a range of object sizes, and compute their cost;
# 4. read a multi-level head (features of several stages) and the final model's recipe, and judge
#    every result against its seed-to-seed spread and its inference cost.
#
# **Prerequisites.** Notebooks 04 (ResNet-101 and its state_dict keys), 05 (BatchNorm statistics,
# `recalibrate_bn`) and 07 (multi-resolution training, recalibration, multi-scale testing).
#
# **Run time:** about 1 min with the defaults, measured on the machine the README's syllabus describes (2 cores, no GPU).
# The full-budget runs (a few minutes each, three seeds per recipe) are read from
# `benchmarks/results/`, and the trained weights of one of them are loaded and examined here; a
# short training run shows the recipe's code path and its cost.
#
# **On Colab:** open the notebook from GitHub in Colab (the README's "Colab" section says how); the
# next cell installs the series there, and does nothing anywhere else. It needs this repository's
# GitHub address: a copy that still says OWNER/NAME stops and says what to set.

# %%
# Colab only: fetch and install the series. Anywhere else this cell does nothing.
import sys

if "google.colab" in sys.modules:
    import os
    import subprocess

    REPO = "https://github.com/OWNER/NAME"
    if REPO.endswith("/OWNER/NAME"):  # the template's address, not yet set
        raise RuntimeError("This copy does not know its GitHub address: set REPO above to the address in "
                           "your Colab URL (github.com/OWNER/NAME), or set [project.urls] Repository in "
                           "pyproject.toml and run `python tools/colab.py`.")
    if not os.path.isdir("/content/series"):
        subprocess.run(["git", "clone", "-q", REPO, "/content/series"], check=True)
        # A plain install, not `pip install -e`: importable at once, where an editable one needs a
        # runtime restart. Colab's own PyTorch is kept (it satisfies the lower bounds).
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "/content/series"], check=True)
    os.chdir("/content/series/notebooks")

# %% [markdown]
# ## Setup
#
# The scale pieces live in `tutorial_lib.multiscale`; the final model's recipe, `cpu-msresnet101`, in
# `tutorial_lib.recipes`, so the model examined here is the one the CLI trains.

# %%
import json
import math
import statistics
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from torch import nn

from tutorial_lib import checks, viz
from tutorial_lib.cost import count_flops, count_parameters
from tutorial_lib.data import DEFAULT_NUM_SAMPLES, batches, load_dataset, object_size_range
from tutorial_lib.env import choose_device, seed_everything
from tutorial_lib.models import resnet101
from tutorial_lib.multiscale import ScaleChannelNetwork, msresnet101, recalibrated_channels, resize_batch
from tutorial_lib.norm import randomize_norm
from tutorial_lib.recipes import build_run, get_recipe, inference_macs, with_overrides
from tutorial_lib.train import fit
from tutorial_lib.tuning import mean_difference, paired_difference

# %% [markdown]
# ## Parameters
#
# The defaults examine the stored weights of the full-budget `cpu-msresnet101` run of seed 0 on
# `NUM_TEST` images per test split, and train the same recipe for a few dozen steps on
# `NUM_TRAIN` images to time it. `TEST_SCALES` are the channels the stored model is tested with
# (the recipe's). On a GPU, set `DEVICE = "cuda"`, `NUM_TEST = 2000` and `NUM_TRAIN = 16000` with
# `EPOCHS = 4` to train the full recipe here (not run for this notebook).

# %% tags=["parameters"]
SEED = 0
DEVICE = None                    # None: automatic (cuda > mps > cpu), or "cpu", "cuda", "mps"
DATA_SIZE = 64                   # side of the stored images, in pixels
NUM_TEST = 600                   # images per test split for the live evaluations (each full split has 2,000)
TEST_SCALES = (0.25, 0.5, 1.0)   # test-time channels of the stored model, factors of DATA_SIZE (cpu-msresnet101's)
NUM_RECAL_BATCHES = 20           # training batches per channel for its BatchNorm statistics (the CLI uses 50)
NUM_TRAIN = 2048                 # training images of the short live run (the recipe uses 16,000)
EPOCHS = 1                       # epochs of the short live run (the recipe uses 4)

# %%
seed_everything(SEED)
device = choose_device(DEVICE)
print(f"device: {device}")
root = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
results_dir = root / "benchmarks" / "results"
SPLITS = ("test-small", "test", "test-large")
tests = {split: load_dataset("multiscale-digits", split, image_size=DATA_SIZE, num_samples=NUM_TEST, seed=SEED)
         for split in SPLITS}
for data in tests.values():
    print(data)

# %% [markdown]
# ## 1. The problem in one figure
#
# `benchmarks/scale_diagnosis.py` trained `cpu-multiscale` (notebook 07's recipe: a ResNet-18 of width
# 16, trained at 24, 32 and 48 px, tested with the softmax average over 24-64 px, BatchNorm
# recalibrated per size) with three seeds and tested it on all 2,000 images of every split. Below, its
# accuracy against the digit's size in the 64-px image; the shaded band is the training digits' sizes.

# %%
diagnosis = json.loads((results_dir / "scale_diagnosis.json").read_text())
print("stored by:", diagnosis["command"])


def diagnosis_runs(pool):
    return [run for run in diagnosis["runs"] if run["pool"] == pool]


def rows_of(by_split):
    # One run's accuracy-by-size rows, all splits together (sizes in pixels of the 64-px image).
    return [row for split in SPLITS for row in by_split[split]["by_size"]]


problem = {"cpu-multiscale": [rows_of(run["recipe"]) for run in diagnosis_runs("avg")]}
fig = viz.plot_accuracy_by_size(problem, train_range=object_size_range("train", DATA_SIZE), chance=0.1,
                                title="cpu-multiscale, 3 seeds: accuracy against digit size (64-px images)")
plt.show()
summary = diagnosis["summary"]
for split in SPLITS:
    mean, spread = summary["avg"]["recipe TTA"][split]
    print(f"{split:>10}: {mean:.3f} +- {spread:.3f} (mean +- sd over 3 seeds)")

# %% [markdown]
# The smaller the digit, the worse; on the other side, the largest digits fall too. Two suspects,
# each plausible: **too few pixels** (a 9-px digit is 9 px even in the recipe's 64-px view; the
# network learned digits of about 7-26 px), and **global average pooling**, which averages the last
# feature map over the whole image, so a digit covering 2-5% of its area is diluted by background.
#
# ## 2. Diagnose before choosing a method
#
# The diagnosis script measured, for each seed and for three global poolings (average, max, and
# GeM, the generalised mean of Radenović, Tolias & Chum, TPAMI 2019, whose exponent is learned):
#
# - **single sizes**: the whole test image at one size (32-128 px), BatchNorm recalibrated at it.
#   More pixels for a small digit, but also a background enlarged beyond anything seen in training;
# - the **oracle crop**: each digit cut out by its known box and resized so that it fills the image as
#   a training digit does: the digit at the training size, chosen with knowledge no real method has.
#   It is the reference for what a scale method can hope to recover on small and large digits (not a
#   strict bound: it also drops the digit's surroundings and resamples it, and on `test` the
#   recipe's own protocol reads more);
# - **test-time scale channels** (section 3), added to the trained network without retraining.
#
# GeM pools each channel of the last feature map $x$ as $\left(\frac{1}{|x|}\sum x^p\right)^{1/p}$ with
# a learned $p$: $p = 1$ is average pooling, and as $p$ grows it tends to max pooling. The table: mean
# and standard deviation over three seeds of each protocol, per pooling (the whole-image sizes 24-128
# px are in the file; 64 and 96 px tell the story).

# %%
protocols = ("recipe TTA", "single 64 px", "single 96 px", "channels max/rescale", "oracle crop")
print(f"{'pooling':<8}{'protocol':<22}" + "".join(f"{split:>16}" for split in SPLITS))
for pool in ("avg", "max", "gem"):
    for protocol in protocols:
        cells = "".join(f"{summary[pool][protocol][split][0]:>10.3f} +-{summary[pool][protocol][split][1]:.3f}" for split in SPLITS)
        print(f"{pool:<8}{protocol:<22}{cells}")
print("\nverdict of the script:", diagnosis["verdict"])

# %% tags=["nbval-check-output"]
small = {pool: {p: summary[pool][p]["test-small"][0] for p in protocols} for pool in ("avg", "max", "gem")}
checks.claim(small["avg"]["oracle crop"] > 0.9,
             f"the oracle crop reads over 90% of the small digits; here {small['avg']['oracle crop']:.3f}")
checks.claim(small["avg"]["single 96 px"] < small["avg"]["single 64 px"],
             "with average pooling, 96 px reads small digits worse than 64 px; here "
             f"{small['avg']['single 96 px']:.3f} against {small['avg']['single 64 px']:.3f}")
large = {pool: {p: summary[pool][p]["test-large"][0] for p in protocols} for pool in ("avg", "max", "gem")}
checks.claim(all(large[pool]["channels max/rescale"] > max(large[pool][p] for p in protocols[:3]) for pool in large),
             "on large digits the test-time channels beat every other whole-image protocol of the table, for each pooling")
checks.claim(small["avg"]["single 64 px"] > small["avg"]["recipe TTA"],
             f"one 64-px view reads small digits better than the recipe's average; here {small['avg']['single 64 px']:.3f} "
             f"against {small['avg']['recipe TTA']:.3f}")
checks.claim(small["gem"]["single 96 px"] > small["avg"]["single 64 px"] + 0.05,
             "GeM at 96 px reads small digits more than 5 points better than any average-pooled protocol at 64 px; here "
             f"{small['gem']['single 96 px']:.3f} against {small['avg']['single 64 px']:.3f}")


# %% [markdown]
# Read the rows:
#
# - The information is there: shown each digit at the right size (the oracle crop), the same
#   networks read over 90% of the small digits.
# - More pixels alone do not get there: with average pooling, 96 px reads small digits *worse*
#   than 64 px. Enlarging the whole image keeps the digit's share of the feature map as small as
#   before, and the enlarged background looks like nothing in training.
# - Pooling and pixels together do: with GeM, 96 px reads small digits far better than any
#   average-pooled whole-image view. GeM (and max) weight the strongest responses, so a small digit is
#   not averaged away once it has the pixels to be recognised. (GeM and max pooling at 96 px are
#   within each other's seed spread; GeM is kept because it does not lose on `test`.)
# - Scale channels added after training (`channels max/rescale`: the image at 16, 32 and 64 px, the
#   maximum of the logits) read small digits worst of all: a channel that sees a digit at a size the
#   network never learned can answer confidently wrong and win the maximum. Yet on large digits the
#   same channels are the best whole-image protocol of the table: shrinking a large digit into the
#   trained range works, enlarging a small one does not. Section 4 trains the channels instead, and
#   section 8 shows what that gains and loses.
# - A curiosity: one 64-px view reads small digits better than the recipe's average over four sizes,
#   which mixes in views where they are too small.
#
# So the final model uses GeM, and it must look at each image at several sizes: at the one where a
# small digit has enough pixels, and at the one where a large digit is shrunk back to a familiar
# size. Choosing that size per image without knowing the digit is what scale channels do.
#
# ## 3. Scale channels in a few lines
#
# A scale-channel network (Jansson & Lindeberg, "Scale-invariant scale-channel networks", J. Math.
# Imaging Vision 64, 2022) runs **one** network, with shared weights, on copies of the image
# rescaled by factors $s_1, \dots, s_S$, and pools the channels' outputs over scales. With max
# pooling, for every class the channel that sees it best sets its score; with average pooling every
# channel votes. Here it is, built inline:

# %%
class ScaleChannels(nn.Module):
    def __init__(self, net, scales, pool="max"):
        super().__init__()
        self.net = net                      # shared by every channel: one set of weights
        self.scales = tuple(scales)
        self.pool = pool

    def forward(self, x):
        side = x.shape[-1]
        # Channel k sees the whole image at round(side * s_k) pixels.
        logits = torch.stack([self.net(resize_batch(x, round(side * s))) for s in self.scales])
        return logits.amax(dim=0) if self.pool == "max" else logits.mean(dim=0)


# %% [markdown]
# Prove it equal to the package's `ScaleChannelNetwork` around a ResNet-101 of width 4 (notebook
# 04's network, the small stem of the CIFAR-style networks): same parameters, strict state_dict
# loading, bit-identical outputs in training and evaluation mode, for both poolings.

# %%
x = torch.rand(2, 3, 32, 32)
for pool in ("max", "avg"):
    torch.manual_seed(SEED)
    reference = ScaleChannelNetwork(resnet101(num_classes=10, width=4, stem="small", pool="gem"), (0.5, 1.0), pool=pool)
    randomize_norm(reference)               # BatchNorm statistics that eval mode can get wrong
    inline = ScaleChannels(resnet101(num_classes=10, width=4, stem="small", pool="gem"), (0.5, 1.0), pool=pool)
    print(f"{pool}: {checks.prove_equal(inline, reference, x)}")

# %% [markdown]
# The channels add no parameters: the state_dict is the ResNet-101's under `net.`, so a plain
# ResNet-101 checkpoint loads into a scale-channel network strictly, and back. What they add is
# compute, one forward pass per channel, each costing in proportion to its pixel count:

# %%
net = resnet101(num_classes=10, width=4, stem="small", pool="gem")
one_pass = count_flops(net, 32)["macs"]
print(f"ResNet-101, width 4, one 32-px pass: {one_pass / 1e6:.1f} M multiply-adds, {count_parameters(net):,} parameters")
for scales, size in (((0.5, 1.0), 32), ((0.25, 0.5, 1.0), 64)):
    macs = count_flops(ScaleChannelNetwork(net, scales), size)["macs"]
    sides = [round(size * s) for s in scales]
    print(f"channels at {sides} px: {macs / one_pass:.2f} x one 32-px pass "
          f"(sum of (side / 32)^2 = {sum((s / 32) ** 2 for s in sides):.2f})")

# %% [markdown]
# ## 4. The final model and its recipe
#
# `msresnet101` composes the pieces: a ResNet-101 with GeM pooling inside a `ScaleChannelNetwork`.
# The recipe `cpu-msresnet101` says everything else; print it, and check that the trunk keeps
# torchvision's layout and keys.

# %%
recipe = get_recipe("cpu-msresnet101")
print(recipe["description"])
for section in ("model", "fit", "eval"):
    print(f"  {section}: {recipe[section]}")
model, evaluated = build_run(recipe, num_classes=10)
print(f"\n{type(model).__name__}: {count_parameters(model):,} parameters, stages "
      f"{[len(stage) for stage in (model.net.layer1, model.net.layer2, model.net.layer3, model.net.layer4)]}")
plain = resnet101(num_classes=10, width=4, stem="small", pool="gem")
model.net.load_state_dict(plain.state_dict(), strict=True)   # a plain ResNet-101 checkpoint loads strictly
print("a plain ResNet-101's state_dict loads strictly into model.net")

# %% [markdown]
# What each choice is for, with the measurement behind it (all in `benchmarks/results/README.md`):
#
# - **Width 4.** On the 2-core CPU a ResNet-101 step is dominated by the per-layer overhead of its
#   104 convolutions, not by arithmetic: one plain 32-px training step at width 8 cost 2.2 times
#   `cpu-baseline`'s, at width 4 1.4 times (`benchmarks/results/README.md`); the recipe's step, two
#   channels at 24-48 px, costs more (section 8 prints the training times). Width 4 ends with 128 channels, like the
#   baseline's ResNet-18 at width 16.
# - **Zero-initialised residual branches** (Goyal et al. 2017, section 5.1): each block starts as the
#   identity, so the 33-block network starts as a shallow one. In the exploration, a width-8
#   scale-channel ResNet-101 without them was still at chance after 500 steps (one uncontrolled run,
#   `benchmarks/results/README.md`).
# - **GeM pooling**: section 2.
# - **Channels at 1/2 and 1x of the training size, trained end to end through the max**, at the
#   three training sizes of `cpu-multiscale`: training teaches the pooling which channel to trust,
#   because a channel that sees a digit at an unfamiliar size and answers confidently wrong is
#   penalised by the loss when its wrong class wins the maximum.
# - **Tested on the 64-px image with channels at 16, 32 and 64 px**, each channel with BatchNorm
#   statistics recomputed at its own side (`recalibrated_channels`): during training every channel
#   normalised with its own batch statistics, but all of them updated one set of running
#   statistics, which matches none. The three sides follow from the object sizes: a large digit
#   (45-60 px) is 11-15 px in the 16-px channel, a training-size one (20-35 px) 10-17 px in the
#   32-px channel, a small one (9-14 px) stays 9-14 px in the 64-px channel. Exercise 1 derives such
#   channels.
#
# ## 5. Training it: the cost of a step
#
# The full recipe trains on 16,000 images for 4 epochs, longer than this notebook's budget; here it
# runs for `EPOCHS` epoch(s) of `NUM_TRAIN` images, the same code path as the CLI, to measure the cost
# of a step.

# %%
train_data = load_dataset("multiscale-digits", "train", image_size=DATA_SIZE, num_samples=NUM_TRAIN, seed=SEED)
seed_everything(SEED)
live_model, _ = build_run(recipe, num_classes=10)
history = fit(live_model, train_data, **dict(recipe["fit"], epochs=EPOCHS), seed=SEED, device=device, progress=False)
steps = len(history.step_loss)
per_step = history.train_seconds / steps
full_steps = recipe["fit"]["epochs"] * math.ceil(DEFAULT_NUM_SAMPLES["train"] / recipe["fit"]["batch_size"])
print(f"{steps} steps in {history.train_seconds:.1f} s: {per_step:.2f} s per step")
print(f"training loss: first step {history.step_loss[0]:.3f}, last step {history.step_loss[-1]:.3f} (chance: ln 10 = {math.log(10):.3f})")
print(f"the full recipe's {full_steps} steps would take about {full_steps * per_step / 60:.1f} min at this pace")

# %% [markdown]
# A few dozen steps leave a 101-layer network near where it started (compare the last loss with
# chance): on this dataset a ResNet-101 starts learning later than a ResNet-18 (after 250 steps,
# training accuracy 0.212 against 0.471, `benchmarks/results/README.md`). The full-budget runs, next, trained for the recipe's 4 epochs, and the per-step cost above is
# why they are not run here. (The training images of this short run also give each channel its
# BatchNorm statistics below: `NUM_RECAL_BATCHES` batches of them.)
#
# ## 6. The full-budget model, examined
#
# `benchmarks/compare_recipes.py` trained `cpu-msresnet101` with the CLI for seeds 0, 1 and 2 and kept
# the weights of each. Load seed 0's, give each test channel its BatchNorm statistics, and read the
# channels one by one on `NUM_TEST` images per split.

# %%
stored = json.loads((results_dir / "cpu_msresnet101.json").read_text())
weights = results_dir / "weights" / f"cpu_msresnet101_seed{SEED}.pt"
trained, _ = build_run(recipe, num_classes=10)
trained.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
trained.eval()
start = time.perf_counter()
tested = recalibrated_channels(ScaleChannelNetwork(trained.net, TEST_SCALES, pool="max"), train_data, DATA_SIZE,
                               num_batches=NUM_RECAL_BATCHES, batch_size=recipe["fit"]["batch_size"], seed=SEED).to(device)
print(f"BatchNorm statistics for channels at {tested.model.channel_sizes(DATA_SIZE)} px in {time.perf_counter() - start:.1f} s")


def channel_logits(scn, data):
    # Every channel's logits (S, N, K) and the labels, for a whole test split.
    outputs, labels = [], []
    with torch.inference_mode():
        for images, targets in batches(data, 100, device):
            outputs.append(scn.channel_logits(resize_batch(images, DATA_SIZE)).cpu())
            labels.append(targets.cpu())
    return torch.cat(outputs, dim=1), torch.cat(labels)


logits = {split: channel_logits(tested.model, tests[split]) for split in SPLITS}
sides = tested.model.channel_sizes(DATA_SIZE)
print(f"{'':<22}" + "".join(f"{split:>12}" for split in SPLITS))
for k, side in enumerate(sides):
    print(f"{f'channel {side} px alone':<22}" + "".join(f"{(out[k].argmax(1) == y).float().mean():>12.3f}" for out, y in logits.values()))
accuracy = {}
for pool, reduce in (("max", lambda out: out.amax(0)), ("avg", lambda out: out.mean(0))):
    accuracy[pool] = {split: (reduce(out).argmax(1) == y).float().mean().item() for split, (out, y) in logits.items()}
    print(f"{f'{pool} over scales':<22}" + "".join(f"{accuracy[pool][split]:>12.3f}" for split in SPLITS))
seed_run = next(r for r in stored["runs"] if r["recipe"] == "cpu-msresnet101" and "name" not in r and r["seed"] == SEED)
print(f"{'CLI, all 2,000 images':<22}" + "".join(f"{seed_run[split]:>12.3f}" for split in SPLITS))

# %% tags=["nbval-check-output"]
alone = {split: [(out[k].argmax(1) == y).float().mean().item() for k in range(len(sides))] for split, (out, y) in logits.items()}
checks.claim(alone["test-small"][-1] > alone["test-small"][0],
             f"the {sides[-1]}-px channel alone reads small digits better than the {sides[0]}-px one; here "
             f"{alone['test-small'][-1]:.3f} against {alone['test-small'][0]:.3f}")
checks.claim(alone["test-large"][0] > alone["test-large"][-1],
             f"the {sides[0]}-px channel alone reads large digits better than the {sides[-1]}-px one; here "
             f"{alone['test-large'][0]:.3f} against {alone['test-large'][-1]:.3f}")
best_alone = {split: max(alone[split]) for split in SPLITS}
print("best single channel per split:", {split: round(v, 3) for split, v in best_alone.items()})
print("max over scales             :", {split: round(v, 3) for split, v in accuracy["max"].items()})
checks.claim(accuracy["max"]["test-large"] < alone["test-large"][0],
             f"on large digits the max over scales reads fewer than the {sides[0]}-px channel alone; here "
             f"{accuracy['max']['test-large']:.3f} against {alone['test-large'][0]:.3f}")

# %% [markdown]
# Each channel alone is good at one split and poor at another: the small channel for large digits,
# the large channel for small digits, as section 4's arithmetic predicted. Pooling over scales has
# to pick, per image, without knowing the digit's size, and it pays for that: on large digits the
# maximum over scales reads fewer than the 16-px channel alone (the check above asserts it; exercise
# 2 shows which channel decides). Max against average over scales, on the same images (McNemar's
# paired test, notebook 08):

# %%
for split, (out, y) in logits.items():
    paired = paired_difference(out.mean(0).argmax(1) == y, out.amax(0).argmax(1) == y)
    print(f"{split:>10}: max - avg over scales = {paired['difference']:+.3f} (McNemar p = {paired['p_value']:.3f}, "
          f"{NUM_TEST} images; {'a difference' if paired['p_value'] < 0.05 else 'within noise'} at p < 0.05)")

# %% [markdown]
# Where the maximum wins, it wins where one channel should decide: a small digit is seen well in one
# channel only, and the average lets the two channels that see it badly outvote it.

# %% [markdown]
# ## 7. A multi-level head
#
# Another way to keep small objects is to classify from several stages, not only the last: the
# earlier stages see finer detail at higher resolution. `MultiLevelResNet` pools C3, C4 and C5 (the
# outputs of `layer2`-`layer4`, in the feature-pyramid naming of Lin et al., CVPR 2017) with GeM,
# concatenates them and classifies. HRNet's classification head (Wang et al., TPAMI 2021) also feeds
# every resolution to the classifier, but merges them with strided convolutions first; this head
# has no convolutions, and adds only classifier weights (and one GeM exponent per extra level):

# %%
single = msresnet101(width=4, pool="gem")
multi = msresnet101(width=4, pool="gem", head="multi-level")
print(f"single head: {count_parameters(single):,} parameters, classifier reads {single.net.fc.in_features} features")
print(f"multi-level: {count_parameters(multi):,} parameters, classifier reads {multi.net.fc.in_features} features "
      f"(C3 + C4 + C5 = {' + '.join(str(multi.net.net.get_submodule(name)[-1].conv3.out_channels) for name in multi.net.levels)})")
print(f"multiply-adds at 32 px: {count_flops(multi, 32)['macs'] / count_flops(single, 32)['macs']:.4f} x the single head's")


# %% [markdown]
# The comparison at the full budget, same recipe, same seed (0), only the head changed. One seed
# each is one measurement: a difference of two single runs spreads by about $\sqrt{2}\,\sigma$, with
# $\sigma$ the single head's standard deviation over its three seeds, so the next cell calls a
# difference beyond noise only when it exceeds twice that, $2\sqrt{2}\,\sigma$.

# %%
def runs_named(name):
    return [r for r in stored["runs"] if r.get("name", r["recipe"]) == name]


single_runs, multi_runs = runs_named("cpu-msresnet101"), runs_named("cpu-msresnet101, multi-level head")
if multi_runs:
    multi_run = multi_runs[0]
    single_seed = next(r for r in single_runs if r["seed"] == multi_run["seed"])
    print(f"{'head':<14}" + "".join(f"{split:>12}" for split in SPLITS) + f"{'train s':>10}")
    for label, run in (("single", single_seed), ("multi-level", multi_run)):
        print(f"{label:<14}" + "".join(f"{run[split]:>12.3f}" for split in SPLITS) + f"{run['train_seconds']:>10.0f}")
    for split in SPLITS:
        spread = statistics.stdev(r[split] for r in single_runs) if len(single_runs) > 1 else float("nan")
        difference = multi_run[split] - single_seed[split]
        verdict = "beyond noise" if abs(difference) > 2 * math.sqrt(2) * spread else "within noise"
        print(f"{split:>10}: multi-level - single = {difference:+.3f}, {verdict} (2 sqrt(2) sigma = {2 * math.sqrt(2) * spread:.3f}; one seed)")
else:
    print("no multi-level run stored yet: run the command in benchmarks/results/README.md")


# %% [markdown]
# The printed verdicts are the conclusion, for one seed of the multi-level head: where a difference
# is beyond noise, read its sign. The recipe keeps the single head: it is the one measured over
# three seeds.
#
# ## 8. Every method across every object size
#
# The three CPU recipes at their full budget, three seeds each: `cpu-baseline` (one size, 32 px),
# `cpu-multiscale` (notebook 07), and `cpu-msresnet101`. The diagnosis's GeM variant of
# `cpu-multiscale` is drawn too. Each line is the mean over seeds, its bars the lowest and highest
# seed (the legend says what the bars are).

# %%
def stored_rows(run):
    # compare_recipes.py keeps each split's bins as [size_min, size_max, accuracy, count].
    keys = ("size_min", "size_max", "accuracy", "count")
    return [dict(zip(keys, row)) for split in SPLITS for row in run["by_size"][split]]


curves = {"cpu-baseline": [stored_rows(run) for run in runs_named("cpu-baseline")],
          "cpu-multiscale": problem["cpu-multiscale"],
          "cpu-multiscale, GeM": [rows_of(run["recipe"]) for run in diagnosis_runs("gem")],
          "cpu-msresnet101": [stored_rows(run) for run in single_runs]}
seeds = sorted({len(runs) for runs in curves.values()})
fig = viz.plot_accuracy_by_size(curves, train_range=object_size_range("train", DATA_SIZE), chance=0.1,
                                title=f"full budget, {'/'.join(map(str, seeds))} seeds: accuracy against digit size (64-px images)")
fig.axes[0].axhline(0.85, color="grey", lw=0.8, ls="--", label="85% (the target's lowest bin)")
fig.axes[0].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))   # beside the axes, off the data
plt.show()


# %% [markdown]
# The table: accuracy per split (mean and spread over seeds), the worst size bin of the curve, the
# training time of `cpu-baseline` and `cpu-msresnet101` measured side by side in one sitting (the
# runs alternate), and the inference cost per image as a ratio to `cpu-baseline`'s, counted from each
# recipe's own test protocol. The two `cpu-multiscale` rows come from the diagnosis runs, whose
# training times were taken beside other work and are not shown.

# %%
def macs_of(name):
    # Per image, as the recipe tests it (every size and channel): recipes.inference_macs.
    changed = with_overrides(get_recipe("cpu-multiscale"), {"model.pool": "gem"}) if name == "cpu-multiscale, GeM" else get_recipe(name)
    return inference_macs(changed)


def spread_of(values):
    # Sample standard deviation over seeds; not defined for one seed.
    return statistics.stdev(values) if len(values) > 1 else float("nan")


def worst_bin(rows_per_run):
    return min(statistics.mean(run[i]["accuracy"] for run in rows_per_run) for i in range(len(rows_per_run[0])))


records = {"cpu-baseline": runs_named("cpu-baseline"), "cpu-msresnet101": single_runs,
           "cpu-multiscale": [{split: run["recipe"][split]["accuracy"] for split in SPLITS} for run in diagnosis_runs("avg")],
           "cpu-multiscale, GeM": [{split: run["recipe"][split]["accuracy"] for split in SPLITS} for run in diagnosis_runs("gem")]}
base_macs = macs_of("cpu-baseline")
table = {}
print(f"{'recipe':<20}" + "".join(f"{split:>16}" for split in SPLITS) + f"{'worst bin':>11}{'train s':>9}{'MACs':>7}")
for name in ("cpu-baseline", "cpu-multiscale", "cpu-multiscale, GeM", "cpu-msresnet101"):
    runs = records[name]
    row = {split: (statistics.mean(r[split] for r in runs), spread_of([r[split] for r in runs])) for split in SPLITS}
    seconds = statistics.mean(r["train_seconds"] for r in runs) if "train_seconds" in runs[0] else None
    table[name] = dict(row, worst=worst_bin(curves[name]), seconds=seconds, macs=macs_of(name) / base_macs)
    print(f"{name:<20}" + "".join(f"{m:>10.3f} +-{s:.3f}" for m, s in (row[split] for split in SPLITS))
          + f"{table[name]['worst']:>11.3f}" + (f"{seconds:>9.0f}" if seconds else f"{'':>9}") + f"{table[name]['macs']:>6.1f}x")
print("\ncommands (each run in a fresh process, the seed appended):")
for command in dict.fromkeys(" ".join(c) for c in stored["commands"]):
    print("  " + command)

# %% [markdown]
# Against the targets the series set itself for this model (at least 90% on `test-small` and on
# `test-large`, at least 95% on `test`, no size bin below 85%, training within 3 minutes on the 2-core
# machine), the next cell prints each verdict from the table, and tests the differences from
# `cpu-multiscale` with Welch's t-test over the seeds.

# %%
ms = table["cpu-msresnet101"]
targets = {"test-small >= 0.90": ms["test-small"][0] >= 0.90, "test-large >= 0.90": ms["test-large"][0] >= 0.90,
           "test >= 0.95": ms["test"][0] >= 0.95, "no bin < 0.85": ms["worst"] >= 0.85,
           "training <= 180 s": ms["seconds"] <= 180}
for target, met in targets.items():
    print(f"{target:<20} {'met' if met else 'NOT met'}")
print(f"training time: {ms['seconds']:.0f} s, {ms['seconds'] / table['cpu-baseline']['seconds']:.2f} x cpu-baseline's in the same sitting")
for split in SPLITS:
    test = mean_difference([r[split] for r in records["cpu-multiscale"]], [r[split] for r in single_runs])
    if test["p"] is None:
        print(f"{split:>10}: cpu-msresnet101 - cpu-multiscale = {test['difference']:+.3f} (too few seeds for a test)")
    else:
        print(f"{split:>10}: cpu-msresnet101 - cpu-multiscale = {test['difference']:+.3f} (Welch p = {test['p']:.3f}, "
              f"{'a difference' if test['p'] < 0.05 else 'not shown different'} at p < 0.05)")

# %% tags=["nbval-check-output"]
checks.claim(not all(targets.values()), "the final model misses at least one of its targets on this machine")
checks.claim(ms["seconds"] > 180, f"cpu-msresnet101 trains longer than 3 minutes here; {ms['seconds']:.0f} s")
others = [name for name in table if name != "cpu-msresnet101"]
checks.claim(all(ms["test"][0] < table[name]["test"][0] for name in others),
             f"cpu-msresnet101 has the lowest mean on test of the table; here {ms['test'][0]:.3f}")
checks.claim(all(ms["macs"] < table[name]["macs"] for name in ("cpu-multiscale", "cpu-multiscale, GeM")),
             f"cpu-msresnet101 is the cheapest multi-scale row at inference; here {ms['macs']:.1f}x")
gem = table["cpu-multiscale, GeM"]
checks.claim(all(gem[split][0] > ms[split][0] for split in SPLITS),
             "the GeM ResNet-18 of the diagnosis has the higher mean on every split; here "
             + ", ".join(f"{split} {gem[split][0]:.3f} vs {ms[split][0]:.3f}" for split in SPLITS))
for split in SPLITS:
    test = mean_difference([r[split] for r in records["cpu-multiscale, GeM"]], [r[split] for r in single_runs])
    if test["p"] is not None:
        print(f"{split:>10}: cpu-msresnet101 - (cpu-multiscale, GeM) = {test['difference']:+.3f} (Welch p = {test['p']:.3f})")

# %% [markdown]
# So the titular model, on this machine, does not reach the targets. The likely causes, measured
# where the notebook says so and untested where it does not (no longer run was made):
#
# - **Budget.** Its 1,000 steps (`cpu-multiscale` takes 750) take a multiple of `cpu-baseline`'s
#   training time (printed above), and section 5's per-step cost means 3 minutes would buy only a
#   fraction of them. A ResNet-101 (width 8, in the exploration) also
#   starts learning later than a ResNet-18 on this data (`benchmarks/results/README.md`), so fewer
#   steps likely hurt it more; whether more steps would reach the targets is not tested here. It has the lowest mean on `test` of the table.
# - **Choosing the channel costs accuracy.** Section 6: on large digits the maximum over scales reads
#   fewer than the 16-px channel alone, and on large digits the trained model reads fewer than the
#   untrained test-time channels of the diagnosis did (a ResNet-18 there: section 2's table).
# - **A shallower network with the diagnosis's cure does at least as well.** The GeM ResNet-18
#   (`cpu-multiscale` with GeM pooling) has the higher mean on every split (the Welch tests above say
#   where that is beyond noise), at a higher inference cost (its test protocol averages four sizes
#   up to 64 px).
#
# What the ResNet-101 buys is the cheapest inference of the multi-scale rows, and, on a GPU, the
# depth and width that real images need (section 10): scale channels are orthogonal to the network
# they wrap. Exercise 1 finds a channel set that reads small and large digits better, at a higher
# cost.
#
# ## 9. Cost against accuracy
#
# Multi-scale testing runs a network several times per image, so its cost belongs beside its
# accuracy. Each point is a recipe, its worst split (mean over seeds) against its inference cost;
# the points show that cost and accuracy are not tied one to one.

# %%
fig, ax = plt.subplots(figsize=(6, 4))
for name, row in table.items():
    worst_split = min(row[split][0] for split in SPLITS)
    ax.scatter(row["macs"], worst_split, s=40)
    ax.annotate(name, (row["macs"], worst_split), textcoords="offset points", xytext=(6, 4), fontsize=8)
ax.set_xscale("log")
ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda value, _: f"{value:g}x"))
ax.xaxis.set_minor_formatter(plt.FuncFormatter(lambda value, _: f"{value:g}x" if value in (2, 4) else ""))
ax.set_xlim(0.8, 12)
ax.set_xlabel("multiply-adds per image, relative to cpu-baseline's (log scale)")
ax.set_ylabel("accuracy on the worst split (mean over seeds)")
ax.set_title("cost against accuracy")
ax.grid(alpha=0.3)
plt.show()


# %% [markdown]
# ## 10. On a GPU: full width on real images
#
# Everything above scales by parameters: `msresnet101(width=64, stem="imagenet")` is the full-width
# model, whose trunk is torchvision's ResNet-101 key for key (notebook 04), so its ImageNet weights
# load into `model.net`. For real images, Imagenette (ten ImageNet classes, from fast.ai) at
# 128-160 px is the natural next step. The value to aim at: the fast.ai Imagenette leaderboard
# (https://github.com/fastai/imagenette) lists 87.4% at 128 px after 5 epochs, for an `xse_resnext50`
# with a tuned recipe; we would expect a plain ResNet-101 trained from scratch for 5 epochs to land
# below it (a guess, not a measurement).
# The series has not measured it (no GPU was lent to it). Notebook 10, on scaling up, gives the
# command line's `gpu-imagenette-resnet101` recipe for it and the commands for one or several GPUs.
#
# ## Exercises
#
# ### Exercise 1: choose channels that cover every object size
#
# A channel at factor $s$ shows an object of side $o$ (pixels of the stored image) at $o \cdot s$
# pixels. Suppose the network reads objects well when they are between `trained[0]` and `trained[1]`
# pixels. Write `cover(objects, trained)`: the fewest scale factors such that every object size in
# the range `objects` lands inside `trained` in at least one channel. Before you run it: how many
# channels does the dataset's 9-60 px need on a band of about 10-17 px (the training digits of
# `cpu-baseline` at 32 px)? The cell then tests the stored model with your channels.

# %%
def cover(objects, trained):
    ### BEGIN SOLUTION
    low, high = objects
    band_low, band_high = trained
    ratio = band_high / band_low            # one channel covers object sizes in this ratio
    count = max(1, math.ceil(math.log(high / low) / math.log(ratio) - 1e-9))
    first = band_high / high                # the largest object at the top of the band
    return tuple(first * ratio**k for k in range(count))
    ### END SOLUTION


print("9-60 px onto 10-17.5 px:", [round(s, 3) for s in cover((9, 60), (10, 17.5))])

# %% tags=["nbval-check-output"]
checks.check_channel_cover_function(cover)

# %% [markdown]
# Now measure: the stored model read through your channels for the band the 32-px training images
# put digits in (`object_size_range("train", 32)`), against the recipe's `TEST_SCALES`. One seed and
# `NUM_TEST` images per split: read differences of a few points as within noise.

# %%
band = object_size_range("train", 32)
mine = cover(object_size_range("test-small", DATA_SIZE)[:1] + object_size_range("test-large", DATA_SIZE)[1:], band)
print(f"band {band} px; your channels: factors {[round(s, 3) for s in mine]}, sides {[round(DATA_SIZE * s) for s in mine]} px")
if all(round(DATA_SIZE * s) >= 8 for s in mine) and len({round(DATA_SIZE * s) for s in mine}) == len(mine):
    yours = recalibrated_channels(ScaleChannelNetwork(trained.net, mine, pool="max"), train_data, DATA_SIZE,
                                  num_batches=NUM_RECAL_BATCHES, batch_size=recipe["fit"]["batch_size"], seed=SEED).to(device)
    mine_logits = {split: channel_logits(yours.model, tests[split]) for split in SPLITS}
    print(f"{'':<16}" + "".join(f"{split:>12}" for split in SPLITS) + f"{'MACs':>8}")
    for label, outs, scales in (("your channels", mine_logits, mine), ("TEST_SCALES", logits, TEST_SCALES)):
        macs = count_flops(ScaleChannelNetwork(trained.net, scales), DATA_SIZE)["macs"] / base_macs
        print(f"{label:<16}" + "".join(f"{(o.amax(0).argmax(1) == y).float().mean():>12.3f}" for o, y in outs.values()) + f"{macs:>7.1f}x")
else:
    print("some of your channels are under 8 px or coincide; BatchNorm per channel needs distinct sides of 8 px or more")


# %% [markdown]
# Which would you keep? Compare the columns and the cost: more channels cost more, and a channel the
# network was never trained through (your factors are not the training's 1/2 and 1) may help or not.
# The band is also only a guess at where the network reads well: the multi-resolution training
# widened it, which is why the recipe gets by with three channels.
#
# ### Exercise 2: which channel decided?
#
# With max pooling over scales, one channel sets each image's winning score. Write
# `winning_channel(channel_logits)`: for logits of shape `(S, N, K)` (channels, images, classes), the
# index of the channel that decided each image's prediction. Predict first: for the smallest digits,
# which of the stored model's channels will win most often?

# %%
def winning_channel(channel_logits):
    ### BEGIN SOLUTION
    predicted = channel_logits.amax(dim=0).argmax(dim=1)
    return channel_logits[:, torch.arange(channel_logits.shape[1]), predicted].argmax(dim=0)
    ### END SOLUTION


# %% tags=["nbval-check-output"]
checks.check_winning_channel_function(winning_channel)

# %% [markdown]
# The share of images each channel decides, against the digit's size, over the three test splits:

# %%
sizes = torch.cat([tests[split].object_sizes.float() for split in SPLITS])
winners = torch.cat([winning_channel(logits[split][0]) for split in SPLITS])
edges = torch.quantile(sizes, torch.linspace(0, 1, 13))
centres, labels, shares = [], [], []
for lo, hi in zip(edges[:-1], edges[1:]):
    inside = (sizes >= lo) & ((sizes < hi) | (hi == edges[-1]))
    centres.append(((lo + hi) / 2).item())
    labels.append(f"{sizes[inside].min():.0f}-{sizes[inside].max():.0f}")
    shares.append([(winners[inside] == k).float().mean().item() for k in range(len(sides))])
fig, ax = plt.subplots(figsize=(7, 3.5))
bottom = [0.0] * len(centres)
for k, side in enumerate(sides):
    heights = [share[k] for share in shares]
    ax.bar(range(len(centres)), heights, bottom=bottom, label=f"{side}-px channel")
    bottom = [b + h for b, h in zip(bottom, heights)]
ax.set_xticks(range(len(centres)), labels, fontsize=7)
ax.set_xlabel("digit size in the 64-px image (px), bins of equal count")
ax.set_ylabel("share of images decided")
ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
ax.set_title("which channel decides, by digit size")
plt.show()
small_wins = (winners[sizes < 15] == len(sides) - 1).float().mean().item()
large_wins = (winners[sizes > 44] == 0).float().mean().item()
print(f"digits under 15 px decided by the {sides[-1]}-px channel: {small_wins:.2f}; "
      f"digits over 44 px decided by the {sides[0]}-px channel: {large_wins:.2f}")

# %% [markdown]
# Under max pooling the winner is also simply the channel that holds the image's largest logit of
# all (the maximum over channels and classes is one number); your function may have found it that
# way. If the winning channel did not depend on the digit's size, the shares would be flat.
#
# ## Summary
#
# - Diagnose first. `cpu-multiscale`'s small-digit errors were neither "too few pixels" alone (96 px
#   with average pooling reads them worse than 64 px) nor pooling alone: with GeM *and* more pixels
#   they are read, and an oracle crop shows the information was there all along.
# - A scale-channel network applies one network to several rescaled copies of the image and pools
#   the logits over scales: no new parameters, one forward pass per channel, costing in proportion to
#   each channel's pixels. Trained end to end through the maximum, it learns which channel to trust.
# - BatchNorm statistics belong to an input size: test each channel with statistics of its own side.
# - Channels follow from arithmetic on object sizes (exercise 1), not from trial on the test split.
# - The final model, `cpu-msresnet101`, misses its targets on a 2-core CPU (section 8 prints each
#   verdict): its training budget is too small for a 101-layer network, and choosing a channel per
#   image costs accuracy. On this data and machine a GeM ResNet-18 does better; the ResNet-101 and its
#   channels are the design for a GPU and real images.
#
# ## Quiz
#
# 1. Why can enlarging the whole test image make small objects *harder* to read?
# 2. A scale-channel network with channels at 16, 32 and 64 px: how many parameters does it add to
#    its network, and how many multiply-adds per image, relative to one 32-px pass?
# 3. In max pooling over scales, a channel that sees a digit at a size it never learned answers
#    "7" with a large logit. What does end-to-end training do about it, and what does test-time-only
#    pooling do?
# 4. Why does each channel need BatchNorm statistics of its own side at test time, although the
#    weights are shared?
# 5. The multi-level head concatenates pooled C3, C4 and C5. What does it add to the parameter count,
#    and why is its compute almost unchanged?
#
# <details><summary>Answers</summary>
#
# 1. The digit keeps its share of the image, so after global average pooling it is as diluted by
#    background as before, and the enlarged background looks like nothing in training (section 2).
# 2. No parameters: the weights are shared. Multiply-adds grow with pixels: (16² + 32² + 64²) / 32² =
#    5.25 times one 32-px pass (section 3 prints it).
# 3. In training, when that wrong logit wins the maximum, the loss pushes it down in the channel that
#    produced it, so the network learns to answer less confidently at unfamiliar sizes. Pooling added
#    after training has no such lesson: the confident wrong channel can win.
# 4. BatchNorm normalises with statistics of what it sees; a 16-px view of a digit gives each layer
#    other means and variances than a 64-px view (FixRes, Touvron et al. 2019). One set of running
#    statistics, updated by every channel, matches none of them.
# 5. The classifier's extra inputs, (C3 + C4) x classes weights, and one GeM exponent per extra level
#    (section 7 prints both counts). The pooling and one matrix product are negligible next to 104
#    convolutions.
#
# </details>
#
# ## Further reading
#
# - Y. Jansson, T. Lindeberg, "Scale-invariant scale-channel networks: deep networks that generalise
#   to previously unseen scales", J. Math. Imaging Vision 64, 2022 (FovMax, FovAvg, and the
#   scale-invariance argument).
# - F. Radenović, G. Tolias, O. Chum, "Fine-tuning CNN image retrieval with no human annotation",
#   TPAMI 2019 (GeM pooling).
# - T.-Y. Lin et al., "Feature Pyramid Networks for Object Detection", CVPR 2017 (levels C2-C5).
# - J. Wang et al., "Deep high-resolution representation learning for visual recognition", TPAMI 2021
#   (HRNet and its classification head).
# - P. Goyal et al., "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour", 2017 (zero-initialised
#   residual branches, section 5.1).
# - H. Touvron, A. Vedaldi, M. Douze, H. Jégou, "Fixing the train-test resolution discrepancy",
#   NeurIPS 2019 (FixRes).
