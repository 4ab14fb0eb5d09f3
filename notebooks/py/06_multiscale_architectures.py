# %% [markdown]
# # 06 · Multi-scale architectures: feature pyramids and Res2Net
#
# The same digit, the same cat, the same car can cover ten pixels of an image or most of it. A
# convolution's filter has a fixed size in pixels, so a network that must recognise objects at every
# size needs features at every scale. A ResNet already computes them: its four stages form a
# *pyramid* of feature maps, each at half the resolution of the one before and seeing a larger
# patch of the image. Detectors read several levels of that pyramid (Lin et al. 2017, FPN);
# Res2Net (Gao et al., TPAMI 2021) goes one step further and mixes several scales *inside every
# block*. This notebook reads ResNet-101's pyramid on a real photo, builds Res2Net's block from its
# equation and proves it equal to the package's (and therefore timm's), measures how far each of its
# groups sees, and finally trains a ResNet and a Res2Net of the same depth and size (the blocks of
# ResNet-50 and Res2Net-50, two per stage) on digits, and measures their accuracy against object size.
#
# **Learning objectives.** After this notebook you can
#
# 1. name the levels C2-C5 of a ResNet's feature pyramid and give each one's shape, stride and receptive field;
# 2. build a Res2Net bottleneck (split, hierarchical 3×3 convolutions, concatenate) and prove it equals a reference implementation;
# 3. measure a receptive field by back-propagation, and explain why Res2Net's groups see 3, 5 and 7 pixels while ResNet's 3×3 sees 3;
# 4. compare two architectures fairly (equal parameters, MACs and training budget) and report the result with its uncertainty, measured per object size.
#
# **Prerequisites.** Notebooks 01 (receptive fields), 03 (the bottleneck), 04 (ResNet-101, its stages
# and `stage_shapes`) and 05 (`fit` and `evaluate`).
#
# **Run time:** about 2 min with the defaults, measured on the machine the README's syllabus describes (2 cores, no GPU).
# Two trainings take most of it.
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
import json
import math
import time
from functools import partial
from pathlib import Path

import matplotlib.pyplot as plt
import skimage.data
import torch
import torchvision.transforms.v2.functional as TF
from torch import nn
from tqdm.auto import tqdm

from tutorial_lib import checks, viz
from tutorial_lib.blocks import Bottleneck, Res2NetBottleneck, projection
from tutorial_lib.checks import prove_equal
from tutorial_lib.cost import count_flops, count_parameters
from tutorial_lib.data import DEFAULT_NUM_SAMPLES, load_dataset, object_size_range, to_float_images
from tutorial_lib.env import choose_device, seed_everything
from tutorial_lib.layers import measure_receptive_field, receptive_field
from tutorial_lib.models import ResNet, res2net50_26w_4s, res2net101_26w_4s, resnet50, resnet101, stage_shapes
from tutorial_lib.multiscale import PYRAMID_LEVELS, feature_pyramid
from tutorial_lib.norm import randomize_norm
from tutorial_lib.recipes import get_recipe
from tutorial_lib.train import evaluate, fit
from tutorial_lib.tuning import mean_difference, paired_difference

# %% [markdown]
# ## Parameters
#
# Sections 1-4 are counts, shapes and equalities that do not depend on the budget; only section 5
# trains: a ResNet and a Res2Net with two blocks per stage (26 layers) at width 8, each for 256 steps
# of 64 images (4 epochs of 4,096), which is most of the notebook's run time. That is enough for both
# to learn the digits of the training sizes (section 5 asserts it), not enough to rank the two
# architectures from one seed (section 5 says why, with numbers).
#
# On a GPU set `DEVICE = "cuda"`, `WIDTH = 64`, `BLOCKS = (3, 4, 6, 3)` (the real ResNet-50 and
# Res2Net-50-26w-4s), `NUM_TRAIN = 16000`, `EPOCHS = 15`, `BATCH_SIZE = 128`, `LR = 4e-3`,
# `NUM_TEST = 2000` and `SEEDS = (0, 1, 2)` to run the same comparison at a scale where a difference
# between the two architectures can rise above the noise. These values were **not run** for this
# notebook; expect minutes, not seconds.

# %% tags=["parameters"]
SEED = 0
DEVICE = None            # None: automatic (cuda > mps > cpu), or "cpu", "cuda", "mps"
IMAGE_SIZE = 224         # input side for ResNet-101's pyramid (section 2); a multiple of 32
TRAIN_IMAGE_SIZE = 32    # multiscale-digits image side for the training comparison (section 5)
WIDTH = 8                # base width of the two trained networks (64 in the papers)
BLOCKS = (2, 2, 2, 2)    # blocks per stage of the trained networks; (3, 4, 6, 3) is ResNet-50 / Res2Net-50
NUM_TRAIN = 4096         # training images
NUM_TEST = 500           # images per test split
EPOCHS = 4               # passes over the training images
BATCH_SIZE = 64          # images per step
LR = 8e-3                # AdamW peak learning rate, one-cycle schedule
SEEDS = (0,)             # one training run per seed and network; (0, 1) doubles the time and shows the spread

# %%
seed_everything(SEED)
device = choose_device(DEVICE)
print(f"device: {device}")

# %% [markdown]
# ## 1. Why multi-scale
#
# `multiscale-digits` (notebook 00) pastes real handwritten digits onto real photos at controlled
# sizes. The training split and `test` hold digits of the same sizes; `test-small` and `test-large`
# hold digits smaller and larger than any seen in training. Same task, same image size, different
# object scale (each image is titled with its label and the digit's side in pixels):

# %%
splits = {name: load_dataset("multiscale-digits", name, image_size=TRAIN_IMAGE_SIZE, num_samples=NUM_TEST)
          for name in ("test-small", "test", "test-large")}
fig = viz.show_splits(splits, n=8, seed=SEED, title=f"the same task at three object scales ({TRAIN_IMAGE_SIZE} px images)")
plt.show()

# %% tags=["nbval-check-output"]
ranges = {name: object_size_range(name, TRAIN_IMAGE_SIZE) for name in ("train", "test-small", "test", "test-large")}
for name, (low, high) in ranges.items():
    print(f"{name:>10}: objects of {low}-{high} px in {TRAIN_IMAGE_SIZE} x {TRAIN_IMAGE_SIZE} images")
assert ranges["test-small"][1] < ranges["train"][0] and ranges["test-large"][0] > ranges["train"][1]

