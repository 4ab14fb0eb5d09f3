# %% [markdown]
# # 04 · Building ResNet-101, and proving it is the real one
#
# A network you build yourself is only worth studying if it is *the* network: the one papers
# report and pretrained checkpoints fit. This notebook assembles ResNet-101 from the bottleneck of
# notebook 03, accounts for every one of its 101 layers, 44.5 million parameters and 7.8 billion
# multiply-adds, and then proves it is torchvision's and timm's ResNet-101 by loading their weights
# strictly and getting bit-identical outputs. Finally it scales the same architecture down to
# something a laptop CPU can train, which is what the rest of the series uses.
#
# **Learning objectives.** After this notebook you can
#
# 1. assemble ResNet-101 from its stem, four stages of [3, 4, 23, 3] bottlenecks and a classifier, and explain the name;
# 2. predict its stage output shapes, parameter count and multiply-adds, and how the cost grows with resolution;
# 3. prove two implementations equal (strict `state_dict` load, identical outputs) and load pretrained weights from torchvision, timm or a file;
# 4. scale the architecture (`width`, `stem="small"`) to a CPU budget and say what it costs.
#
# **Prerequisites.** Notebooks 01 (sizes, receptive fields, MACs) and 03 (the bottleneck).
#
# **Run time:** under 1 min with the defaults, measured on the machine the README's syllabus describes (2 cores, no GPU).
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

# %%
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import skimage.data
import timm
import torch
import torchvision
import torchvision.transforms.v2.functional as TF
from torch import nn

from tutorial_lib import checks
from tutorial_lib.cost import count_flops, count_parameters
from tutorial_lib.data import to_float_images
from tutorial_lib.env import choose_device, seed_everything
from tutorial_lib.models import ARCH_NAMES, create_model, load_weights, resnet101, stage_shapes
from tutorial_lib.norm import randomize_norm
from tutorial_lib.viz import plot_cost_curve

# %% [markdown]
# ## Parameters
#
# The defaults run in about a minute on a 2-core CPU. On a GPU, set `DEVICE = "cuda"` and try
# `SMALL_BATCH = 256`, `TRAIN_STEPS = 20` for a steadier throughput figure.

# %% tags=["parameters"]
SEED = 0
DEVICE = None                  # None: automatic (cuda > mps > cpu), or "cpu", "cuda", "mps"
IMAGE_SIZE = 224               # ImageNet resolution: the paper's figures are for 224 x 224
RESOLUTIONS = (128, 160, 192, 200, 224, 256, 320, 384, 448)   # for the cost-vs-resolution curve
SMALL_WIDTH = 16               # base channels of the CPU-sized ResNet-101 (the paper's is 64)
SMALL_IMAGE = 32               # input side of the CPU-sized model (the series' data is 32-64 px)
SMALL_CLASSES = 10
SMALL_BATCH = 16               # batch of the training-step timing
TRAIN_STEPS = 3                # timed training steps (after one warm-up step); the median is reported
REPEATS = 5                    # timed forward passes of the full model; the median is reported

# %%
seed_everything(SEED)
device = choose_device(DEVICE)
print(f"device: {device}")

# %% [markdown]
# ## 1. The recipe: stem, [3, 4, 23, 3] bottlenecks, classifier
#
# He et al. (2016, Table 1) give the whole network in one column:
#
# | stage | output at 224 px | blocks (ResNet-101) | each block |
# |---|---|---|---|
# | `conv1` + `maxpool` (stem) | 56 × 56 | — | 7×7, 64, stride 2; 3×3 max-pool, stride 2 |
# | `layer1` | 56 × 56 | 3 | 1×1, 64 → 3×3, 64 → 1×1, 256 |
# | `layer2` | 28 × 28 | 4 | 1×1, 128 → 3×3, 128 → 1×1, 512 |
# | `layer3` | 14 × 14 | 23 | 1×1, 256 → 3×3, 256 → 1×1, 1024 |
# | `layer4` | 7 × 7 | 3 | 1×1, 512 → 3×3, 512 → 1×1, 2048 |
# | `avgpool` + `fc` | 1 × 1 | — | global average pool, 1000-way fully connected |
#
# Each stage halves the resolution (except `layer1`, after the stem) and doubles the channels, so
# every block costs about the same. ResNet-50 has the same stages with [3, 4, 6, 3] blocks: the
# extra 17 blocks of ResNet-101 all go to `layer3`.
#
# **Why "101".** Count the layers with weights on the longest path: the stem convolution, three
# convolutions in each of the 3 + 4 + 23 + 3 = 33 bottlenecks, and the fully connected layer:
# `1 + 3 × 33 + 1 = 101`. (The projection shortcuts are parallel to the main path and are not
# counted; nor are BatchNorm and pooling.) Counted on the real model:

# %% tags=["nbval-check-output"]
model = resnet101().eval()
main_path_convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and "downsample" not in n]
linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
blocks = model.stage_blocks
print(f"stages {list(blocks)}: 1 + 3 x {sum(blocks)} + 1 = {1 + 3 * sum(blocks) + 1}")
print(f"counted: {len(main_path_convs)} convolutions on the main path + {len(linears)} linear = "
      f"{len(main_path_convs) + len(linears)}")
assert len(main_path_convs) + len(linears) == 101

# %% [markdown]
# ## 2. Stage output shapes
#
# `stage_shapes` runs the model on PyTorch's `meta` device (shapes without arithmetic, so it is
# instant even for large images) and records each top-level layer's output. Compare with the table
# above; the batch dimension is 1.

# %% tags=["nbval-check-output"]
shapes = stage_shapes(model, IMAGE_SIZE)
for name, shape in shapes.items():
    print(f"{name:<8} {shape}")

# %% tags=["nbval-check-output"]
assert shapes["maxpool"] == (1, 64, 56, 56) and shapes["layer4"] == (1, 2048, 7, 7) if IMAGE_SIZE == 224 else True
x = torch.randn(1, 3, IMAGE_SIZE, IMAGE_SIZE)
with torch.no_grad():
    logits = model(x)          # and the real forward agrees with the meta one
assert logits.shape == (1, 1000) == shapes["fc"]
print("logits:", tuple(logits.shape))

# %% [markdown]
# ## 3. Exactly 44,549,160 parameters
#
# torchvision's model card lists ResNet-101 at 44,549,160 parameters. Ours, and where they live:

# %% tags=["nbval-check-output"]
total = count_parameters(model)
print(f"total: {total:,}")
for name, child in model.named_children():
    params = count_parameters(child)
    if params:
        print(f"  {name:<8}{params:>12,}  ({params / total:5.1%})")
assert total == 44_549_160

# %% [markdown]
# Most parameters sit in the deep, wide stages: `layer3` (23 blocks at 1024 channels) and `layer4`
# (3 blocks at 2048). A 3×3 convolution at width `w` has `9w²` weights, so doubling the width
# quadruples each block's parameters, while halving the resolution leaves them unchanged: parameters do
# not depend on the image size at all.

# %% [markdown]
# ## 4. The cost: 7.80 GMACs at 224 px
#
# `count_flops` counts with `torch.utils.flop_counter` and reports multiply-adds (MACs) and FLOPs
# (2 per MAC; notebook 01). The paper's "7.6 × 10⁹ FLOPs" are multiply-adds of the v1 layout;
# torchvision's v1.5 layout costs 7.80 GMACs (notebook 03).

# %% tags=["nbval-check-output"]
cost = count_flops(model, IMAGE_SIZE, per_module=True)
v1_cost = count_flops(resnet101(stride_in="v1"), IMAGE_SIZE)
print(f"v1.5 (torchvision): {cost['macs'] / 1e9:.2f} GMACs = {cost['flops'] / 1e9:.1f} GFLOPs at {IMAGE_SIZE} px")
print(f"v1   (the paper):   {v1_cost['macs'] / 1e9:.2f} GMACs = {v1_cost['flops'] / 1e9:.1f} GFLOPs")
for name in ("conv1", "layer1", "layer2", "layer3", "layer4", "fc"):
    macs = cost["by_module"][name]
    print(f"  {name:<8}{macs / 1e9:>6.2f} GMACs ({macs / cost['macs']:5.1%})")

# %% [markdown]
# **Correcting a widely copied claim.** A widely copied blog post on "Multi-scale ResNet-101" says
# that "ResNet-101 reduces network depth and computation". Measured on the five ResNet depths of
# He et al. (2016, Table 1), and the two Res2Nets of notebook 06 for comparison, the opposite holds:
# ResNet-101 is about twice as deep as ResNet-50 and costs almost twice as much (the ratios are
# printed below the table).

