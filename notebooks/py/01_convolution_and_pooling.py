# %% [markdown]
# # 01 · Convolution and pooling: sizes, receptive fields, cost, and the ResNet stem
#
# Every headline number of ResNet-101 (a 7×7 map before the classifier, 44.5 million parameters,
# 7.8 billion multiply-adds per image, all counted in notebook 04) follows from a few lines of arithmetic about convolution and
# pooling. This notebook derives that arithmetic, checks each formula against real PyTorch layers
# rather than trusting it, and then runs the first four layers of ResNet, *the stem*, on a real
# photo to see what they do.
#
# **Learning objectives.** After this notebook you can
#
# 1. predict the output size of a convolution or pooling layer (stride, padding, dilation, `ceil_mode`) and check it against the real layer;
# 2. compute the receptive field and effective stride of a stack of layers, measure them by back-propagation, and tell the theoretical field from the effective one a unit mostly uses;
# 3. count a convolution's parameters and multiply-adds (MACs), and tell MACs from FLOPs;
# 4. read the ResNet stem (7×7/2 convolution, BatchNorm, ReLU, 3×3/2 max-pool) and see what it does to a photo;
# 5. explain why a widely copied blog post's Keras snippet cannot run, and write the working PyTorch stem.
#
# **Prerequisites.** Notebook 00; PyTorch tensors and `nn.Module` basics.
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
#
# Imports come from `tutorial_lib`; the notebook only builds inline what it is teaching.

# %%
import math
from collections import OrderedDict

import matplotlib.pyplot as plt
import skimage.data
import torch
import torchvision.transforms.v2.functional as TF
from torch import nn

from tutorial_lib import checks
from tutorial_lib.cost import count_flops, count_parameters
from tutorial_lib.data import to_float_images
from tutorial_lib.env import choose_device, seed_everything
from tutorial_lib.layers import (
    conv_output_size,
    effective_receptive_field,
    format_receptive_fields,
    measure_receptive_field,
    receptive_field,
)
from tutorial_lib.models import resnet101, stage_shapes
from tutorial_lib.viz import plot_feature_maps, show_receptive_fields

# %% [markdown]
# ## Parameters
#
# Every knob lives in the next cell (tagged `parameters`). Nothing here is heavy: the defaults take
# seconds on a CPU and a GPU changes nothing but `DEVICE = "cuda"`. `IMAGE` names any colour photo
# that scikit-image ships offline (`"chelsea"`, `"astronaut"`, `"coffee"`, `"rocket"`).

# %% tags=["parameters"]
SEED = 0             # one integer drives every random generator
DEVICE = None        # None: automatic (cuda > mps > cpu), or "cpu", "cuda", "mps"
IMAGE = "chelsea"    # a colour photo from skimage.data
IMAGE_SIZE = 224     # the photo is resized and centre-cropped to IMAGE_SIZE x IMAGE_SIZE
N_MAPS = 16          # feature maps shown per plot

# %%
seed_everything(SEED)
device = choose_device(DEVICE)
print(f"device: {device}")

# %% [markdown]
# ## 1. A convolution is a sliding dot product
#
# Before counting anything, be precise about what is counted. `nn.Conv2d(C_in, C_out, k)` holds
# `C_out` filters, each of shape `C_in × k × k`. Output value `(o, y, x)` is the bias `b[o]` plus the
# dot product of filter `o` with the input patch whose top-left corner sits at
# `(y·stride − padding, x·stride − padding)`, with zeros wherever the patch leaves the input.
#
# Here is one output value computed by hand and compared with the layer:

# %% tags=["nbval-check-output"]
conv = nn.Conv2d(in_channels=2, out_channels=3, kernel_size=3, stride=2, padding=1)
x = torch.randn(1, 2, 7, 7)
out = conv(x)

o, y, x_ = 1, 2, 1                                   # one output position
padded = nn.functional.pad(x, (1, 1, 1, 1))          # padding=1 on every side
patch = padded[0, :, y * 2 : y * 2 + 3, x_ * 2 : x_ * 2 + 3]
by_hand = (conv.weight[o] * patch).sum() + conv.bias[o]

assert torch.allclose(by_hand, out[0, o, y, x_])
print("output shape:", tuple(out.shape), "| by hand equals the layer:", torch.allclose(by_hand, out[0, o, y, x_]))

# %% [markdown]
# ## 2. Output size
#
# Along one axis, a kernel of size `k` with dilation `d` spans `d·(k−1)+1` input pixels. It fits at
# every stride step inside the padded input, plus the first position:
#
# $$\text{out} = \left\lfloor \frac{\text{size} + 2\,\text{padding} - d\,(k-1) - 1}{\text{stride}} \right\rfloor + 1$$
#
# That is the formula in the `nn.Conv2d` documentation. Pooling layers use it too, and with
# `ceil_mode=True` round up instead (dropping a last window that would start in the right padding).
# `tutorial_lib.layers.conv_output_size` implements both; the check below compares it with what the
# real layers return, for convolutions and for both kinds of pooling.