# %% [markdown]
# A 3×3 filter applied to a 30-pixel digit sees a fragment of a stroke; applied to a 6-pixel digit it
# sees half the digit. A network can only be robust to scale if some of its features look at small
# patches and some at large ones, and if what it learns at one scale carries over to others. Three
# families of answers exist:
#
# * **image pyramids**: run the network on several resized copies of the image (notebook 07: multi-scale
#   training and testing);
# * **feature pyramids**: use the stages of one network, each coarser and wider-seeing than the last
#   (section 2; FPN builds its detector on them);
# * **multi-scale blocks**: let every block combine several receptive fields at once (section 3:
#   Res2Net; Inception's parallel 1×1, 3×3 and 5×5 branches are an older example).
#
# ## 2. The feature pyramid of ResNet-101
#
# A ResNet's stem divides the resolution by 4, then `layer2`, `layer3` and `layer4` each halve it
# again. The outputs of `layer1` ... `layer4` are called C2 ... C5 (Lin et al. 2017, section 3): level
# C*k* has stride 2^*k* with respect to the input. `tutorial_lib.multiscale.feature_pyramid` returns
# them in one forward pass, built with torchvision's `create_feature_extractor` (it traces the model
# and drops what the four outputs do not need, here the pooling and the classifier).
#
# The input is the cat photo that scikit-image ships, resized and cropped to `IMAGE_SIZE`. The weights
# are **random** (no download here; notebook 04 shows how to load pretrained ones), so the maps below
# show the geometry of the pyramid, not learned cat detectors.

# %% tags=["nbval-check-output"]
torch.manual_seed(SEED)
model = resnet101().eval().to(device)
pyramid = feature_pyramid(model)

photo = torch.from_numpy(skimage.data.chelsea()).permute(2, 0, 1)
photo = TF.center_crop(TF.resize(photo, IMAGE_SIZE, antialias=True), IMAGE_SIZE)
batch = TF.normalize(to_float_images(photo), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)).unsqueeze(0).to(device)
with torch.no_grad():
    features = pyramid(batch)

print("input:", tuple(batch.shape))
for level, fmap in features.items():
    print(f"{level}: {tuple(fmap.shape)}")

# %% [markdown]
# **Check.** The pyramid's shapes are the stage shapes of notebook 04 (computed there on the `meta`
# device), and the extractor shares the model's weights instead of copying them:

# %% tags=["nbval-check-output"]
expected = stage_shapes(model, IMAGE_SIZE)
for stage, level in PYRAMID_LEVELS.items():
    assert tuple(features[level].shape) == expected[stage], (level, features[level].shape, expected[stage])
assert pyramid.state_dict()["layer1.0.conv1.weight"].data_ptr() == model.layer1[0].conv1.weight.data_ptr()
print("C2-C5 equal the outputs of layer1-layer4; the extractor shares", f"{count_parameters(pyramid):,}",
      "parameters with ResNet-101 (all but the classifier's)")

# %% [markdown]
# **Stride and receptive field of each level.** `tutorial_lib.layers.receptive_field` walks the layers
# of the main path and applies the recurrence of notebook 01 (Araujo et al. 2019): a layer with kernel
# *k* adds (*k* − 1) × *jump* pixels to the receptive field, and multiplies the jump (the stride with
# respect to the input) by its own stride. The last layer of each stage gives that level's numbers:

# %% tags=["nbval-check-output"]
rows = receptive_field(model)
last_of_stage = {}
for row in rows:
    last_of_stage[row.name.split(".")[0]] = row     # the last conv/pool of each top-level child

print(f"{'level':<6}{'stage':<8}{'channels':>9}{'map':>9}{'stride':>8}{'receptive field':>17}")
for stage, level in PYRAMID_LEVELS.items():
    fmap, field = features[level], last_of_stage[stage]
    print(f"{level:<6}{stage:<8}{fmap.shape[1]:>9}{f'{fmap.shape[2]}x{fmap.shape[3]}':>9}{field.jump:>8}{field.size:>14} px")
    assert field.jump == 2 ** int(level[1]) == IMAGE_SIZE // fmap.shape[-1]   # C_k has stride 2^k

# %% [markdown]
# Where the numbers come from, for the bottlenecks of notebook 03 (only the 3×3 widens the field):
#
# * C2: the stem sees 11 px (7×7 convolution with stride 2, then a 3×3 max-pool with stride 2: 7 + 2·2),
#   and each of `layer1`'s 3 blocks adds 2 × 4 = 8: **35 px**;
# * C3: `layer2`'s first 3×3 adds 2 × 4 and doubles the jump to 8, its 3 other blocks add 2 × 8 each: **91 px**;
# * C4: 2 × 8 for the strided block, then 22 blocks × 2 × 16: **811 px**. The 23 blocks of `layer3`
#   are what makes ResNet-101 see far more than ResNet-50, whose `layer3` has 6 (C4:
#   $91 + 2 \cdot 8 + 5 \cdot 2 \cdot 16 = 267$ px);
# * C5: 2 × 16, then 2 blocks × 2 × 32: **971 px**.
#
# **Check by measurement.** The arithmetic can be verified without trusting it: back-propagate from
# one output pixel and see which input pixels get a non-zero gradient (`measure_receptive_field`,
# notebook 01). For C2 and C3 the measured square must have exactly the computed side:

# %% tags=["nbval-check-output"]
stem = [model.conv1, model.bn1, model.relu, model.maxpool]
probes = {"C2": (nn.Sequential(*stem, model.layer1), "layer1", 64),
          "C3": (nn.Sequential(*stem, model.layer1, model.layer2), "layer2", 128)}
for level, (truncated, stage, side) in probes.items():
    measured = measure_receptive_field(truncated, side, trials=2, seed=SEED)
    print(f"{level}: measured {measured.height} x {measured.width} px, computed {last_of_stage[stage].size} px")
    assert measured.height == measured.width == last_of_stage[stage].size

# %% [markdown]
# C4's and C5's receptive fields (811 and 971 px) are larger than the 224-px image itself: every C5
# pixel *could* depend on every input pixel. That is the *theoretical* field. The *effective* one is
# much smaller: the number of paths through the network to a far-away pixel is tiny compared with the
# paths to a central one, so the gradient (the influence) falls off roughly like a Gaussian around the
# centre (Luo et al. 2016). Now the pyramid itself: each level's mean activation and its most varied
# channel, drawn pixel by pixel. Each panel has its own colour scale (dark to bright from its own
# minimum to its maximum), so compare patterns within a level, not brightness between levels:

# %%
fig = viz.plot_feature_pyramid(photo, {level: fmap[0] for level, fmap in features.items()},
                               title="ResNet-101 with random weights: the pyramid C2-C5 of one photo")
plt.show()


