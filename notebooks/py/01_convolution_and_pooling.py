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
# 2. compute the receptive field and effective stride of a stack of layers, and measure them by back-propagation;
# 3. count a convolution's parameters and multiply-adds (MACs), and tell MACs from FLOPs;
# 4. read the ResNet stem (7×7/2 convolution, BatchNorm, ReLU, 3×3/2 max-pool) and see what it does to a photo;
# 5. explain why the source text's Keras snippet cannot run, and write the working PyTorch stem.
#
# **Prerequisites.** Notebook 00; PyTorch tensors and `nn.Module` basics.
#
# **Run time:** under 1 min with the defaults, measured on the machine the README's syllabus describes (2 cores, no GPU).
#
# **On Colab:** add a cell above this one and run the install lines of the README's "Colab" section:
#
# ```python
# REPO = "https://github.com/OWNER/NAME"   # replace OWNER/NAME with this repository's, as in the Colab URL
# !git clone -q {REPO} series && pip install -q ./series
# %cd series/notebooks
# ```

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
from tutorial_lib.layers import conv_output_size, format_receptive_fields, measure_receptive_field, receptive_field
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
# is non-zero exactly on the pixels that output depends on. `measure_receptive_field` back-propagates
# from the centre output pixel (summed over channels, a few random inputs) and returns the bounding
# box of the non-zero gradient.

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
# After `layer3` one output pixel already "sees" more than a 224 px image: deep features can use
# the whole image as context, while the stem's units see an 11 px patch. Here are those windows on
# the photo this notebook uses (resized and centre-cropped to `IMAGE_SIZE`, then normalized with the
# ImageNet mean and standard deviation, as torchvision's pretrained models expect):

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
show_receptive_fields(image.permute(1, 2, 0).numpy(), boxes, title="what one output pixel sees, per stage")
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


# %% [markdown]
# ## 5. The ResNet stem on a real photo
#
# The stem (He et al. 2016, Table 1, row "conv1" and the max-pool of "conv2_x") reduces the
# resolution 4× before any residual block runs. Why this design: the first layer has only 3 input
# channels, so even a large 7×7 kernel is cheap (1.5% of the network's MACs, measured above), and a
# large kernel at stride 2 gives the next layers an 11 px view at a quarter of the pixels.
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
        edge = sign * (xx * math.cos(t) + yy * math.sin(t)) * gauss      # derivative of a Gaussian
        filters.append(edge.expand(3, 7, 7) / edge.abs().sum())          # same on R, G and B: luminance
        labels.append(f"edge {angle}°{'' if sign > 0 else ' (−)'}")
for name, colour in (("red−green", (1.0, -1.0, 0.0)), ("green−red", (-1.0, 1.0, 0.0)),
                     ("blue−yellow", (-0.5, -0.5, 1.0)), ("yellow−blue", (0.5, 0.5, -1.0))):
    filters.append(torch.tensor(colour).view(3, 1, 1) * gauss / gauss.sum())
    labels.append(name)

with torch.no_grad():
    model.conv1.weight[: len(filters)] = 4 * torch.stack(filters)
labels += [f"random {i}" for i in range(len(filters), 64)]
model.eval()   # BatchNorm uses its running statistics (fresh: mean 0, variance 1)
stem = stem.to(device)

with torch.no_grad():
    after_relu = model.relu(model.bn1(model.conv1(batch)))
    after_pool = model.maxpool(after_relu)