# %% tags=["nbval-check-output"]
settings = [  # (layer, size, kernel, stride, padding, dilation, ceil_mode)
    ("conv", 224, 7, 2, 3, 1, False),   # the ResNet stem convolution
    ("max", 112, 3, 2, 1, 1, False),    # the ResNet stem max-pool
    ("conv", 56, 3, 1, 1, 1, False),    # a 3x3 "same" convolution
    ("conv", 56, 3, 2, 1, 1, False),    # a strided 3x3 (v1.5 downsampling)
    ("conv", 56, 1, 2, 0, 1, False),    # a strided 1x1 (projection shortcut)
    ("conv", 32, 3, 1, 2, 2, False),    # dilation 2 keeps the size with padding 2
    ("max", 7, 2, 2, 0, 1, False),      # floor: the last row is dropped
    ("max", 7, 2, 2, 0, 1, True),       # ceil: a partial window keeps it
    ("avg", 15, 3, 2, 1, 1, True),
]
print(f"{'layer':<6}{'size':>5}{'k':>3}{'s':>3}{'p':>3}{'d':>3}{'ceil':>6}{'predicted':>11}{'real':>6}")
for kind, size, k, s, p, d, ceil in settings:
    if kind == "conv":
        layer = nn.Conv2d(1, 1, k, s, p, d)
    elif kind == "max":
        layer = nn.MaxPool2d(k, s, p, d, ceil_mode=ceil)
    else:
        layer = nn.AvgPool2d(k, s, p, ceil_mode=ceil)
    real = layer(torch.zeros(1, 1, size, size)).shape[-1]
    predicted = conv_output_size(size, k, s, p, d, ceil_mode=ceil)
    assert predicted == real
    print(f"{kind:<6}{size:>5}{k:>3}{s:>3}{p:>3}{d:>3}{str(ceil):>6}{predicted:>11}{real:>6}")


# %% [markdown]
# Two patterns to remember. With odd `k`, `padding = d·(k−1)/2` keeps the size at stride 1
# ("same" padding), which is why ResNet's 3×3 convolutions use padding 1. With stride 2 the size
# becomes `ceil(size/2)`, so an odd input loses nothing at the border. Chaining five stride-2 layers
# gives the "divide by 32" rule: the stem (two stride-2 layers) and stages 2-4 (one each) take
# 224 px to 7 px, and odd sizes round up at each step.

# %% tags=["nbval-check-output"]
def resnet_final_size(size: int) -> int:
    """Spatial size after the ImageNet stem and the three strided stages of a ResNet."""
    size = conv_output_size(size, 7, 2, 3)          # conv1
    size = conv_output_size(size, 3, 2, 1)          # maxpool
    for _ in range(3):                               # layer2, layer3, layer4 (3x3, stride 2, padding 1)
        size = conv_output_size(size, 3, 2, 1)
    return size

model = resnet101().eval()
for size in (224, 225, 256, 320, 63):
    real = stage_shapes(model, size)["layer4"]      # the real network's layer4 output shape
    assert real[-1] == resnet_final_size(size)
    print(f"{size:>4} px -> {resnet_final_size(size)} x {resnet_final_size(size)}   (real layer4 output: {real})")

# %% [markdown]
# ## 3. Receptive field
#
# An output pixel depends on a window of the input: its **receptive field**. It matters because a
# unit cannot respond to anything larger than the window it sees, which is the heart of the
# multi-scale question of this series (notebooks 06-07). Three numbers describe a stack of layers
# along one axis:
#
# * `size`: the receptive field, in input pixels;
# * `jump`: the effective stride, how far apart in the input two neighbouring outputs are centred;
# * `start`: where output pixel 0 is centred in the input (pixel `i` has coordinate `i`).
#
# Each layer with kernel `k`, stride `s`, padding `p` and dilation `d` (effective kernel
# `k' = d(k−1)+1`) updates them as (Araujo et al. 2019, single-path networks):
#
# ```
# size  += (k' - 1) * jump        # the new kernel sees k' positions, jump apart
# start += ((k' - 1) / 2 - p) * jump
# jump  *= s
# ```
#
# The layers are read in order from the model; pointwise layers (BatchNorm, ReLU) change nothing.

# %% tags=["nbval-check-output"]
stem = nn.Sequential(OrderedDict(conv1=model.conv1, bn1=model.bn1, relu=model.relu, maxpool=model.maxpool))
rows = receptive_field(stem)
print(format_receptive_fields(rows))

# %% [markdown]
# **Check it against the real layers.** The gradient of one output pixel with respect to the input
# can be non-zero only on the pixels that output depends on. On one input some of those gradients
# may happen to be zero (a ReLU that is off, a pixel that is not the maximum of its pool window), so
# `measure_receptive_field` back-propagates from the centre output pixel (summed over channels) for
# a few random inputs and returns the bounding box of the pixels whose gradient was non-zero for
# any of them.