# %% [markdown]
# What to see: the resolution halves at every level (56, 28, 14, 7 pixels across), so a C5 pixel
# covers a 32 × 32 block of the photo: C2 can still place the cat's eye within a few pixels, C5 only
# says "upper left". Even with random weights C2 and C3 follow the photo's edges and contrast (the
# eyes, the nose), because a random convolution is still a local filter. C4 and C5 show mostly a
# bright centre fading towards the border: their receptive fields (811 and 971 px) reach far past
# the 224-px image, and an untrained network mainly reports how much of each pixel's field lies on
# the image rather than on the zero padding. With trained weights the deep levels respond to object
# parts instead. A detector that needs both precise positions and wide context
# uses several levels: FPN assigns each object to the level whose scale matches its size (the first
# exercise) and adds a top-down path that passes C5's context back down to the fine levels.
#
# ## 3. Res2Net: several scales inside one block
#
# ResNet's bottleneck has one 3×3 convolution, so every block widens the receptive field by the same
# amount. Gao et al. (TPAMI 2021, section 3.1, Fig. 2) replace it by a small hierarchy. The 1×1
# convolution's output is split into *s* groups of *w* channels, x₁ ... x_*s*, and (their eq. 1)
#
# $$y_1 = x_1, \qquad y_2 = K_2(x_2), \qquad y_i = K_i(x_i + y_{i-1}) \quad (2 < i \le s)$$
#
# where each $K_i$ is a 3×3 convolution (with BatchNorm and ReLU). Group *i* has gone through *i* − 1
# stacked 3×3 convolutions, so it sees a (2*i* − 1)-pixel square: 1, 3, 5, 7 for *s* = 4. The groups
# are concatenated and the second 1×1 convolution mixes them, as in a bottleneck. "26w×4s" means
# *w* = 26 channels per group (at the first stage; *w* = ⌊planes × 26 / 64⌋) and *s* = 4 groups.
#
# Two details follow the authors' code and timm's `Bottle2neck`, and matter for loading their
# weights and reproducing their outputs:
#
# * the state_dict stores the convolved groups first (`convs.0` = K₂, `convs.1` = K₃, `convs.2` = K₄)
#   and the pass-through group x₁ **last** in the concatenation;
# * in the first block of a stage (the one with stride 2 or a projection, a "stage" block), the groups
#   are **not** chained, and the pass-through group is average-pooled (3×3) to the new resolution. In
#   a strided stage block chaining is impossible (x_*i* and y_*i*−1 would not have the same
#   resolution); `layer1`'s first block only widens the channels, and there it is the authors' convention.
#
# ```
#             ┌ g0 ──── 3x3 ───────────────────────┐  convs.0 = K_2: sees 3 px
# x ── 1x1 ───┼ g1 ─(+)─ 3x3 ──────────────────────┤  convs.1 = K_3: sees 5 px
#  (s·w ch)   ├ g2 ──────────(+)─ 3x3 ─────────────┼─ concat ── 1x1 ──(+)── ReLU
#             └ g3 ───────────────── pass-through ─┘  x_1: 1 px    (4·planes) │
# x ────────────────────────── identity or projection ────────────────────────┘
#    each (+) adds the output of the 3x3 just above it (inner blocks only)
# ```
#
# Built inline, with the package's attribute names, one operation per line:

# %%
class InlineRes2NetBottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, base_width=26, scale=4):
        super().__init__()
        width = planes * base_width // 64                        # channels per group ("26w")
        self.width = width
        self.scale = scale
        self.is_first = stride > 1 or downsample is not None      # a stage block: groups not chained
        self.conv1 = nn.Conv2d(inplanes, width * scale, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width * scale)
        # scale - 1 convolutions: one group passes through unconvolved
        self.convs = nn.ModuleList(
            [nn.Conv2d(width, width, kernel_size=3, stride=stride, padding=1, bias=False) for _ in range(scale - 1)])
        self.bns = nn.ModuleList([nn.BatchNorm2d(width) for _ in range(scale - 1)])
        self.pool = nn.AvgPool2d(kernel_size=3, stride=stride, padding=1) if self.is_first else None
        self.conv3 = nn.Conv2d(width * scale, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x

        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)

        groups = torch.split(out, self.width, dim=1)
        outputs = []
        for i in range(self.scale - 1):
            if i == 0 or self.is_first:
                y = groups[i]
            else:
                y = y + groups[i]               # eq. 1: the previous group's output joins this group
            y = self.convs[i](y)
            y = self.bns[i](y)
            y = self.relu(y)
            outputs.append(y)
        if self.pool is not None:
            outputs.append(self.pool(groups[-1]))  # stage block: the pass-through group must shrink too
        else:
            outputs.append(groups[-1])
        out = torch.cat(outputs, dim=1)

        out = self.conv3(out)
        out = self.bn3(out)

        if self.downsample is not None:
            identity = self.downsample(x)

        out += identity
        out = self.relu(out)
        return out


# %% [markdown]
# **Prove it equals the package's block**, for both kinds of block: a stage block (stride 2 with a
# projection, like `layer2.0`) and an inner block (like `layer2.1`). `tutorial_lib.checks.prove_equal`,
# used since notebook 02, asserts the same parameter count, that the package's weights load with
# `strict=True` (same keys, same shapes), and bit-identical outputs (`torch.equal`) in training mode
# and in eval mode. `tutorial_lib.norm.randomize_norm` first gives the package block's BatchNorm
# layers random statistics and affine parameters, so that eval mode has something to get wrong.
# (`tests/test_res2net.py` shows the package block equals timm's `Bottle2neck` the same way.)

# %% tags=["nbval-check-output"]
torch.manual_seed(SEED)
x_stage = torch.randn(2, 256, 28, 28, device=device)
stage_ref = randomize_norm(Res2NetBottleneck(256, 128, stride=2, downsample=projection(256, 512, stride=2)).to(device), seed=SEED)
stage_inline = InlineRes2NetBottleneck(256, 128, stride=2, downsample=projection(256, 512, stride=2)).to(device)
print("stage block (256 -> 512, stride 2):", prove_equal(stage_inline, stage_ref, x_stage))

x_inner = torch.randn(2, 512, 14, 14, device=device)
inner_ref = randomize_norm(Res2NetBottleneck(512, 128).to(device), seed=SEED)
inner_inline = InlineRes2NetBottleneck(512, 128).to(device)
print("inner block (512 -> 512):         ", prove_equal(inner_inline, inner_ref, x_inner))
print("keys:", list(inner_ref.state_dict())[:8], "...")


