# %% [markdown]
# # 03 · Bottleneck blocks: three layers for the price of two
#
# ResNet-50, -101 and -152 are built from one block repeated 16, 33 and 50 times (He et al. 2016,
# Table 1): the *bottleneck*. It is why a 101-layer network costs only about twice as much as a 34-layer one
# (notebook 04 counts both).
# This notebook builds the block from its layers, proves the result equals `tutorial_lib`'s (and
# therefore torchvision's) block, and then measures what the design buys: parameters and
# multiply-adds against basic blocks, the projection shortcut, and where the stride sits
# (v1 versus v1.5), which changes cost and what the block can see but not a single parameter.
#
# **Learning objectives.** After this notebook you can
#
# 1. build a Bottleneck from `nn.Conv2d`, `nn.BatchNorm2d` and `nn.ReLU`, and prove it equals a reference implementation;
# 2. say when a block needs a projection shortcut, and what it costs;
# 3. count a bottleneck's parameters and MACs, and compare it with basic blocks at the same width;
# 4. explain the v1 and v1.5 stride placements and measure their difference in cost and in which input pixels are used.
#
# **Prerequisites.** Notebook 01 (output sizes, parameters and MACs of a convolution). Notebook 02
# introduces residual learning with the basic block; this one only needs its idea, `y = relu(F(x) + x)`.
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
import torch
from torch import nn

from tutorial_lib import checks
from tutorial_lib.blocks import BasicBlock, Bottleneck, projection
from tutorial_lib.checks import prove_equal
from tutorial_lib.cost import count_flops, count_parameters
from tutorial_lib.env import choose_device, seed_everything
from tutorial_lib.models import resnet101
from tutorial_lib.norm import randomize_norm

# %% [markdown]
# ## Parameters
#
# The defaults run in seconds on a CPU. The measurements are counts and equalities, so another even
# `SIZE` or a larger `BATCH` changes nothing but the time (an odd `SIZE` breaks section 5's exact
# quarter: a stride-2 convolution then keeps ⌈SIZE/2⌉² pixels, a little more than a quarter).

# %% tags=["parameters"]
SEED = 0        # one integer drives every random generator
DEVICE = None   # None: automatic (cuda > mps > cpu), or "cpu", "cuda", "mps"
SIZE = 56       # input height and width of the blocks, even (56 is layer1's resolution at 224 px)
BATCH = 2       # images per test batch (at least 2, so BatchNorm can run in training mode)

# %%
seed_everything(SEED)
device = choose_device(DEVICE)
print(f"device: {device}")


# %% [markdown]
# ## 1. Why a bottleneck
#
# A 3×3 convolution on `C` channels costs `9·C²` MACs per pixel. At ResNet-101's widest stage a
# 3×3 would cost $9 \cdot 2048^2 \approx 37.7$ million MACs *per pixel* (2048 channels: He et al.
# 2016, Table 1). He et al. (2016, section 4.1,
# "Deeper Bottleneck Architectures", Fig. 5 right) therefore wrap the 3×3 between two 1×1
# convolutions: the first **reduces** the channels by 4, the 3×3 works on the narrow tensor, the
# second 1×1 **expands** back. The block's input and output stay wide (`4·planes` channels), which
# is what the shortcut carries from block to block.
#
# ```
# x (4p channels) ─┬─ 1x1, p ─ BN ─ ReLU ─ 3x3, p ─ BN ─ ReLU ─ 1x1, 4p ─ BN ─┐
#                  └──────────────── identity (or projection) ────────────────(+)─ ReLU ─ out
# ```

# %% [markdown]
# ## 2. Build it inline
#
# Attribute names follow torchvision (`conv1`, `bn1`, ..., `downsample`), because they double as
# `state_dict` keys: that is what lets pretrained weights load. `forward` runs one layer per line, in
# the order of the diagram. The convolutions have no bias: each is followed by a BatchNorm, whose
# shift would make a bias redundant.

# %% tags=["nbval-check-output"]
class InlineBottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)                    # reduce
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)     # expand
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x

        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)

        out = self.conv2(out)
        out = self.bn2(out)
        out = self.relu(out)

        out = self.conv3(out)
        out = self.bn3(out)

        if self.downsample is not None:
            identity = self.downsample(x)

        out += identity          # y = F(x) + x  (He et al. 2016, eq. 1)
        out = self.relu(out)
        return out

block = InlineBottleneck(256, 64).to(device)
x = torch.randn(BATCH, 256, SIZE, SIZE, device=device)
print("in:", tuple(x.shape), "-> out:", tuple(block(x).shape))