assert after_relu.shape == (1, 64, IMAGE_SIZE // 2, IMAGE_SIZE // 2)
assert after_pool.shape == (1, 64, IMAGE_SIZE // 4, IMAGE_SIZE // 4)
print("after conv1 + bn1 + relu:", tuple(after_relu.shape), "| after maxpool:", tuple(after_pool.shape))

# %%
shown = list(range(12)) + [12, 13, 14, 15][: max(0, N_MAPS - 12)]
fig = plot_feature_maps(after_relu[0, shown], n=len(shown), ncols=8, labels=[labels[i] for i in shown],
                        title=f"conv1 + BN + ReLU: {after_relu.shape[-1]} x {after_relu.shape[-1]} maps")
plt.show()

# %% [markdown]
# Each edge map lights up along the cat's contours of its orientation (whiskers, ear edges, the
# stripes); the negative-sign twin lights up on the opposite side of the same edges, because the
# ReLU keeps only one polarity of each filter. The colour-opponent maps respond to regions rather
# than edges. The random filters respond to a bit of everything: what training buys is selectivity.
#
# The max-pool then keeps the strongest response in each 3×3 window at stride 2: a quarter of the
# values, and a small tolerance to shifts (the maximum stays the maximum if the edge moves by a
# pixel within the window).

# %%
fig = plot_feature_maps(after_pool[0, shown], n=len(shown), ncols=8, labels=[labels[i] for i in shown],
                        title=f"after the 3x3/2 max-pool: {after_pool.shape[-1]} x {after_pool.shape[-1]} maps")
plt.show()

# %% [markdown]
# ## 6. The source text's Keras snippet, dissected
#
# The text this series grew from listed `tensorflow` among its requirements and gave the stem as a
# Keras snippet. It had three defects, reproduced in this listing (shown, not run):
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
#    constructing the layer raises `TypeError` (missing two required arguments). Even if they were
#    passed on, `strides` is never forwarded and Keras' default padding is `"valid"`, so the output
#    would be 109 px, not ResNet's 112.
# 3. **Pooling built as a convolution.** A 3×3/2 `Conv2D` is not a max-pool: it learns a weighted
#    sum, adds 36,928 parameters and about 116 million MACs at 224 px, and computes something
#    else. ResNet's stem uses `MaxPool2d(3, stride=2, padding=1)`, which has no parameters.
#
# The series uses PyTorch only. The numbers in points 2 and 3, measured:

# %% tags=["nbval-check-output"]
print("7x7/2 conv, 'valid' padding (Keras default):", conv_output_size(224, 7, 2, padding=0), "px")
print("7x7/2 conv, padding 3 (ResNet):             ", conv_output_size(224, 7, 2, padding=3), "px")
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
# **Exercise 1: the output-size formula.** Write `output_size(size, kernel_size, stride, padding,
# dilation)` for one axis of a convolution, without calling `conv_output_size`. The check compares
# it with real `nn.Conv2d` layers on a grid of settings.

# %%
def output_size(size: int, kernel_size: int, stride: int, padding: int, dilation: int) -> int:
    ### BEGIN SOLUTION
    span = dilation * (kernel_size - 1) + 1
    return (size + 2 * padding - span) // stride + 1
    ### END SOLUTION


# %% tags=["nbval-check-output"]
checks.check_output_size_function(output_size)


# %% [markdown]
# **Exercise 2: the receptive-field recurrence.** Write `receptive(layers)` that takes a list of
# `(kernel_size, stride)` pairs (no padding or dilation) and returns `(receptive_field, jump)` after
# the last layer. Then use it: what does an output pixel of `[(7, 2), (3, 2), (3, 1), (3, 1)]` see?

# %%
def receptive(layers: list[tuple[int, int]]) -> tuple[int, int]:
    ### BEGIN SOLUTION
    size, jump = 1, 1
    for kernel_size, stride in layers:
        size += (kernel_size - 1) * jump
        jump *= stride
    return size, jump
    ### END SOLUTION

print(receptive([(7, 2), (3, 2), (3, 1), (3, 1)]))

# %% tags=["nbval-check-output"]
checks.check_receptive_field_function(receptive)


# %% [markdown]
# **Exercise 3: the cost of a convolution.** Write `conv_cost(c_in, c_out, kernel_size, out_size,
# bias)` returning `(parameters, MACs)` for a square `out_size × out_size` output. The check builds
# real layers and counts them with `count_parameters` and `count_flops`.

# %%
def conv_cost(c_in: int, c_out: int, kernel_size: int, out_size: int, bias: bool) -> tuple[int, int]:
    ### BEGIN SOLUTION
    weights = c_out * c_in * kernel_size * kernel_size
    params = weights + (c_out if bias else 0)
    macs = weights * out_size * out_size
    return params, macs
    ### END SOLUTION


# %% tags=["nbval-check-output"]
checks.check_conv_cost_function(conv_cost)

# %% [markdown]
# ## Summary
#
# - Output size: `floor((size + 2p − d(k−1) − 1)/s) + 1`; pooling may round up (`ceil_mode`). Five
#   stride-2 layers divide the size by 32, rounding up: 224 px ends at 7 px.
# - Receptive field: each layer adds `(k'−1) × jump`; the jump multiplies by the stride. The ResNet
#   stem sees 11 px; after `layer3` of ResNet-101 one unit sees more than the whole 224 px image.
#   Back-propagating from one output pixel measures it, and agrees with the arithmetic.
# - A convolution has `C_out·C_in·k²` weights and costs that many MACs per output pixel;
#   FLOPs = 2 × MACs, and papers often write "FLOPs" for MACs.
# - The stem (7×7/2 conv, BN, ReLU, 3×3/2 max-pool) reduces the resolution 4× for 1.5% of the
#   network's cost; its edge and colour filters light up where a photo has edges and colours.
# - The source text's Keras stem could not run (indentation, a broken `Conv2D` subclass) and built
#   pooling as a convolution; the working PyTorch stem above equals ResNet's, bit for bit.
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