# %% [markdown]
# From here on the notebook uses `tutorial_lib.blocks.Res2NetBottleneck` and the builders
# `res2net50_26w_4s` / `res2net101_26w_4s`, whose state_dict keys equal timm's.
#
# **How far does each group see?** Measure it: a small module returns one group of what `conv3`
# receives (the concatenation, captured with a forward pre-hook), and `measure_receptive_field`
# back-propagates from its centre pixel. The prediction, in timm's order: the convolved groups see
# 3, 5 and 7 pixels and the pass-through group 1 pixel in an inner block; in a stage block nothing is
# chained, so every convolved group sees 3 pixels, and so does the pooled pass-through group.
#
# One precaution makes the measurement exact. With random weights, a pixel at the very edge of the
# field is reached by few paths, and a ReLU that happens to be off, or two paths whose contributions
# cancel, can hide it: the measured square then comes out a pixel short. To measure the *theoretical*
# field (every pixel that some path connects), open every path first: positive weights, and a positive
# shift after every BatchNorm so that no ReLU is ever off. (This does not work through a max-pool,
# which passes the gradient to one input only; that is why section 2 took the union of two random
# trials for C2 and C3.)

# %% tags=["nbval-check-output"]
class GroupOutput(nn.Module):
    # Runs a Res2Net block and returns group `index` of the concatenation that its conv3 receives.
    def __init__(self, block, index):
        super().__init__()
        self.block = block
        self.index = index

    def forward(self, x):
        captured = []
        hook = self.block.conv3.register_forward_pre_hook(lambda module, inputs: captured.append(inputs[0]))
        try:
            self.block(x)
        finally:
            hook.remove()
        start = self.index * self.block.width
        return captured[0][:, start:start + self.block.width]


def open_all_paths(net):
    # Every weight positive and every BatchNorm output shifted up: all ReLUs pass, no paths cancel.
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.fill_(1.0 / m.weight[0].numel())
            elif isinstance(m, nn.BatchNorm2d):
                m.bias.fill_(3.0)
    return net.eval()


probe_blocks = {
    "inner block": Res2NetBottleneck(64, 16),
    "stage block (stride 2)": Res2NetBottleneck(64, 16, stride=2, downsample=projection(64, 64, stride=2)),
}
fields = {}
for name, block in probe_blocks.items():
    block = open_all_paths(block.to(device))
    fields[name] = [measure_receptive_field(GroupOutput(block, i), 15, trials=1, seed=SEED).height for i in range(block.scale)]
    whole = measure_receptive_field(block, 15, trials=1, seed=SEED).height
    print(f"{name:>23}: groups (convolved..., pass-through) see {fields[name]} px; the block's output sees {whole} px")
plain = measure_receptive_field(open_all_paths(Bottleneck(64, 16).to(device)), 15, trials=1, seed=SEED).height
print(f"{'ResNet Bottleneck':>23}: its single 3x3 sees {plain} px")
assert fields["inner block"] == [3, 5, 7, 1] and fields["stage block (stride 2)"] == [3, 3, 3, 3] and plain == 3

# %% [markdown]
# One inner Res2Net block widens the receptive field by 6 pixels (× the jump), where a ResNet
# bottleneck widens it by 2, and its output mixes features of 1, 3, 5 and 7 pixels. Over a whole
# network that compounds. Take both 50-layer networks with the small stem of notebook 04 (for 32-pixel
# inputs). For ResNet-50, `receptive_field` computes the final features' field. For Res2Net it refuses
# with a `TypeError`: it follows a *single* path through the layers in the order they are registered,
# and Res2Net's groups are parallel paths. Walked in order, a stage block's three stride-2
# convolutions and its pool, which run side by side, would be chained: 31 pixels at a jump of 16
# instead of 3 pixels at a jump of 2. The gradient measurement, with all paths open, makes no such
# assumption (a width-4 model keeps it cheap; the receptive field does not depend on the width):

# %% tags=["nbval-check-output"]
resnet_field = receptive_field(resnet50(width=4, stem="small"))[-1]
r2 = open_all_paths(res2net50_26w_4s(width=4, stem="small").to(device))
try:
    receptive_field(r2)
    refused = ""
except TypeError as error:
    refused = str(error).split(";")[0]
print("receptive_field(Res2Net-50) raises TypeError:", refused)
r2_field = measure_receptive_field(nn.Sequential(*list(r2.children())[:-2]), 288, trials=1, seed=SEED)
print(f"ResNet-50  (small stem): final features see {resnet_field.size} px (receptive_field, as in notebook 01)")
print(f"Res2Net-50 (small stem): final features see {r2_field.height} x {r2_field.width} px (measured)")
assert refused and (r2_field.height, r2_field.width) == (283, 283) and resnet_field.size == 107

# %% [markdown]
# 283 against 107 pixels, at the same depth. Both exceed a 32-pixel image, so the difference that can
# matter on our digits is not whether a far pixel is reachable but how many paths reach it, and how
# much each block can combine small and large patterns (the effective field of section 2).
#
# ## 4. Res2Net against ResNet: the same budget of parameters and MACs
#
# A fair comparison changes the architecture and nothing else: same depth, (almost) the same
# parameters and multiply-adds. That is why "26w×4s" is the standard setting (Gao et al. 2021,
# section 4, and their released models): 4 groups of 26 channels ($4 \cdot 26 = 104$ channels through the 1×1 convolutions,
# against ResNet's 64) with three 3×3 convolutions of 26 channels ($3 \cdot 26^2 \cdot 9 = 18{,}252$
# weights, against $64^2 \cdot 9 = 36{,}864$ for ResNet's 64-channel 3×3). Counted on the full-size
# ImageNet networks (built on the `meta` device: shapes without memory or initialization, which is all
# that counting needs):

# %% tags=["nbval-check-output"]
with torch.device("meta"):
    full_size = {"ResNet-50": resnet50(), "Res2Net-50-26w-4s": res2net50_26w_4s(),
                 "ResNet-101": resnet101(), "Res2Net-101-26w-4s": res2net101_26w_4s()}
cost_224 = {name: (count_parameters(net), count_flops(net, 224)["macs"]) for name, net in full_size.items()}
print(f"{'network':<20}{'parameters':>13}{'GMACs @224':>12}")
for name, (params, macs) in cost_224.items():
    print(f"{name:<20}{params:>13,}{macs / 1e9:>12.2f}")
for resnet, res2net in (("ResNet-50", "Res2Net-50-26w-4s"), ("ResNet-101", "Res2Net-101-26w-4s")):
    (p1, m1), (p2, m2) = cost_224[resnet], cost_224[res2net]
    print(f"{res2net} / {resnet}: parameters x{p2 / p1:.3f}, MACs x{m2 / m1:.3f}")
    assert abs(p2 / p1 - 1) < 0.02 and abs(m2 / m1 - 1) < 0.05