# %% [markdown]
# **Prove it equals the package's block**, as in notebook 02: `tutorial_lib.checks.prove_equal`
# asserts the same parameter count, that the package's weights load with `strict=True` (every key
# present, every shape equal), and that the outputs are identical, not merely close, in both
# training mode (batch statistics) and eval mode (running statistics). `tutorial_lib.norm.randomize_norm`
# first gives the package block's BatchNorm layers random statistics and affine parameters (fresh
# ones are the identity in eval mode), so eval mode has something to get wrong.

# %% tags=["nbval-check-output"]
reference = randomize_norm(Bottleneck(256, 64).to(device), seed=SEED)
print(prove_equal(InlineBottleneck(256, 64).to(device), reference, x))

# %% [markdown]
# ## 3. The projection shortcut
#
# `F(x) + x` needs `F(x)` and `x` to have the same shape. Inside a stage they do. The first block
# of a stage changes the shape: `layer1` goes from the stem's 64 channels to 256, and `layer2`-`layer4`
# also halve the resolution. There, the shortcut becomes a **projection**: a 1×1 convolution with the
# block's stride (He et al. 2016: eq. 2, `y = F(x) + W_s x`, in section 3.2; option B in section
# 3.3), followed by BatchNorm as in torchvision's implementation. Without it the addition fails, and `tutorial_lib` says so at construction:

# %% tags=["nbval-check-output"]
try:
    Bottleneck(256, 128, stride=2)
except ValueError as error:
    print("ValueError:", error)

# %%
shortcut = projection(256, 512, stride=2)
print(shortcut)

# %% tags=["nbval-check-output"]
reference = randomize_norm(Bottleneck(256, 128, stride=2, downsample=projection(256, 512, stride=2)).to(device), seed=SEED)
inline = InlineBottleneck(256, 128, stride=2, downsample=projection(256, 512, stride=2)).to(device)
print(prove_equal(inline, reference, x))
print("in:", tuple(x.shape), "-> out:", tuple(reference(x).shape))

# %% [markdown]
# Only four of ResNet-101's 33 blocks need one, the first of each stage, so projections are a small
# share of the network:

# %% tags=["nbval-check-output"]
model = resnet101()
blocks = [(name, m) for name, m in model.named_modules() if isinstance(m, Bottleneck)]
projected = [name for name, m in blocks if m.downsample is not None]
projection_params = sum(count_parameters(m.downsample) for _, m in blocks if m.downsample is not None)
print(f"{len(blocks)} blocks, projections in {projected}")
print(f"projection parameters: {projection_params:,} of {count_parameters(model):,} "
      f"({projection_params / count_parameters(model):.1%})")

# %% [markdown]
# ## 4. What the bottleneck costs, against basic blocks
#
# Compare, at `SIZE × SIZE` resolution:
#
# * a **Bottleneck(256, 64)**: 256 channels in and out, 64 inside (ResNet-50/101/152's `layer1` block);
# * a **BasicBlock(64, 64)**: two 3×3 convolutions at the bottleneck's *inner* width (ResNet-34's `layer1` block);
# * a **BasicBlock(256, 256)**: two 3×3 convolutions at the bottleneck's *outer* width.
#
# The prediction first (convolution weights only; at stride 1 this is also the multiply-adds per
# output pixel): the bottleneck has `256·64 + 9·64·64 + 64·256 = 69,632` weights, the narrow basic block `2·9·64·64 = 73,728`,
# the wide one `2·9·256·256 = 1,179,648`.

# %% tags=["nbval-check-output"]
candidates = {
    "Bottleneck(256, 64)": (Bottleneck(256, 64), 256),
    "BasicBlock(64, 64)": (BasicBlock(64, 64), 64),
    "BasicBlock(256, 256)": (BasicBlock(256, 256), 256),
}
print(f"{'block':<22}{'in/out ch':>10}{'conv layers':>12}{'parameters':>12}{'MMACs':>9}")
table = {}
for name, (module, channels) in candidates.items():
    params = count_parameters(module)
    macs = count_flops(module, (channels, SIZE, SIZE))["macs"]
    convs = sum(isinstance(m, nn.Conv2d) for m in module.modules())
    table[name] = (params, macs)
    print(f"{name:<22}{channels:>10}{convs:>12}{params:>12,}{macs / 1e6:>9.1f}")