# %% tags=["nbval-check-output"]
print(f"{'model':<18}{'weighted layers':>16}{'parameters':>13}{'GMACs @224':>12}")
depth_of, gmacs_of = {}, {}
for arch in ARCH_NAMES:
    net = create_model(arch)
    convs = sum(isinstance(m, nn.Conv2d) for n, m in net.named_modules() if "downsample" not in n)
    depth_of[arch], gmacs_of[arch] = convs + 1, count_flops(net, 224)["macs"] / 1e9
    print(f"{arch:<18}{depth_of[arch]:>16}{count_parameters(net):>13,}{gmacs_of[arch]:>12.2f}")
deeper, costlier = depth_of["resnet101"] / depth_of["resnet50"], gmacs_of["resnet101"] / gmacs_of["resnet50"]
print(f"ResNet-101 against ResNet-50: {deeper:.2f}x the layers, {costlier:.2f}x the multiply-adds")
assert 1.9 < deeper < 2.1 and 1.7 < costlier < 2.0

# %% [markdown]
# What the residual design reduces is the *difficulty of training* a deep network (notebook 02),
# and what the bottleneck reduces is the cost *per layer* (notebook 03). Neither makes ResNet-101
# shallower or cheaper than ResNet-50.
#
# **Cost against resolution.** Parameters do not depend on the image size, but every convolution
# runs once per output pixel, so the MACs grow with the number of pixels: quadratically in the side.

# %%
gmacs = [count_flops(model, size)["macs"] / 1e9 for size in RESOLUTIONS]
base = count_flops(model, 224)["macs"] / 1e9
print(f"{'side':>5}{'GMACs':>8}{'(side/224)^2 x 7.80':>21}")
for size, value in zip(RESOLUTIONS, gmacs):
    print(f"{size:>5}{value:>8.2f}{(size / 224) ** 2 * base:>21.2f}")
if 200 in RESOLUTIONS:
    at_200 = gmacs[list(RESOLUTIONS).index(200)]
    print(f"200 px costs {at_200 / ((200 / 224) ** 2 * base) - 1:.1%} more than the quadratic predicts")
plot_cost_curve(RESOLUTIONS, {"ResNet-101 (measured)": gmacs},
                reference={"(side / 224)² × 7.80": [(s / 224) ** 2 * base for s in RESOLUTIONS]},
                xlabel="input side (px)", ylabel="GMACs per image", title="cost grows with the number of pixels")
plt.show()

# %% [markdown]
# The measured curve sits on the quadratic. Two small departures: the classifier (2 MMACs) does
# not grow with the image, so large sizes fall a hair below the curve; and a side that is not a
# multiple of 32 rounds up at each stride-2 layer (notebook 01): at 200 px `layer3` runs on a 13×13
# map where the quadratic assumes 12.5×12.5, and `layer4` on 7×7 instead of 6.25×6.25, so 200 px
# costs more than the curve predicts (the last line of the table above).
#
# How long does one pass take? One forward pass on this machine's device, the median of `REPEATS` passes
# after a warm-up (a single timing would be at the mercy of whatever else the machine does):