# %% [markdown]
# The ratios printed above: Res2Net matches ResNet's parameters and MACs to within a few percent.
# The authors' released ImageNet models (their repository,
# [Res2Net-PretrainedModels](https://github.com/Res2Net/Res2Net-PretrainedModels), 224-pixel inputs): **Res2Net-50-26w-4s, 25.70 M parameters,
# 4.2 GFLOPs (they count multiply-adds: compare our 4.26 GMACs), 22.01% top-1 error**, and
# Res2Net-101-26w-4s, 45.21 M, 8.1 GFLOPs, 20.81%. For reference, torchvision's original ResNet-50
# and ResNet-101 weights have 23.87% and 22.63% top-1 error (acc@1 76.13 and 77.374 in [torchvision's model
# documentation](https://docs.pytorch.org/vision/stable/models.html), single 224 × 224 crop). The two sources trained with different recipes, so the 1.86-point gap at
# ResNet-50's size is indicative, not a controlled experiment.
#
# The networks trained in section 5 use the same two blocks at CPU size: `WIDTH` base channels instead
# of 64, the small stem of notebook 04 (one 3×3 convolution, no pooling) for 32-pixel images, and
# `BLOCKS` blocks per stage instead of (3, 4, 6, 3). With the default two blocks per stage both are 26
# layers deep (the stem convolution, 3 × 8 in the blocks, the classifier): "ResNet-26" and
# "Res2Net-26". Two is the fewest blocks per stage that keeps Res2Net's idea: the first block of a
# stage is a stage block, whose groups are *not* chained, so with one block per stage the hierarchy of
# eq. 1 would never run. And why not 50 layers? A 50-layer network has twice the blocks (16
# against 8), so each step costs about twice as much, and a deeper network usually needs more steps to train (not measured here, on this budget);
# set `BLOCKS = (3, 4, 6, 3)` (ResNet-50's layout) to try it. The two classes
# below are the ones the package's builders use; the check proves that at (3, 4, 6, 3) they build
# exactly `resnet50` and `res2net50_26w_4s`. The trained pair is matched too:

# %% tags=["nbval-check-output"]
build_resnet = partial(ResNet, Bottleneck)
build_res2net = partial(ResNet, Res2NetBottleneck, block_args={"base_width": 26, "scale": 4})   # "26w_4s"
with torch.device("meta"):   # shapes only
    for build, builder in ((build_resnet, resnet50), (build_res2net, res2net50_26w_4s)):
        ours, theirs = build((3, 4, 6, 3)).state_dict(), builder().state_dict()
        assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}

depth = 3 * sum(BLOCKS) + 2      # stem convolution + 3 per bottleneck + classifier
RESNET, RES2NET = f"ResNet-{depth}", f"Res2Net-{depth}"
architectures = {RESNET: build_resnet, RES2NET: build_res2net}
cost_small = {}
for name, build in architectures.items():
    net = build(BLOCKS, width=WIDTH, stem="small", num_classes=10)
    cost_small[name] = (count_parameters(net), count_flops(net, TRAIN_IMAGE_SIZE)["macs"])
    print(f"{name:<11} {list(BLOCKS)}, width {WIDTH}: {cost_small[name][0]:>9,} parameters, "
          f"{cost_small[name][1] / 1e6:6.2f} MMACs per {TRAIN_IMAGE_SIZE} px image")
(p1, m1), (p2, m2) = cost_small[RESNET], cost_small[RES2NET]
print(f"{RES2NET} / {RESNET}: parameters x{p2 / p1:.3f}, MACs x{m2 / m1:.3f}")
assert abs(p2 / p1 - 1) < 0.03 and abs(m2 / m1 - 1) < 0.05

# %% [markdown]
# And how far the trained pair sees, computed for ResNet and measured for Res2Net as above. Each
# inner Res2Net block adds three times what a ResNet block adds, so with one inner block per stage the
# Res2Net's field is about twice as large; both cover the whole 32-pixel image:

# %% tags=["nbval-check-output"]
small_fields = {RESNET: receptive_field(build_resnet(BLOCKS, width=4, stem="small"))[-1].size}
side = 3 * small_fields[RESNET] + TRAIN_IMAGE_SIZE     # room for Res2Net's larger field (each inner block: 3x)
r2_small = open_all_paths(build_res2net(BLOCKS, width=4, stem="small").to(device))
small_fields[RES2NET] = measure_receptive_field(nn.Sequential(*list(r2_small.children())[:-2]), side, trials=1, seed=SEED).height
for name, size in small_fields.items():
    print(f"{name:<11}: final features see {size} px, {TRAIN_IMAGE_SIZE} px images")
assert small_fields[RES2NET] > small_fields[RESNET] >= TRAIN_IMAGE_SIZE and small_fields[RES2NET] < side

# %% [markdown]
# ## 5. Training both, and accuracy against object size
#
# Same data in the same order, same seed, optimizer, schedule, augmentation (small random shifts) and
# number of steps: only the block differs. The settings are the CPU baseline's optimizer settings
# (`fit` with AdamW, a one-cycle schedule, label smoothing 0.1, small random shifts, channels-last
# memory, batches of 64) at the tuned recipe's peak learning rate (notebook 08), but on a **smaller
# budget**, to fit two trainings into a few minutes: `NUM_TRAIN` images generated at 32 px, in
# float32 (the baseline trains on the whole 16,000-image split, stored at 64 px and resized; the next
# cell prints both budgets). Both networks are therefore less trained than `cpu-baseline`, and the
# comparison holds for this budget only. Each network is then tested on the three test
# splits, with accuracy broken down by object size (`evaluate(..., by="size")`) over **shared** bins
# of 2 pixels, so the two networks' curves are measured on the same objects. Res2Net costs the same
# MACs but takes longer to train (the end of this section measures by how much).

# %%
train_data = load_dataset("multiscale-digits", "train", image_size=TRAIN_IMAGE_SIZE, num_samples=NUM_TRAIN)
baseline = get_recipe("cpu-baseline")["fit"]
baseline_images = DEFAULT_NUM_SAMPLES["train"]   # the recipe trains on the whole split
print(f"this comparison: {NUM_TRAIN} images x {EPOCHS} epochs = {NUM_TRAIN * EPOCHS // BATCH_SIZE} steps of {BATCH_SIZE}; "
      f"cpu-baseline: {baseline_images} images x {baseline['epochs']} epochs = "
      f"{baseline_images * baseline['epochs'] // baseline['batch_size']} steps of {baseline['batch_size']}")