conv_weights = [sum(c.weight.numel() for c in m.modules() if isinstance(c, nn.Conv2d)) for m, _ in candidates.values()]
assert conv_weights == [69_632, 73_728, 1_179_648]
wide_over_bottleneck = table["BasicBlock(256, 256)"][1] / table["Bottleneck(256, 64)"][1]
print(f"a basic block at 256 channels costs {wide_over_bottleneck:.0f}x the bottleneck's MACs")

# %% [markdown]
# The bottleneck costs slightly *less* than the narrow basic block, yet it is one layer deeper and
# carries four times the channels from block to block. Matching its 256-channel interface with
# 3×3 convolutions costs 17 times more (printed above). That is the trade that let He et al. go to
# 101 and 152 layers at a cost a 2016 GPU cluster could train (2016, Table 1: 7.6 × 10⁹ FLOPs for
# ResNet-101, counted as multiply-adds; notebook 04 measures the whole network).

# %% [markdown]
# ## 5. Where the stride sits: v1 and v1.5
#
# The first block of `layer2`-`layer4` halves the resolution. The paper (and its Caffe models) put the
# stride on the first 1×1 convolution: **v1**. torchvision moved it to the 3×3: **v1.5**. The weights
# have the same shapes, so the two layouts have the same parameters and share checkpoints; what
# changes is the computation. `tutorial_lib` builds either with `stride_in`:

# %% tags=["nbval-check-output"]
layouts = {
    layout: Bottleneck(256, 128, 2, projection(256, 512, 2), stride_in=layout).to(device)
    for layout in ("v1", "v1.5")
}
for layout, module in layouts.items():
    macs = count_flops(module, (256, SIZE, SIZE))["macs"]
    print(f"{layout:>4}: conv1 stride {module.conv1.stride}, conv2 stride {module.conv2.stride}, "
          f"{count_parameters(module):,} parameters, {macs / 1e6:.1f} MMACs")
assert count_parameters(layouts["v1"]) == count_parameters(layouts["v1.5"])


# %% [markdown]
# **What v1 gives up.** A 1×1 convolution with stride 2 reads one pixel in four and never looks at
# the other three, and in v1 both paths of the block (the main path's `conv1` and the projection)
# are such convolutions. So three quarters of the block's input pixels cannot influence its output.
# Measure it: back-propagate from the output and count the input positions whose gradient is non-zero.

# %% tags=["nbval-check-output"]
def fraction_of_input_used(module: nn.Module, channels: int) -> float:
    """Share of input pixels (over H x W) that influence at least one output value."""
    module.eval()
    x = torch.randn(1, channels, SIZE, SIZE, device=device, requires_grad=True)
    (grad,) = torch.autograd.grad(module(x).sum(), x)
    return (grad[0] != 0).any(dim=0).float().mean().item()

for layout, module in layouts.items():
    print(f"{layout:>4}: {fraction_of_input_used(module, 256):.0%} of the input pixels reach the output")
assert fraction_of_input_used(layouts["v1"], 256) == 0.25
assert fraction_of_input_used(layouts["v1.5"], 256) == 1.0

# %% [markdown]
# v1.5 pays for looking at every pixel: its `conv1` runs at full resolution. Over the whole network
# the difference is three blocks' worth of full-resolution 1×1 convolutions:

# %% tags=["nbval-check-output"]
from tutorial_lib.models import resnet50

gmacs = {}
for name, builder in (("ResNet-50", resnet50), ("ResNet-101", resnet101)):
    for layout in ("v1", "v1.5"):
        net = builder(stride_in=layout)
        gmacs[name, layout] = count_flops(net, 224)["macs"] / 1e9
        print(f"{name:<10} {layout:>4}: {count_parameters(net):>10,} parameters, {gmacs[name, layout]:.2f} GMACs at 224 px")
for name in ("ResNet-50", "ResNet-101"):
    print(f"{name}: v1.5 costs {gmacs[name, 'v1.5'] / gmacs[name, 'v1'] - 1:.1%} more than v1")


# %% [markdown]
# 7.57 GMACs is the figure He et al. (2016, Table 1) round to "7.6 × 10⁹ FLOPs" (they count
# multiply-adds), and ResNet-50's v1 count, printed above, is close to their "3.8 × 10⁹": the
# paper's figures sit a little below exact counts (ResNet-34 in notebook 04 is another example),
# as if truncated or leaving out the small layers. The same three strided blocks are a
# larger share of the shallower network, so v1.5's extra compute is larger for ResNet-50 (printed
# above) than for ResNet-101. For that extra compute, the [ResNet-50 v1.5 model card](https://github.com/NVIDIA/DeepLearningExamples/tree/master/PyTorch/Classification/ConvNets/resnet50v1.5)
# of NVIDIA Deep Learning Examples reports about 0.5% higher ImageNet top-1 accuracy than v1, and
# about 5% fewer images per second. torchvision and timm use v1.5, and so does `tutorial_lib` by
# default.