# %% tags=["nbval-check-output"]
measured = measure_receptive_field(stem, 64)
last = rows[-1]
centre = last.start + (conv_output_size(conv_output_size(64, 7, 2, 3), 3, 2, 1) // 2) * last.jump
assert (measured.height, measured.width) == (last.size, last.size)
assert measured.top == centre - (last.size - 1) // 2
print(f"arithmetic: {last.size} x {last.size} centred at row {centre:.0f}; "
      f"measured: {measured.height} x {measured.width} starting at row {measured.top}")

# %% [markdown]
# The same walk over all of ResNet-101 (a block contributes its main path: its shortcut is a
# 1×1 or the identity, whose window lies inside the main path's):

# %% tags=["nbval-check-output"]
all_rows = receptive_field(model)
print(f"{'after':<8}{'receptive field':>17}{'jump':>6}")
for stage in ("maxpool", "layer1", "layer2", "layer3", "layer4"):
    row = [r for r in all_rows if r.name.startswith(stage)][-1]
    print(f"{stage:<8}{row.size:>14} px{row.jump:>6}")

# %% [markdown]
# After `layer3` the *theoretical* field of one output pixel is wider than a 224 px image. That
# says which pixels *can* change the unit, not how much each one does. Luo et al. (2016,
# "Understanding the Effective Receptive Field in Deep Convolutional Neural Networks", section 2)
# measure the second question with the same gradient: its magnitude is largest at the centre and
# falls off roughly like a Gaussian, whose width grows only with the square root of the depth while
# the theoretical field grows linearly. The **effective receptive field** is where the bulk of that
# gradient lies; here we measure it as the side of the smallest centred square that holds *half*
# of it. `effective_receptive_field` averages the absolute input gradient of the centre output
# pixel over two random inputs and reports that side. Measured on this (untrained) ResNet-101, cut
# after each stage. `layer3` runs on a 224 px input, smaller than its theoretical field, so the
# table gives both that field and the part of it inside the image ("clipped"); the area share is
# relative to the clipped field. One random initialization and two inputs: the table has no
# spread, so read only the large margins it shows, not the exact sides.

# %%
cut = {"layer1": 96, "layer2": 160, "layer3": 224}   # input side for each cut, larger than its field where affordable
effective = {}
for p in model.parameters():
    p.requires_grad_(False)                           # input gradients only: cheaper, and leaves .grad alone
print(f"{'after':<8}{'input':>7}{'theoretical':>13}{'clipped':>10}{'effective (half the gradient)':>31}"
      f"{'area share':>12}")
for stage, side in cut.items():
    layers = [model.conv1, model.bn1, model.relu, model.maxpool]
    layers += [getattr(model, f"layer{i}") for i in range(1, int(stage[-1]) + 1)]
    field = effective_receptive_field(nn.Sequential(*layers), side, mass=0.5, trials=2, seed=SEED)
    effective[stage] = field
    full = [r for r in all_rows if r.name.startswith(stage)][-1].size   # unclipped, from the arithmetic
    share = field.side**2 / field.theoretical**2                         # of the clipped field
    print(f"{stage:<8}{side:>5} px{full:>10} px{field.theoretical:>7} px{field.side:>28} px{share:>12.0%}")
for p in model.parameters():
    p.requires_grad_(True)
checks.claim(all(f.side < 0.6 * f.theoretical for f in effective.values()),
             "the text says half of each unit's gradient lies in a square well inside its theoretical field "
             f"(side < 0.6 x); here {[(f.side, f.theoretical) for f in effective.values()]}")
print("effective / clipped theoretical side: "
      + ", ".join(f"{stage} {f.side / f.theoretical:.2f}" for stage, f in effective.items())
      + " (the claim above tests < 0.6; one initialization, no spread)")

# %% [markdown]
# Half of what a `layer2` unit responds to comes from a square much smaller than its theoretical
# field (the table's last column is the area share), and the rest thins out towards the edges.
# This network is untrained; Luo et al. report that training enlarges the effective field, and it
# still stays well inside the theoretical one. So "the unit can see the whole image" is not "the
# unit uses the whole image": context that a feature really uses has to be *measured*, which is one
# reason multi-scale designs (notebook 06) add explicit paths between distant pixels and scales.
#
# Here are both on the photo this notebook uses (resized and centre-cropped to `IMAGE_SIZE`, then
# normalized with the ImageNet mean and standard deviation, as torchvision's pretrained models
# expect). The boxes named by a stage alone are theoretical fields, solid, or dashed where the field
# reaches beyond the image; the two marked "effective" (dotted) are the `layer2` and `layer3`
# effective fields.

# %%
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)   # ImageNet statistics, per RGB channel

photo = getattr(skimage.data, IMAGE)()                     # (H, W, 3) uint8, shipped with scikit-image
image = torch.from_numpy(photo).permute(2, 0, 1)            # (3, H, W)
image = TF.center_crop(TF.resize(image, IMAGE_SIZE, antialias=True), IMAGE_SIZE)
batch = TF.normalize(to_float_images(image), MEAN, STD).unsqueeze(0).to(device)
print("photo:", photo.shape, "-> input batch:", tuple(batch.shape))