size_bins = set()
for name in splits:   # 2-px bins inside each split's range of sizes, the same for both networks
    low, high = ranges[name]
    edge = low - 0.5
    while edge < high + 0.5:
        size_bins.add(edge)
        edge += 2
    size_bins.add(edge)
size_bins = sorted(size_bins)
print(train_data)
print("size bins (px):", size_bins)

runs = {name: [] for name in architectures}
trained = {}   # the last seed's networks, for the timing below
for seed in tqdm(SEEDS, desc="seeds"):
    for name, build in architectures.items():
        seed_everything(seed)
        net = build(BLOCKS, width=WIDTH, stem="small", num_classes=10)
        history = fit(net, train_data, epochs=EPOCHS, batch_size=BATCH_SIZE, optimizer="adamw", lr=LR,
                      label_smoothing=0.1, augment={"max_shift": 0.1}, channels_last=True, seed=seed,
                      device=device, progress=False)
        results = {split: evaluate(net, data, by="size", size_bins=size_bins, return_predictions=True)
                   for split, data in splits.items()}
        runs[name].append({"seed": seed, "history": history, "results": results})
        trained[name] = net

steps = {len(run["history"].step_loss) for name in runs for run in runs[name]}
assert len(steps) == 1, "both networks must train for the same number of steps"
print(f"{steps.pop()} steps of {BATCH_SIZE} images per run")
for name, name_runs in runs.items():
    seconds = [run["history"].train_seconds for run in name_runs]
    print(f"{name:<11}: {sum(seconds) / len(seconds):.0f} s of training per run")

# %%
print(f"{'network':<11}{'seed':>5} | {'test-small':>10} {'test':>7} {'test-large':>10} | {'last-epoch train loss':>21}")
for name, name_runs in runs.items():
    for run in name_runs:
        acc = {split: run["results"][split]["accuracy"] for split in splits}
        print(f"{name:<11}{run['seed']:>5} | {acc['test-small']:10.3f} {acc['test']:7.3f} {acc['test-large']:10.3f} | "
              f"{run['history'].last['train_loss']:21.3f}")

fig = viz.plot_accuracy_by_size(
    {name: [sum((run["results"][split]["by_size"] for split in splits), []) for run in name_runs]
     for name, name_runs in runs.items()},
    train_range=ranges["train"], chance=0.1,
    title=f"{depth}-layer, width-{WIDTH} networks after {EPOCHS} epochs of {NUM_TRAIN} images: accuracy by object size")
plt.show()

# %% [markdown]
# **Is the difference real?** Both networks answered the *same* test images, so compare them image by
# image. Images that both get right, or both get wrong, say nothing about which network is better;
# only the images on which they disagree do. McNemar's test (McNemar 1947) asks whether those split
# more unevenly than coin flips would, and `tuning.paired_difference` returns the difference, its
# paired standard error and the exact p-value. Pairing is sharper than treating the two accuracies
# as if they came from different images, because the networks agree on most images. It still
# measures test-image sampling for one training run of each network: the spread between training
# seeds comes on top, and only several `SEEDS` measure it. Three splits are tested at once, so the
# verdict multiplies each p-value by 3 before comparing it with 0.05 (Bonferroni's correction).

# %%
comparisons = {}
for split, data in splits.items():
    for index, seed in enumerate(SEEDS):
        right = {name: (runs[name][index]["results"][split]["predictions"] == data.labels).tolist() for name in runs}
        comparisons[split, seed] = paired_difference(right[RESNET], right[RES2NET])
        c = comparisons[split, seed]
        verdict = ("no difference shown" if c["p_value"] * len(splits) >= 0.05
                   else f"this {RES2NET if c['difference'] > 0 else RESNET} network ahead on these images")
        print(f"{split:>10}, seed {seed}: {RES2NET} - {RESNET} = {100 * c['difference']:+5.1f} points "
              f"(paired SE {100 * c['se']:.1f}; right only by ResNet {c['only_a']}, only by Res2Net {c['only_b']}, "
              f"of {c['n']}): McNemar p = {c['p_value']:.3f}, {verdict}")
if len(SEEDS) > 1:
    for split in splits:
        per_seed = {name: [run["results"][split]["accuracy"] for run in runs[name]] for name in runs}
        spread = mean_difference(per_seed[RESNET], per_seed[RES2NET])
        print(f"{split:>10}, over seeds {SEEDS}: difference {100 * spread['difference']:+5.1f} points, "
              f"seed-to-seed SE {100 * spread['se']:.1f}")


# %% [markdown]
# **Equal MACs, equal time?** The two networks cost the same multiply-adds, but Res2Net replaces one
# 3×3 convolution per block by three narrow ones plus a split and a concatenation. Time one forward
# pass of the same batch through each trained network; the networks take turns, and the fastest of
# several passes is kept, so that other work on the machine distorts the comparison as little as
# possible:

# %%
def fastest_forward_ms(nets, images, repeats=5):
    times = {name: [] for name in nets}
    with torch.no_grad():
        for _ in range(repeats + 1):
            for name, net in nets.items():
                net.eval()
                start = time.perf_counter()
                net(images)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times[name].append(1000 * (time.perf_counter() - start))
    return {name: min(values[1:]) for name, values in times.items()}   # the first pass is a warm-up


probe = to_float_images(splits["test"].images[:BATCH_SIZE]).to(device).contiguous(memory_format=torch.channels_last)
forward_ms = fastest_forward_ms(trained, probe)
for name, ms in forward_ms.items():
    print(f"{name:<11}: {ms:6.1f} ms per forward pass of {BATCH_SIZE} images, "
          f"{cost_small[name][1] * BATCH_SIZE / ms / 1e6:5.2f} GMACs per second")
print(f"{RES2NET} / {RESNET} forward time: x{forward_ms[RES2NET] / forward_ms[RESNET]:.2f} "
      f"at x{cost_small[RES2NET][1] / cost_small[RESNET][1]:.2f} the MACs")
train_s = {name: sum(run["history"].train_seconds for run in name_runs) for name, name_runs in runs.items()}
print(f"{RES2NET} / {RESNET} training time: x{train_s[RES2NET] / train_s[RESNET]:.2f}")


# %% [markdown]
# What this run shows, and what it does not. The next cell prints the figures the points below rest
# on, and asserts what they claim, so a re-run on another machine or with other parameters either
# agrees or stops here with a message.

# %%
def mean_accuracy(name, split):
    return sum(run["results"][split]["accuracy"] for run in runs[name]) / len(runs[name])