# %% [markdown]
# ## Exercises
#
# **Exercise 1: count a bottleneck's parameters.** Write `bottleneck_params(inplanes, planes,
# stride)`: the convolutions, the BatchNorms (a weight and a bias per channel) and, when the block
# needs one, the projection shortcut. No counting of real modules: a formula.

# %%
def bottleneck_params(inplanes: int, planes: int, stride: int) -> int:
    ### BEGIN SOLUTION
    out = 4 * planes
    convs = inplanes * planes + 9 * planes * planes + planes * out
    norms = 2 * (planes + planes + out)
    shortcut = inplanes * out + 2 * out if (stride != 1 or inplanes != out) else 0
    return convs + norms + shortcut
    ### END SOLUTION

print(f"{bottleneck_params(1024, 256, 1):,}")

# %% tags=["nbval-check-output"]
checks.check_bottleneck_params_function(bottleneck_params)

# %% [markdown]
# **Exercise 2: what v1 saves in `layer3`.** The first block of `layer3` receives a
# 512-channel, 28×28 map (at 224 px) and has `planes = 256`. How many MACs does the v1 layout save
# there, compared with v1.5? Work it out from the layer shapes (which convolution's output changes
# size?), then let the check measure both layouts with `count_flops`.

# %%
saving = None
### BEGIN SOLUTION
# Only conv1 (1x1, 512 -> 256) changes: v1.5 computes it on 28x28 pixels, v1 on 14x14.
saving = 512 * 256 * (28 * 28 - 14 * 14)
### END SOLUTION
print(f"{saving:,}")

# %% tags=["nbval-check-output"]
checks.check_v1_saving(saving, inplanes=512, planes=256, size=28)

# %% [markdown]
# ## Summary
#
# - A bottleneck is 1×1 reduce, 3×3, 1×1 expand (×4), each followed by BatchNorm, ReLU after the
#   first two and after the addition. Built inline, it loads the package's weights strictly and
#   gives identical outputs: it *is* torchvision's block.
# - The first block of each stage needs a projection shortcut (1×1 with stride, then BN); only 4 of
#   ResNet-101's 33 blocks have one.
# - At 256 channels in and out, a bottleneck costs a bit less than a basic block at 64 channels and
#   17× less than a basic block at 256; that is what makes ResNet-101 and ResNet-152 affordable.
# - v1 (stride on the 1×1) and v1.5 (stride on the 3×3) have identical parameters. v1 is cheaper
#   (7.57 vs 7.80 GMACs for ResNet-101, 3.86 vs 4.09 for ResNet-50) because its strided blocks
#   ignore three quarters of their input pixels; v1.5 is the torchvision/timm default and is
#   reported more accurate.
#
# ## Quiz
#
# 1. Why do the bottleneck's convolutions have no bias?
# 2. `layer1` does not change the resolution. Why does its first block still need a projection?
# 3. A v1 and a v1.5 ResNet-50 checkpoint: can you load one into the other with `strict=True`? Will the outputs match?
# 4. In v1.5, which input pixels of a strided block does the projection shortcut ignore, and why is that not a loss?
#
# <details><summary>Answers</summary>
#
# 1. Each is followed by BatchNorm, which subtracts the mean (removing any bias) and adds its own shift `β`.
# 2. Its input has 64 channels (the stem's output) and its output 256: the shapes differ in channels.
# 3. Yes, the keys and shapes are identical. No: the same weights compute different functions, since
#    the stride is applied at a different layer.
# 4. The projection (1×1, stride 2) reads one pixel in four, but the main path's 3×3 with stride 2
#    reads all of them, so every input pixel still reaches the output (100% measured above).
# </details>
#
# ## Further reading
#
# - K. He, X. Zhang, S. Ren, J. Sun, *Deep Residual Learning for Image Recognition*, CVPR 2016:
#   section 3.3 (shortcut options A and B), section 4.1 (option C, Table 3 comparing the three, and
#   "Deeper Bottleneck Architectures" with Fig. 5), Table 1 (the architectures and their multiply-adds).
# - NVIDIA Deep Learning Examples, *ResNet50 v1.5 for PyTorch*: the v1.5 layout and its measured accuracy and speed.
# - P. Goyal et al., *Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour*, 2017: section 5.1,
#   zero-initialising each block's last BatchNorm (the `zero_init_residual` option).