# %%
model = model.to(device)
photo = torch.from_numpy(skimage.data.chelsea()).permute(2, 0, 1)
photo = TF.center_crop(TF.resize(photo, IMAGE_SIZE, antialias=True), IMAGE_SIZE)
batch = TF.normalize(to_float_images(photo), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)).unsqueeze(0).to(device)
times = []
with torch.no_grad():
    model(batch)                       # warm-up
    for _ in range(REPEATS):
        start = time.perf_counter()
        model(batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
forward_seconds = sorted(times)[len(times) // 2]
print(f"one {IMAGE_SIZE} px image: median {forward_seconds * 1000:.0f} ms on {device} over {REPEATS} passes "
      f"(fastest {min(times) * 1000:.0f}, slowest {max(times) * 1000:.0f}; {cost['flops'] / forward_seconds / 1e9:.0f} GFLOP/s)")

# %% [markdown]
# ## 5. Proof: it *is* torchvision's and timm's ResNet-101
#
# Two models are the same network when (1) every `state_dict` key and shape matches, so weights
# load with `strict=True`, and (2) with the same weights they compute the same function. There is
# no network here, so the reference models are created locally with random weights; what matters
# is that the *same* random weights go into both. The reference's BatchNorm statistics and affine
# parameters are randomized first with `tutorial_lib.norm.randomize_norm` (the helper notebooks 02
# and 03 used), so that eval mode has non-trivial statistics to get wrong. The test input is the
# cat from notebook 01.

# %% tags=["nbval-check-output"]
references = {
    "torchvision": torchvision.models.resnet101(weights=None),
    "timm": timm.create_model("resnet101", pretrained=False),
}
for name, reference in references.items():
    randomize_norm(reference, seed=SEED)
    reference.to(device).eval()
    ours = resnet101().to(device)
    same_keys = list(ours.state_dict()) == list(reference.state_dict())
    ours.load_state_dict(reference.state_dict(), strict=True)    # raises on any missing/extra/mis-shaped key
    ours.eval()
    with torch.no_grad():
        difference = (ours(batch) - reference(batch)).abs().max().item()
    assert same_keys and difference == 0.0
    print(f"{name:<12} same keys in the same order: {same_keys}; strict load: ok; "
          f"max |output difference| = {difference}")

# %% [markdown]
# ## 6. Loading real pretrained weights
#
# With network access, either library downloads ImageNet weights and hands them over unchanged,
# because the keys are the same (not run here: the series downloads nothing you did not ask for, and a file holds 44.5 million
# float32 values, $44.5 \cdot 10^6 \cdot 4$ bytes $\approx 170$ MiB):
#
# ```python
# from torchvision.models import ResNet101_Weights
# from tutorial_lib.models import load_weights, resnet101
#
# # torchvision: cached under ~/.cache/torch/hub/checkpoints/
# weights = ResNet101_Weights.IMAGENET1K_V2
# reference = torchvision.models.resnet101(weights=weights)
# model = resnet101()
# model.load_state_dict(reference.state_dict(), strict=True)
# preprocess = weights.transforms()          # resize, crop and normalize as at evaluation time
#
# # timm: downloaded from the Hugging Face Hub
# reference = timm.create_model("resnet101", pretrained=True)
# model.load_state_dict(reference.state_dict(), strict=True)
#
# # a checkpoint file you already have (e.g. copied from a machine with network access)
# model = load_weights(resnet101(), "resnet101-cd907fc2.pth")
# ```
#
# `load_weights` reads the file with `torch.load(..., weights_only=True)` (it never runs code from
# the file), accepts timm's `.safetensors`, nested `{"state_dict": ...}` checkpoints and
# `module.`-prefixed keys, and refuses to load anything that does not match. Here it is on a file
# written locally:

# %%
with tempfile.TemporaryDirectory() as folder:
    path = Path(folder, "resnet101_random.pth")
    torch.save(references["torchvision"].state_dict(), path)
    loaded = load_weights(resnet101(), path).to(device).eval()
    with torch.no_grad():
        print("loaded; max |difference| from the source:",
              (loaded(batch) - references["torchvision"](batch)).abs().max().item())
    try:
        load_weights(resnet101(width=32, stem="small", num_classes=10), path, max_listed=3)
    except ValueError as error:
        # The message names the file by its full path; print only its name, which is what a reader needs.
        print("\nValueError:", str(error).replace(str(path), path.name))

# %% [markdown]
# The error names the mismatched keys and infers, from the file, the builder call that would fit.

# %% [markdown]
# ## 7. The same architecture, sized for a CPU
#
# Training on ImageNet takes days: Goyal et al. (2017, section 1) report 29 hours for ResNet-50's 90
# epochs on eight P100 GPUs, and ResNet-101 costs about twice the multiply-adds. The rest of this series trains on
# small images (32-64 px) on a laptop, with the same architecture scaled down by two options:
#
# * `width`: the base channel count (64 in the paper). Parameters and MACs both scale with about
#   `width²`, since every convolution's weights are `C_out × C_in × k²`.
# * `stem="small"`: a 3×3/1 convolution and no max-pool, instead of 7×7/2 + max-pool. A 32 px image
#   through the ImageNet stem would reach `layer1` at 8×8 and `layer4` at 1×1; the small stem keeps
#   32×32 for `layer1` and 4×4 for `layer4`. The paper's CIFAR-10 networks (section 4.2) start the
#   same way, at 32×32, but have three stages and end at 8×8.
#
# It is still a ResNet-101: 33 bottlenecks in [3, 4, 23, 3], 101 weighted layers.

# %% tags=["nbval-check-output"]
small = resnet101(num_classes=SMALL_CLASSES, width=SMALL_WIDTH, stem="small")
small_params = count_parameters(small)
small_macs = count_flops(small, SMALL_IMAGE)["macs"]
print(f"ResNet-101, width {SMALL_WIDTH}, small stem, {SMALL_CLASSES} classes: "
      f"{small_params:,} parameters, {small_macs / 1e6:.1f} MMACs at {SMALL_IMAGE} px")
print(f"  vs the full model at {IMAGE_SIZE} px: {total / small_params:.0f}x fewer parameters, "
      f"{cost['macs'] / small_macs:.0f}x fewer MACs per image")
for name, shape in stage_shapes(small, SMALL_IMAGE).items():
    if name.startswith("layer") or name in ("conv1", "fc"):
        print(f"  {name:<7} {shape}")

# %% [markdown]
# Can a CPU train it? Time a few training steps (forward, loss, backward, SGD step) on random data,
# after one warm-up step, and take the median:

# %%
small = small.to(device).train()
optimizer = torch.optim.SGD(small.parameters(), lr=0.1, momentum=0.9)
images = torch.randn(SMALL_BATCH, 3, SMALL_IMAGE, SMALL_IMAGE, device=device)
labels = torch.randint(0, SMALL_CLASSES, (SMALL_BATCH,), device=device)

def train_step() -> float:
    optimizer.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(small(images), labels)
    loss.backward()
    optimizer.step()
    return loss.item()

train_step()                                   # warm-up
step_times = []
for _ in range(TRAIN_STEPS):
    start = time.perf_counter()
    train_step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    step_times.append(time.perf_counter() - start)
seconds = sorted(step_times)[len(step_times) // 2]
print(f"median {seconds * 1000:.0f} ms per step of {SMALL_BATCH} images over {TRAIN_STEPS} steps: "
      f"{SMALL_BATCH / seconds:.0f} images/s on {device}")

# %% [markdown]
# A training step costs about three forward passes: the backward pass computes gradients for both
# the activations and the weights, about twice the forward's work (Kaplan et al. 2020, section 2.1,
# count 6 operations per parameter and example for training against 2 for the forward pass). The
# narrow network's rate per MAC need not match the full model's; what matters here is the absolute
# figure. At the measured rate:

# %%
for images_per_epoch in (5_000, 50_000):
    print(f"an epoch of {images_per_epoch:,} {SMALL_IMAGE} px images: about "
          f"{images_per_epoch * seconds / SMALL_BATCH / 60:.1f} min on {device}")
print("ResNet-101 at 224 px, one ImageNet epoch (1.28 M images) at 3 x the forward time measured above: "
      f"about {1.28e6 * 3 * forward_seconds / 3600:.0f} h on {device}")


# %% [markdown]
# ## Exercises
#
# **Exercise 1: where does one more block cost the most?** Section 1 says every block costs about
# the same because each stage halves the resolution and doubles the channels. Test it on the block
# you would add to make a network deeper: one more *non-first* bottleneck (`planes` p, 4p channels in
# and out, no projection) in `layer1`, `layer2`, `layer3` or `layer4` of the full model at 224 px.
# Predict first: in which stage does it add the most parameters, and in which the most MACs? Then
# write `extra_block_cost(stage)` returning `(parameters, MACs)` from the layer shapes (convolutions
# and BatchNorm weights and biases; p = 64·2^(stage−1); sides from the table in section 1). The
# check builds each block and counts it.

# %%
def extra_block_cost(stage: int) -> tuple[int, int]:
    ### BEGIN SOLUTION
    planes, side = 64 * 2 ** (stage - 1), 56 // 2 ** (stage - 1)
    conv_weights = 4 * planes * planes + 9 * planes * planes + planes * 4 * planes   # 17 p^2
    norm_params = 2 * (planes + planes + 4 * planes)
    return conv_weights + norm_params, conv_weights * side * side
    ### END SOLUTION


for stage in (1, 2, 3, 4):
    params, macs = extra_block_cost(stage)
    print(f"layer{stage}: {params:>10,} parameters, {macs / 1e6:6.1f} MMACs")

# %% tags=["nbval-check-output"]
checks.check_extra_block_cost_function(extra_block_cost)

# %% [markdown]
# **Exercise 2: fit a budget.** Build a ResNet-101 (same blocks and stages) for 10 classes and
# 32 px images with **fewer than 1,000,000 parameters** and **fewer than 50 million MACs** per image.
# Parameters and MACs scale with about `width²`: start from the `SMALL_WIDTH` model above and solve
# for the width.

# %%
budget_model = None
### BEGIN SOLUTION
# 2.68 M parameters at width 16; (1.0 / 2.68) ** 0.5 * 16 = 9.8, so width 8 fits (and 39 MMACs < 50).
budget_model = resnet101(num_classes=10, width=8, stem="small")
### END SOLUTION

# %% tags=["nbval-check-output"]
checks.check_small_resnet(budget_model, max_params=1_000_000, max_macs=50_000_000, image_size=32, num_classes=10)

# %% [markdown]
# **Exercise 3: predict the shapes.** For the full ResNet-101 (ImageNet stem, width 64) and a
# 100 px input, write down the `(channels, height, width)` output of each stage, without running
# anything. Remember the ×4 expansion and that sizes round up at stride 2 (100 is not a multiple of
# 32, so rounding happens more than once).

# %%
predicted = None
### BEGIN SOLUTION
predicted = {"layer1": (256, 25, 25), "layer2": (512, 13, 13), "layer3": (1024, 7, 7), "layer4": (2048, 4, 4)}
### END SOLUTION

# %% tags=["nbval-check-output"]
checks.check_stage_shapes(predicted, model=resnet101(), image_size=100)

# %% [markdown]
# ## Summary
#
# - ResNet-101 = stem + [3, 4, 23, 3] bottlenecks + fc; 101 = 1 + 3 × 33 + 1 weighted layers on the
#   main path. Stages halve the resolution and double the channels: 56 → 28 → 14 → 7 px at 224 px.
# - It has exactly 44,549,160 parameters (`layer3` and `layer4` hold most of them) and costs
#   7.80 GMACs = 15.6 GFLOPs at 224 px (7.57 GMACs in the paper's v1 layout); the cost grows with
#   the number of pixels. It is deeper and more expensive than ResNet-50, not less.
# - Built from `tutorial_lib`, it loads torchvision's and timm's weights strictly and gives outputs
#   identical to theirs (maximum difference 0), so pretrained checkpoints apply unchanged;
#   `load_weights` loads local files safely and explains mismatches.
# - `width` and `stem="small"` shrink the same architecture for 32 px images on a CPU.
#
# ## Quiz
#
# 1. How many weighted layers does ResNet-200, with `[3, 24, 36, 3]` bottlenecks, have?
# 2. Does a 448 px input change ResNet-101's parameter count? Its MACs?
# 3. Two models load each other's `state_dict` with `strict=True`. Are they the same network?
# 4. Why does the small stem drop the max-pool for 32 px inputs?
# 5. ResNet-101 adds its 17 extra blocks (over ResNet-50) to `layer3`. After Exercise 1, why there
#    rather than `layer4`?
#
# <details><summary>Answers</summary>
#
# 1. `1 + 3 × (3 + 24 + 36 + 3) + 1 = 200`.
# 2. No: parameters do not depend on the input size. Yes: about 4× (every layer has 4× the output pixels).
# 3. Not necessarily: keys and shapes can match while the computation differs (v1 and v1.5 are an
#    example); the proof also needs identical outputs on the same input.
# 4. With the ImageNet stem, a 32 px image would be 8 px in `layer1` and 1 px in `layer4`, too small to
#    keep any spatial structure; the paper's CIFAR networks start at full resolution for the same reason.
# 5. A block costs the same MACs in every stage, but a `layer4` block has 4× the parameters of a
#    `layer3` one: `layer3` adds depth at a quarter of the parameters (and far fewer than `layer4`
#    would need for the same compute). He et al. 2016 give the layout (Table 1) without discussing the
#    choice; this is a reading of the counts, not the paper's argument.
# </details>
#
# ## Further reading
#
# - K. He, X. Zhang, S. Ren, J. Sun, *Deep Residual Learning for Image Recognition*, CVPR 2016:
#   Table 1 (architectures, multiply-adds), section 4.2 (CIFAR-10 networks).
# - P. Goyal et al., *Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour*, 2017: section 1, the
#   29-hour, eight-GPU ResNet-50 baseline the paper shortens.
# - J. Kaplan et al., *Scaling Laws for Neural Language Models*, 2020: section 2.1, the forward and
#   backward operation counts (2 and 4 per parameter and example).
# - torchvision documentation, *ResNet101_Weights*: parameter count, accuracy and "GFLOPS"
#   (multiply-adds) of the released checkpoints.
# - R. Wightman, H. Touvron, H. Jégou, *ResNet strikes back: An improved training procedure in timm*,
#   2021: what training alone adds to the same architecture.