for name in runs:
    acc = {split: mean_accuracy(name, split) for split in splits}
    print(f"{name:<11}: test {acc['test']:.3f}, test-small {acc['test-small']:.3f}, test-large {acc['test-large']:.3f} "
          f"(mean of {len(SEEDS)} seed(s); chance 0.100)")
    checks.claim(acc["test"] > 0.5, f"{name} learned the digits of the training sizes (test > 0.5); here {acc['test']:.3f}")
    checks.claim(max(acc["test-small"], acc["test-large"]) < acc["test"] - 0.2,
                 f"{name} loses more than 20 points on both shifted splits; here {acc}")
# How far can another seed move a network? Not measured here (one seed); the results file holds three
# seeds of cpu-baseline (a width-16 ResNet-18 at full budget: another network, the order of magnitude).
root = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
recorded = json.loads((root / "benchmarks" / "results" / "cpu_recipes.json").read_text())
seed_runs = {run["seed"]: run for run in recorded["runs"] if run["recipe"] == "cpu-baseline"}
for split in splits:
    values = [seed_runs[seed][split] for seed in sorted(seed_runs)]
    print(f"cpu-baseline over seeds {sorted(seed_runs)}, {split}: {', '.join(f'{v:.3f}' for v in values)} "
          f"(range {100 * (max(values) - min(values)):.1f} points; benchmarks/results/cpu_recipes.json)")
shown = [key for key, c in comparisons.items() if c["p_value"] * len(splits) < 0.05]
print("splits where the paired test shows a difference:", ", ".join(f"{split} (seed {seed})" for split, seed in shown) or "none")
checks.claim(not any(c["difference"] > 0 for key, c in comparisons.items() if key in shown and key[0] != "test"),
             "the multi-scale block is not shown better on either shifted split")
print(f"Res2Net's forward pass took x{forward_ms[RES2NET] / forward_ms[RESNET]:.2f} ResNet's time, "
      f"its training x{train_s[RES2NET] / train_s[RESNET]:.2f}, at x{cost_small[RES2NET][1] / cost_small[RESNET][1]:.2f} the MACs")


# %% [markdown]
# * **Both networks learned the digits at the training sizes**, far above chance on `test`.
# * **A difference between two trained networks, not yet between two architectures.** Where the
#   paired test shows a difference (the split is printed above, after the correction for three
#   splits), these two networks really answer those images differently: that is more than test-image
#   noise. But it is one training run of each: with `SEEDS = (0,)` the seed-to-seed spread of these
#   networks is unmeasured. The three seeds of `cpu-baseline` printed above (another network, at
#   full budget) show the order of magnitude: on the shifted splits, seeds alone move a network by
#   several points. Read a difference here as a reason to run more seeds, not as a result about Res2Net.
# * **Both fail away from the training sizes, with or without multi-scale blocks.** On `test-small`
#   (5-7 px) and `test-large` (23-30 px) both lose much of their `test` accuracy (the assertion
#   above checks more than 20 points), and the curves fall on both sides of the training range.
#   In this run the paired test shows no gain for Res2Net-26 on either shifted split (checked above):
#   its larger receptive field and mixed groups did not close the gap here, one seed at this budget.
#   Features learned on 10-17-px digits do not carry over to digits half or twice that size;
#   notebook 07 attacks the gap from the data side, by training on several resolutions.
# * **Equal MACs are not equal time.** The ratios above were measured on this machine (they depend
#   on the hardware and on what else runs on it). Narrow convolutions (at width 8: 3, 6, 13 and 26
#   channels per group in the four stages; eight times as many at full width) use the hardware poorly and each pays a fixed cost, and the split and
#   concatenation move memory that MAC counts ignore. Res2Net is designed to match ResNet's FLOPs,
#   the fair basis for comparing the architectures; for a deadline, measure time.
#
# To rank the two, run the GPU values of the parameters cell: several seeds, more epochs, the whole
# training split, at full width and depth. The released ImageNet models differ by 1.86 points of top-1
# error (section 4: 23.87% against 22.01%, different recipes).

# %% [markdown]
# ## Exercises
#
# ### Exercise 1: which pyramid level sees an object?
#
# A detector with a feature pyramid must decide which level looks at each object. FPN (Lin et al.
# 2017, eq. 1) assigns an object of `w × h` pixels, in an image at ImageNet's scale, to level
# $k = \lfloor k_0 + \log_2(\sqrt{wh} / 224) \rfloor$ with $k_0 = 4$: an object of 224 px goes to C4,
# one half that size to C3. Levels that do not exist are clamped to the nearest one (C2 to C5).
#
# 1. Write `fpn_level(width, height)`.
# 2. Predict first: which level gets a 32×32 object, and which a 1000×800 one? Then run the cell
#    below, which prints your function's answers, and the check.
# 3. Then think: with the strides of section 2, how many cells of its level's feature map does a
#    32×32 object cover? Why does that make a small object hard for a network that only reads C5?
#
# (FPN assigns objects to its pyramid levels P2-P5, built on C2-C5 by the top-down pathway, with the
# same strides; the rule is the same.)
#
# <details><summary>Answer to 3</summary>
#
# Level 2 (stride 4): 32 / 4 = 8, an 8×8 patch of cells. On C5 (stride 32) the same object is one
# cell, shared with everything around it: whatever C5 says about the object, it says about its
# surroundings too.
# </details>

# %%
def fpn_level(width, height):
    ### BEGIN SOLUTION
    k = math.floor(4 + math.log2(math.sqrt(width * height) / 224))
    return min(5, max(2, k))
    ### END SOLUTION


for width, height in ((32, 32), (112, 112), (224, 224), (1000, 800)):
    print(f"a {width}x{height} object: level {fpn_level(width, height)}")

# %% tags=["nbval-check-output"]
checks.check_fpn_level_function(fpn_level)


# %% [markdown]
# ### Exercise 2: count a Res2Net block's parameters
#
# Write `res2net_params(inplanes, planes, stride, base_width, scale)`: the parameters of a
# `Res2NetBottleneck`, from the shapes alone. The width per group is ⌊planes × base_width / 64⌋;
# remember the BatchNorms (a weight and a bias per channel), how many 3×3 convolutions there are,
# and the projection shortcut (a 1×1 convolution with its BatchNorm) when the block changes the
# resolution or the channel count. Then use it to see why "26w" matches ResNet's bottleneck at
# `planes = 64`: predict first which width per group would match exactly, then try base widths
# 24, 26 and 28 with your function.
#
# <details><summary>Answer to the last part</summary>
#
# ResNet's bottleneck spends 9 × 64 × 64 parameters on its one 3×3 convolution; Res2Net with *s* = 4
# spends 3 × 9 × w² on three narrow ones, and 4w channels enter and leave its 1×1 convolutions
# instead of 64. Equal 3×3 cost alone would need w ≈ 37, equal 1×1 cost alone w = 16; the total
# crosses ResNet's 70,400 between w = 25 and w = 26 (compare the two with your function), so
# "26w" keeps the block within a few percent of ResNet's parameters (and MACs), the budget the
# authors hold fixed when they compare the two.
# </details>