boxes = {}
centre = IMAGE_SIZE // 2
for stage in ("conv1", "maxpool", "layer1", "layer2", "layer3"):
    row = [r for r in all_rows if r.name.startswith(stage)][-1]
    boxes[stage] = (centre - row.size // 2, centre - row.size // 2, row.size)
for stage in ("layer2", "layer3"):
    side = effective[stage].side
    boxes[f"{stage}, effective (half the gradient)"] = (centre - side // 2, centre - side // 2, side)
show_receptive_fields(image.permute(1, 2, 0).numpy(), boxes, dotted=[b for b in boxes if "effective" in b],
                      title="theoretical receptive field per stage, and two effective ones")
plt.show()

# %% [markdown]
# ## 4. Parameters and multiply-adds of a convolution
#
# A convolution stores `C_out · C_in · k · k` weights (plus `C_out` biases if it has them; ResNet's
# do not, since the BatchNorm after each one has its own shift). Each output value costs one
# multiply-accumulate (**MAC**, `acc += w · x`) per weight of its filter, so
#
# $$\text{MACs} = C_\text{out}\, C_\text{in}\, k^2 \cdot H_\text{out} W_\text{out}.$$
#
# A MAC is two floating-point operations, a multiply and an add, so **FLOPs = 2 × MACs**. Papers
# and libraries mix the two words: the "FLOPs" in He et al. 2016, Table 1 are multiply-adds, while
# `torch.utils.flop_counter` (behind `tutorial_lib.cost.count_flops`) counts true FLOPs. `count_flops`
# reports both. The stem convolution, by formula and by counter:

# %% tags=["nbval-check-output"]
c_in, c_out, k = 3, 64, 7
out_size = conv_output_size(IMAGE_SIZE, k, 2, 3)
params_formula = c_out * c_in * k * k
macs_formula = params_formula * out_size * out_size

cost = count_flops(model.conv1, (c_in, IMAGE_SIZE, IMAGE_SIZE))
assert count_parameters(model.conv1) == params_formula
assert cost["macs"] == macs_formula and cost["flops"] == 2 * macs_formula
print(f"conv1: {params_formula:,} parameters, {macs_formula:,} MACs = {cost['flops']:,} FLOPs at {IMAGE_SIZE} px")

# %% [markdown]
# Pooling and activations have no parameters and no multiply-adds (a max-pool compares; it does not
# multiply), and BatchNorm has two parameters per channel plus two running statistics per channel
# (and a batch counter) that are buffers, not parameters. Their cost is a few operations per activation, negligible next to the
# convolutions, and papers do not count it.

# %% tags=["nbval-check-output"]
for name in ("conv1", "bn1", "relu", "maxpool"):
    module = getattr(model, name)
    buffers = sum(b.numel() for b in module.buffers())
    print(f"{name:<8} parameters {count_parameters(module):>6,}   buffers {buffers:>4}")
stem_macs = count_flops(stem, (3, IMAGE_SIZE, IMAGE_SIZE))["macs"]
total_macs = count_flops(model, IMAGE_SIZE)["macs"]
print(f"the stem is {stem_macs / total_macs:.1%} of ResNet-101's {total_macs / 1e9:.2f} GMACs at {IMAGE_SIZE} px")

layer1_3x3 = count_flops(model.layer1[0].conv2, (64, IMAGE_SIZE // 4, IMAGE_SIZE // 4))["macs"]
convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
conv1_macs = cost["macs"]
print(f"conv1: {conv1_macs / 1e6:.0f} MMACs; one 3x3 of layer1: {layer1_3x3 / 1e6:.0f} MMACs; "
      f"the mean of ResNet-101's {len(convs)} convolutions: {total_macs / len(convs) / 1e6:.0f} MMACs")
checks.claim(0.8 < conv1_macs / layer1_3x3 < 1.25 and 0.5 < conv1_macs / (total_macs / len(convs)) < 2,
             "the text says conv1 costs about as much as one layer1 3x3 and within 2x of the mean convolution; here "
             f"{conv1_macs / layer1_3x3:.2f}x and {conv1_macs / (total_macs / len(convs)):.2f}x")


# %% [markdown]
# ## 5. The ResNet stem on a real photo
#
# The stem (He et al. 2016, Table 1, row "conv1" and the max-pool of "conv2_x") reduces the
# resolution 4× before any residual block runs. The 7×7 convolution itself is not cheap: on 3 input
# channels each output value costs 3·7·7 = 147 MACs per filter, a quarter of a `layer1` 3×3's
# 64·3·3 = 576, but it computes four times as many positions (112 × 112), so it costs about as much
# as one 3×3 of `layer1` and is within a factor of two of the network's mean convolution (printed above). Its small
# share of the total comes from being one layer among a hundred. What the stem buys is the 4×
# reduction: every later layer runs on a sixteenth of the pixels it would have at full resolution,
# and its output units already see an 11 px window.
#
# The network here is untrained, and nothing is downloaded. Trained first layers learn oriented
# edge detectors and colour-opponent blobs (Krizhevsky et al. 2012, Fig. 3; Zeiler & Fergus 2014,
# Fig. 2), so we write twelve such 7×7 filters by hand into `conv1` (derivatives of a Gaussian at
# four orientations and both signs, and red-green / blue-yellow blobs) and keep the other 52
# filters at their random initialization for comparison.

# %% tags=["nbval-check-output"]
def gaussian_filters(size: int = 7, sigma: float = 1.5):
    """A centred Gaussian and its coordinate grids, each (size, size)."""
    r = torch.arange(size, dtype=torch.float32) - size // 2
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    return torch.exp(-(xx**2 + yy**2) / (2 * sigma**2)), yy, xx

gauss, yy, xx = gaussian_filters()
filters, labels = [], []
for sign in (1, -1):
    for angle in (0, 45, 90, 135):
        t = math.radians(angle)
        # Derivative of a Gaussian along direction `angle` (0° = along x): it responds to a change of
        # brightness in that direction, i.e. to edges running perpendicular to it (0° finds vertical edges).
        edge = sign * (xx * math.cos(t) + yy * math.sin(t)) * gauss
        filters.append(edge.expand(3, 7, 7) / edge.abs().sum())          # same on R, G and B: luminance
        labels.append(f"gradient {angle}°{'' if sign > 0 else ' (−)'}")
for name, colour in (("red−green", (1.0, -1.0, 0.0)), ("green−red", (-1.0, 1.0, 0.0)),
                     ("blue−yellow", (-0.5, -0.5, 1.0)), ("yellow−blue", (0.5, 0.5, -1.0))):
    filters.append(torch.tensor(colour).view(3, 1, 1) * gauss / gauss.sum())
    labels.append(name)
labels += [f"random {i}" for i in range(len(filters), 64)]
print(len(filters), "hand-made filters of shape", tuple(filters[0].shape), "| labels:", ", ".join(labels[:4]), "...")

# %% [markdown]
# The hand-made filters are normalized (an edge filter's absolute weights sum to 1 on each colour
# channel, a blob's Gaussian sums to 1), so their responses are of the order of the input's values.
# The factor `4` below is a free choice that only scales them: it changes no picture (the ReLU keeps
# the same pixels, and each panel of the plots gets its own colour scale). With it, the hand-made
# maps' values are larger than the random filters' (their ratio is printed with the plot below). `stem` was built from the model's own modules,
# so writing into `model.conv1` changes `stem` too.

# %% tags=["nbval-check-output"]
with torch.no_grad():
    model.conv1.weight[: len(filters)] = 4 * torch.stack(filters)
model.eval()   # BatchNorm uses its running statistics (fresh: mean 0, variance 1)
stem = stem.to(device)
assert stem.conv1 is model.conv1

with torch.no_grad():
    after_relu = model.relu(model.bn1(model.conv1(batch)))
    after_pool = model.maxpool(after_relu)
assert after_relu.shape == (1, 64, IMAGE_SIZE // 2, IMAGE_SIZE // 2)
assert after_pool.shape == (1, 64, IMAGE_SIZE // 4, IMAGE_SIZE // 4)
print("after conv1 + bn1 + relu:", tuple(after_relu.shape), "| after maxpool:", tuple(after_pool.shape))

# %%
made_std, random_std = after_relu[0, : len(filters)].std().item(), after_relu[0, len(filters) :].std().item()
print(f"standard deviation of the maps: hand-made {made_std:.2f}, random {random_std:.2f} "
      f"(ratio {made_std / random_std:.1f})")
checks.claim(made_std > random_std, "the text says the hand-made maps' values are larger than the random ones'; "
             f"here {made_std / random_std:.2f}x")
shown = list(range(12)) + [12, 13, 14, 15][: max(0, N_MAPS - 12)]
fig = plot_feature_maps(after_relu[0, shown], n=len(shown), ncols=8, labels=[labels[i] for i in shown],
                        title=f"conv1 + BN + ReLU: {after_relu.shape[-1]} x {after_relu.shape[-1]} maps")
plt.show()

# %% [markdown]
# A "gradient θ" filter measures the change of brightness along direction θ, so it lights up on
# edges running *perpendicular* to θ: "gradient 0°" on vertical edges, "gradient 90°" on horizontal
# ones (the cat's contours, whiskers and stripes of that orientation). The negative-sign twin lights
# up on the opposite side of the same edges, because the ReLU keeps only one polarity of each
# filter. The colour-opponent maps respond to regions rather than edges. The random filters respond
# to a bit of everything: what training buys is selectivity. Each panel has its own colour scale
# (brightest = that map's maximum), so compare patterns within a panel, not brightness across
# panels. The thin lines along the border of some maps come from the zero padding: a filter that
# straddles the border sees a jump from the image to zeros, which looks like an edge.
#
# The max-pool then keeps the strongest response in each 3×3 window at stride 2: a quarter of the
# values, and a small tolerance to shifts (the maximum stays the maximum if the edge moves by a
# pixel within the window).

# %%
fig = plot_feature_maps(after_pool[0, shown], n=len(shown), ncols=8, labels=[labels[i] for i in shown],
                        title=f"after the 3x3/2 max-pool: {after_pool.shape[-1]} x {after_pool.shape[-1]} maps")
plt.show()

# %% [markdown]
# ## 6. The blog post's Keras snippet, dissected
#
# A widely copied blog post on "Multi-scale ResNet-101" lists `tensorflow` among its requirements
# (notebook 00) and gives the stem as a Keras snippet that does not run: bad indentation, a `Conv2D`
# subclass with a wrong signature, and pooling built as a convolution. This listing reproduces its
# three defects (shown, not run):
#
# ```python
# import tensorflow as tf
# from tensorflow.keras import layers
#
# class ConvBN(layers.Conv2D):
#     def __init__(self, filters, kernel_size, strides):
#     super().__init__()                                  # (1) not indented under the def
#         self.bn = layers.BatchNormalization()
#     def call(self, x):
#         return tf.nn.relu(self.bn(super().call(x)))
#
# def stem(inputs):
#     x = ConvBN(64, 7, 2)(inputs)                        # (2) the subclass drops its arguments
#     x = layers.Conv2D(64, 3, strides=2, padding="same")(x)   # (3) "pooling" as a convolution
#     return x
# ```
#
# 1. **Indentation.** The body of `__init__` starts at the `def`'s own column, then indents further
#    on the next line. Python rejects the whole file with an `IndentationError` before running a line.
# 2. **A `Conv2D` subclass with the wrong signature.** `Conv2D.__init__` requires `filters` and
#    `kernel_size`; the subclass accepts them and then calls `super().__init__()` without them, so
#    constructing the layer raises `TypeError` (missing two required arguments). Forwarding those two
#    would not be enough: `strides` is never forwarded either, so Keras' defaults apply, stride 1 and
#    `"valid"` padding, and a 224 px input gives a 218 px map instead of ResNet's 112 (printed below).
#    Forwarding the stride as well still leaves `"valid"` padding: 109 px. ResNet's 112 needs stride 2
#    *and* padding: 3 on each side in PyTorch. Keras' `padding="same"` gives the same 112 px, but at
#    stride 2 it pads unevenly (fewer pixels before than after, printed below), so its windows sit
#    one pixel off PyTorch's, and weights trained in one do not give the same maps in the other.
# 3. **Pooling built as a convolution.** A 3×3/2 `Conv2D` is not a max-pool: it learns a weighted
#    sum, adds 36,928 parameters and about 116 million MACs at 224 px, and computes something
#    else. ResNet's stem uses `MaxPool2d(3, stride=2, padding=1)`, which has no parameters.
#
# The series uses PyTorch only. The numbers in points 2 and 3, measured:

# %% tags=["nbval-check-output"]
print("7x7 conv, stride 1 (not forwarded), 'valid' padding:", conv_output_size(224, 7, 1, padding=0), "px")
print("7x7 conv, stride 2, 'valid' padding (Keras default): ", conv_output_size(224, 7, 2, padding=0), "px")
print("7x7 conv, stride 2, padding 3 (ResNet):              ", conv_output_size(224, 7, 2, padding=3), "px")
pad_total = max((112 - 1) * 2 + 7 - 224, 0)              # Keras/TensorFlow "same": total padding for 112 outputs
print(f"Keras 'same' at stride 2 on 224 px: {pad_total} pixels of padding, {pad_total // 2} before and "
      f"{pad_total - pad_total // 2} after (PyTorch's padding=3: 3 and 3)")
fake_pool = nn.Conv2d(64, 64, 3, stride=2, padding=1)
real_pool = nn.MaxPool2d(3, stride=2, padding=1)
print(f"3x3/2 Conv2d 'pool': {count_parameters(fake_pool):,} parameters, "
      f"{count_flops(fake_pool, (64, 112, 112))['macs']:,} MACs")
print(f"3x3/2 MaxPool2d:     {count_parameters(real_pool)} parameters, "
      f"{count_flops(real_pool, (64, 112, 112))['macs']} MACs")

# %% [markdown]
# **The working PyTorch stem.** Four layers, named like torchvision's so that its `state_dict` keys
# are the model's (`conv1.weight`, `bn1.running_mean`, ...). The next cell proves it *is* the
# model's stem: it loads the model's stem weights strictly and gives bit-identical feature maps on
# the photo.

# %% tags=["nbval-check-output"]
resnet_stem = nn.Sequential(OrderedDict(
    conv1=nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False),
    bn1=nn.BatchNorm2d(64),
    relu=nn.ReLU(inplace=True),
    maxpool=nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
)).to(device)

stem_weights = {k: v for k, v in model.state_dict().items() if k.startswith(("conv1.", "bn1."))}
resnet_stem.load_state_dict(stem_weights, strict=True)
resnet_stem.eval()
with torch.no_grad():
    difference = (resnet_stem(batch) - after_pool).abs().max().item()
assert count_parameters(resnet_stem) == count_parameters(stem) == 9_536
assert difference == 0.0
print(f"parameters: {count_parameters(resnet_stem):,} | max |difference| from the model's stem: {difference}")

# %% [markdown]
# ## Exercises
#
# Each exercise has a cell to complete (the solution sits between the `BEGIN SOLUTION` and
# `END SOLUTION` markers; student copies have it removed) and a check cell.
#
# **Exercise 1: shapes at 200 px, where rounding matters.** "Divide by 32" gives a fraction of a
# pixel for a 200 px input (200/32), which no layer can output. Without running anything, write the `(channels, height,
# width)` of each stage's output for the full ResNet-101 at 200 px, following the size through
# `conv1`, the max-pool and the three strided stages with the output-size formula of section 2
# (channels: 256, 512, 1024, 2048). Which stage is the first whose size is not what halving 200 four
# times would suggest?

# %%
predicted_200 = None
### BEGIN SOLUTION
# 200 -> conv1 100 -> maxpool 50 -> layer1 50 -> layer2 25 -> layer3 13 (ceil of 12.5) -> layer4 7 (ceil of 6.5)
predicted_200 = {"layer1": (256, 50, 50), "layer2": (512, 25, 25), "layer3": (1024, 13, 13), "layer4": (2048, 7, 7)}
### END SOLUTION

# %% tags=["nbval-check-output"]
checks.check_stage_shapes(predicted_200, model=model, image_size=200)

# %% [markdown]
# **Exercise 2: predict, then measure, an effective receptive field.** Take Luo et al.'s simplest
# network: `depth` 3×3 convolutions on one channel, padding 1, no bias, every weight 1/9, no
# activation. Its theoretical field is `2·depth + 1` px. **Before running anything**, write in
# `my_guess` the side you expect to hold half of the centre pixel's gradient for 16, 64 and 256
# layers (33, 129 and 513 px theoretically). Then write `uniform_stack(depth)` that builds the
# network; the check measures it with `effective_receptive_field` and prints your guesses beside
# the measurements. Does a network 16 times deeper use 16 times as much context?

# %%
my_guess = {16: 25, 64: 100, 256: 400}   # your prediction, in px; these are a naive linear guess (side ~ depth)


def uniform_stack(depth: int) -> nn.Module:
    ### BEGIN SOLUTION
    layers = [nn.Conv2d(1, 1, kernel_size=3, padding=1, bias=False) for _ in range(depth)]
    with torch.no_grad():
        for layer in layers:
            layer.weight.fill_(1 / 9)
    return nn.Sequential(*layers)
    ### END SOLUTION


# %%
measured_sides = checks.check_uniform_stack_function(uniform_stack, predicted=my_guess)
growth = measured_sides[256] / measured_sides[16]
checks.claim(growth < 0.5 * 256 / 16, "the summary says the effective field grows far more slowly than the depth "
             f"(x16 in depth); here x{growth:.1f} in side")

# %% [markdown]
# **Exercise 3: predict, then count, the cost of a bottleneck's convolutions.** A ResNet-101
# bottleneck in `layer1` runs three convolutions on 56 × 56 maps: a 1×1 from 256 to 64 channels, a
# 3×3 from 64 to 64, and a 1×1 from 64 back to 256 (notebook 03 builds it). **Before writing any
# code**, write in `my_most_expensive` which of the three you expect to cost the most MACs, and in
# `my_ones_equal` whether the two 1×1 cost the same. Then write `conv_cost(c_in, c_out, kernel_size,
# out_size, bias)` returning `(parameters, MACs)` for a square `out_size × out_size` output, with the
# bias counted when `bias` is true. The check builds real layers and counts them with
# `count_parameters` and `count_flops`; the cell after it prints the three costs beside your guess.

# %%
my_most_expensive = "1x1 256->64"   # your guess: "1x1 256->64", "3x3 64->64" or "1x1 64->256"
my_ones_equal = False                # your guess: do the two 1x1 convolutions cost the same?


def conv_cost(c_in: int, c_out: int, kernel_size: int, out_size: int, bias: bool) -> tuple[int, int]:
    ### BEGIN SOLUTION
    weights = c_out * c_in * kernel_size * kernel_size
    params = weights + (c_out if bias else 0)
    macs = weights * out_size * out_size
    return params, macs
    ### END SOLUTION


# %% tags=["nbval-check-output"]
checks.check_conv_cost_function(conv_cost)

# %%
bottleneck_convs = {"1x1 256->64": (256, 64, 1), "3x3 64->64": (64, 64, 3), "1x1 64->256": (64, 256, 1)}
bottleneck_macs = {}
for name, (channels_in, channels_out, kernel) in bottleneck_convs.items():
    params, bottleneck_macs[name] = conv_cost(channels_in, channels_out, kernel, 56, False)
    print(f"{name:<12} {params:>7,} parameters {bottleneck_macs[name] / 1e6:>7.1f} MMACs at 56 x 56")
costliest = max(bottleneck_macs, key=bottleneck_macs.get)
ones_equal = bottleneck_macs["1x1 256->64"] == bottleneck_macs["1x1 64->256"]
print(f"costliest: {costliest} (you guessed {my_most_expensive}); the two 1x1 cost the same: {ones_equal} "
      f"(you guessed {my_ones_equal})")

# %% [markdown]
# ## Summary
#
# - Output size: `floor((size + 2p − d(k−1) − 1)/s) + 1`; pooling may round up (`ceil_mode`). Five
#   stride-2 layers divide the size by 32, rounding up: 224 px ends at 7 px.
# - Receptive field: each layer adds `(k'−1) × jump`; the jump multiplies by the stride. The ResNet
#   stem sees 11 px; after `layer3` of ResNet-101 one unit's theoretical field is wider than a 224 px
#   image. For the stem, back-propagating from one output pixel measured the field, and it agreed
#   with the arithmetic.
# - The effective receptive field (Luo et al. 2016), the square holding half of that gradient, is
#   much smaller than the theoretical one: on the untrained ResNet-101 (one initialization) half the
#   gradient sat well inside it. How it grows with depth was measured only on the uniform stacks of
#   Exercise 2, whose printed sides grow far more slowly than the depth (Luo et al. derive square-root
#   growth).
# - A convolution has `C_out·C_in·k²` weights and costs that many MACs per output pixel;
#   FLOPs = 2 × MACs, and papers often write "FLOPs" for MACs.
# - The stem (7×7/2 conv, BN, ReLU, 3×3/2 max-pool) reduces the resolution 4×, so every later layer
#   runs on a sixteenth of the pixels; its convolution costs about as much as one `layer1` 3×3. Its
#   edge and colour filters light up where a photo has edges and colours.
# - The blog post's Keras stem could not run (indentation, a broken `Conv2D` subclass), would have
#   kept stride 1 and "valid" padding (218 px), and built pooling as a convolution; the working
#   PyTorch stem above equals ResNet's, bit for bit.
#
# ## Quiz
#
# 1. A 3×3 convolution with stride 2 and padding 1 receives a 57×57 map. What size comes out?
# 2. The stem's 7×7 convolution has the largest kernel in the network. Does it cost more or less
#    than one 3×3 convolution of `layer1` (64 channels in and out, 56×56 outputs)? Predict, then
#    check against the counts printed in sections 4 and 6.
# 3. A paper says a network costs "4 GFLOPs"; `count_flops` reports `8e9` FLOPs. Is one of them wrong?
# 4. Why is the max-pool's receptive-field contribution `(3 − 1) × 2 = 4` pixels and not 2?
#
# <details><summary>Answers</summary>
#
# 1. `floor((57 + 2 − 3)/2) + 1 = 29`, that is `ceil(57/2)`.
# 2. About the same. Each output value of `conv1` needs only $3 \cdot 7 \cdot 7 = 147$ MACs per
#    output channel (3 input channels), against $64 \cdot 3 \cdot 3 = 576$ for the 3×3 convolution,
#    but `conv1` computes four times as many positions (112×112 against 56×56): 118 million MACs
#    against 116 million (the 3×3/2 "pool" convolution of section 6 has exactly a `layer1` 3×3's
#    shape and cost). The stem is a small share of ResNet-101 because it is one layer among a hundred
#    of similar cost, not because the 7×7 is cheap.
# 3. Probably neither: the paper counts multiply-adds (4 GMACs), the counter counts FLOPs (2 per MAC).
# 4. The max-pool reads `conv1` outputs, whose neighbours are centred 2 input pixels apart (jump 2).
#    Its window of 3 outputs therefore reaches `(3−1)·2 = 4` input pixels beyond one `conv1` window:
#    7 + 4 = 11.
# </details>
#
# ## Further reading
#
# - V. Dumoulin, F. Visin, *A guide to convolution arithmetic for deep learning*, 2016: output-size
#   relationships for every padding/stride case, with figures.
# - A. Araujo, W. Norris, J. Sim, *Computing Receptive Fields of Convolutional Neural Networks*,
#   Distill 2019: the recurrence used here, and multi-path networks.
# - K. He et al., *Deep Residual Learning for Image Recognition*, CVPR 2016: Table 1 (the stem and
#   the stages; its "FLOPs" are multiply-adds).
# - M. Zeiler, R. Fergus, *Visualizing and Understanding Convolutional Networks*, ECCV 2014, Fig. 2:
#   what trained first-layer filters look like.
# - W. Luo, Y. Li, R. Urtasun, R. Zemel, *Understanding the Effective Receptive Field in Deep
#   Convolutional Neural Networks*, NIPS 2016: section 2 (the Gaussian shape and its square-root
#   growth with depth), and how training changes it.