# %%
def res2net_params(inplanes, planes, stride, base_width, scale):
    ### BEGIN SOLUTION
    width = planes * base_width // 64
    out = planes * 4
    conv1 = inplanes * width * scale + 2 * width * scale
    convs = (scale - 1) * (9 * width * width + 2 * width)
    conv3 = width * scale * out + 2 * out
    shortcut = inplanes * out + 2 * out if stride != 1 or inplanes != out else 0
    return conv1 + convs + conv3 + shortcut
    ### END SOLUTION


print(f"Res2Net block (256, 64): {res2net_params(256, 64, 1, 26, 4):,} parameters; "
      f"ResNet Bottleneck(256, 64): {count_parameters(Bottleneck(256, 64)):,}")

# %% tags=["nbval-check-output"]
checks.check_res2net_params_function(res2net_params)

# %% [markdown]
# ## Summary
#
# - A ResNet's stage outputs C2-C5 form a feature pyramid with strides 4, 8, 16 and 32. For
#   ResNet-101 at 224 px: 256×56×56, 512×28×28, 1024×14×14 and 2048×7×7, with theoretical receptive
#   fields of 35, 91, 811 and 971 pixels (computed, and for C2 and C3 measured by back-propagation).
#   `feature_pyramid` extracts them in one pass, sharing the model's weights.
# - Res2Net's bottleneck splits the channels into *s* groups and chains 3×3 convolutions across them:
#   in an inner block the groups see 1, 3, 5 and 7 pixels (measured), so one block mixes several
#   scales; stage blocks do not chain. Built inline, it loads the package's weights strictly and gives
#   bit-identical outputs.
# - Res2Net-50-26w-4s and ResNet-50 have the same depth and, within a few percent, the same
#   parameters and MACs; so do the width-8 pair trained here (both ratios printed in section 4). On
#   ImageNet the authors' released Res2Net-50 has 22.01% top-1 error, torchvision's original ResNet-50
#   23.87% (section 4; two sources, two training recipes).
# - Trained at CPU size, both learn the digits of the training sizes. Compared on the same test
#   images (McNemar's paired test, corrected for three splits), any split where the two trained
#   networks differ is printed in section 5; from one seed that ranks two networks, not the two
#   architectures.
#   Both lose much of their accuracy on objects half
#   or twice the training size; the multi-scale block did not close that gap. Equal MACs did not mean
#   equal time: Res2Net's forward pass and training were slower (ratios printed in section 5).
#
# ## Quiz
#
# 1. A ResNet-101 at `448 × 448` pixels: what are C3's shape and stride?
# 2. Why can a Res2Net stage block not chain its groups the way an inner block does?
# 3. Res2Net has the same MACs as ResNet. Name two reasons a training step can still be slower.
# 4. Two networks differ by 3 points of accuracy on the same 500 test images, from one seed each.
#    What do you need to know before you conclude anything, and how would you get it?
# 5. Why is the receptive field of C5 (971 px) not the region that actually drives a C5 feature?
#
# <details><summary>Answers</summary>
#
# 1. (1, 512, 56, 56), stride 8: the stride is a property of the layers, the shape scales with the
#    input (`448 / 8 = 56`). The receptive field (91 px) does not change either.
# 2. In a strided stage block its 3×3 convolutions have stride 2, so y_*i*−1 has half the resolution
#    of x_*i* and the two cannot be added; the authors (and timm) convolve each group separately
#    there and pool the pass-through group. `layer1`'s first block has stride 1 and could chain; the
#    authors treat every first block of a stage alike, a convention the package follows to load their
#    weights.
# 3. Three small convolutions instead of one large one each pay a fixed launch and memory-traffic cost
#    (narrow channels use the hardware poorly), and the split, the concatenation and the extra
#    BatchNorm layers cost memory traffic that MAC counts ignore.
# 4. How the 3 points arise: on how many images the two disagree, and how those split (McNemar's
#    paired test, `tuning.paired_difference`). Fifteen images won against zero lost is strong
#    evidence; forty won against twenty-five lost is not. Then the seed: train each network with
#    several seeds and compare the difference with its seed-to-seed spread (`tuning.mean_difference`).
# 5. The theoretical field counts every pixel with *any* path to the output; the number of paths (and
#    so the gradient) falls off quickly away from the centre, so the effective receptive field is a
#    much smaller, roughly Gaussian region (Luo et al. 2016).
# </details>
#
# ## Further reading
#
# - S.-H. Gao, M.-M. Cheng, K. Zhao, X.-Y. Zhang, M.-H. Yang, P. Torr, *Res2Net: A New Multi-scale
#   Backbone Architecture*, IEEE TPAMI 43(2), 2021: section 3.1 and Fig. 2 (the block, eq. 1), section 4
#   (ImageNet, CIFAR-100, ablations over the scale *s*). Released models (https://github.com/Res2Net/Res2Net-PretrainedModels):
#   Res2Net-50-26w-4s 25.70 M parameters, 4.2 GFLOPs, 22.01% top-1 error; Res2Net-101-26w-4s 45.21 M, 8.1 GFLOPs, 20.81%.
# - T.-Y. Lin, P. Dollár, R. Girshick, K. He, B. Hariharan, S. Belongie, *Feature Pyramid Networks for
#   Object Detection*, CVPR 2017: section 3 (C2-C5 and their strides, the top-down pathway), eq. 1
#   (the level of an object, Exercise 1), with a ResNet-101 backbone for their COCO results.
# - W. Luo, Y. Li, R. Urtasun, R. Zemel, *Understanding the Effective Receptive Field in Deep
#   Convolutional Neural Networks*, NeurIPS 2016: why the effective field is Gaussian-like and much
#   smaller than the theoretical one.
# - A. Araujo, W. Norris, J. Sim, *Computing Receptive Fields of Convolutional Neural Networks*,
#   Distill 2019: the recurrence `receptive_field` implements, and its multi-path generalisation.
# - K. He, X. Zhang, S. Ren, J. Sun, *Deep Residual Learning for Image Recognition*, CVPR 2016: Table 1
#   (the stages); torchvision's documentation lists its ResNet-50 / ResNet-101 weights at 23.87% / 22.63% top-1 error.
