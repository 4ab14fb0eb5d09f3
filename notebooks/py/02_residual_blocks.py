# %% [markdown]
# # 02 · Residual blocks: why a shortcut lets a network go deep
#
# Stacking more layers should never make a network *worse* at fitting its training data: the extra
# layers could, in principle, learn the identity and leave the shallower network's answer alone.
# In practice, a deeper plain network (no shortcuts) fits its own training data *worse* than a
# shallower one: He et al. (2016, Fig. 1) trained plain networks of 20 and 56 layers on CIFAR-10,
# and the 56-layer one ended with the higher training error. They called this the *degradation
# problem* and fixed it with one line of code: each block adds its input to its output,
# `y = F(x) + x`. This notebook builds that block, proves it equals the one `tutorial_lib` uses
# (`tests/test_blocks.py` proves the package's block equals torchvision's), and then **measures**
# what the addition changes on our `multiscale-digits` data: the gradients a deep network receives
# at initialisation, the loss it starts from, and how plain and residual networks of two depths train
# with the same short budget. That budget is far shorter than the paper's, and section 8 says what it
# can and cannot show. Along the way, the training loop the rest of the series runs (`fit`) is
# written out in a few lines, and proved to agree with it.
#
# **Learning objectives.** After this notebook you can
#
# 1. build a `BasicBlock` from convolutions, BatchNorm and ReLU, and prove it equals a reference implementation;
# 2. say when a block needs a projection shortcut, and build one;
# 3. measure per-layer gradient norms and the output scale at initialisation, and read what they say about a deep network;
# 4. train plain and residual networks of two depths with the same budget, read over seeds what a short run does and does not show, and tell a network that fails to start from one that degrades;
# 5. write a training loop (forward, loss, backward, step) and show that it computes what `tutorial_lib.train.fit` computes.
#
# **Prerequisites.** Notebook 00 (setup, the dataset) and notebook 01 (convolutions, output sizes).
#
# **Run time:** about 2 min with the defaults, measured on the machine the README's syllabus describes (2 cores, no GPU).
# Four short training runs take most of it.
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
import copy
import json
import math
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

from tutorial_lib import checks
from tutorial_lib.blocks import BasicBlock, projection
from tutorial_lib.checks import prove_equal
from tutorial_lib.cost import count_parameters
from tutorial_lib.data import batches, load_dataset, to_float_images
from tutorial_lib.env import choose_device, seed_everything
from tutorial_lib.norm import randomize_norm
from tutorial_lib.train import STREAM_SHUFFLE, derive_seed, evaluate, fit, gradient_norms, make_optimizer, schedule_factor
from tutorial_lib.viz import plot_gradient_norms, plot_histories

# %% [markdown]
# ## Parameters
#
# The defaults train four networks (plain and residual, 20 and 56 layers) for `EPOCHS` passes over
# `NUM_TRAIN` images at 32 px: most of the notebook's run time, and the same settings as seed 0 of
# `benchmarks/degradation.py` (section 8 reads its three seeds, and shows how far this run lands from
# them). On a GPU (`DEVICE = "cuda"`), use
# the whole training split and train longer to see the full curves: `NUM_TRAIN = 16000`,
# `EPOCHS = 15`, `WIDTH = 16` (He et al.'s CIFAR width), and try `BLOCKS = 18` (He et al.'s
# ResNet-110, 2016, section 4.2). Other parameters give other numbers: the cells that check a
# sentence against a measurement then stop; set the environment variable `TUTORIAL_CLAIMS=warn`
# to have them print a warning instead. The optimiser follows the paper's in part (section 4.2):
# SGD with momentum 0.9, weight decay 1e-4 and peak learning rate 0.1, one rate for all four
# networks. It differs in Nesterov momentum, a linear warm-up and cosine decay (the paper divides
# the rate by 10 twice) and mini-batches of 64 (the paper: 128).

# %% tags=["parameters"]
SEED = 0           # one integer drives every random generator
DEVICE = None      # None: automatic (cuda > mps > cpu), or "cpu", "cuda", "mps"
IMAGE_SIZE = 32    # multiscale-digits image side in pixels (32-256)
NUM_TRAIN = 3072   # training images (the split has 16,000)
NUM_TEST = 1000    # images of the in-distribution test split
WIDTH = 8          # channels of the first stage; stages have WIDTH, 2*WIDTH, 4*WIDTH
SHALLOW_BLOCKS = 3 # blocks per stage of the shallow networks: 6 * 3 + 2 gives 20 layers
BLOCKS = 9         # blocks per stage of the deep networks: 6 * 9 + 2 gives 56 layers
EPOCHS = 3         # passes over the training images, for each network
BATCH_SIZE = 64    # images per optimizer step
LR = 0.1           # peak learning rate (SGD, He et al. 2016 sec 4.2), after a linear warm-up, then cosine decay
WARMUP_EPOCHS = 0.5  # linear warm-up from near zero to LR, in epochs
MOMENTUM = 0.9     # SGD momentum (He et al. 2016 sec 4.2)
WEIGHT_DECAY = 1e-4  # on convolution and linear weights (He et al. 2016 sec 4.2)

# %%
seed_everything(SEED)
device = choose_device(DEVICE)
print(f"device: {device}, depths: {6 * SHALLOW_BLOCKS + 2} and {6 * BLOCKS + 2} layers")


# %% [markdown]
# ## 1. The residual idea
#
# Let `H(x)` be the mapping a few stacked layers should learn. A plain network fits `H` directly. A
# residual block fits the *residual* `F(x) = H(x) - x` and adds the input back (He et al. 2016,
# eq. 1):
#
# ```
# y = F(x, {W_i}) + x
# ```
#
# If the best thing a block can do is nothing, a residual block only has to drive its branch's
# output to zero (section 9 and exercise 2 come back to how, with a BatchNorm last in the branch),
# whereas a plain block has to make two convolutions, two BatchNorms and two
# ReLUs reproduce their input exactly. The basic block of ResNet-18 and -34 (Fig. 2 and Fig. 5 left of
# the paper) is two 3x3 convolutions, each followed by BatchNorm, a ReLU in between, and a ReLU
# after the addition:
#
# ```
# x ─┬─ 3x3 conv ─ BN ─ ReLU ─ 3x3 conv ─ BN ─┐
#    └──────── identity (or projection) ─────(+)─ ReLU ─ y
# ```

# %% [markdown]
# ## 2. Build a BasicBlock inline
#
# Attribute names follow torchvision (`conv1`, `bn1`, `relu`, `conv2`, `bn2`, `downsample`), because
# they double as `state_dict` keys. The convolutions have no bias: the BatchNorm after each has its
# own shift. `forward` runs one layer per line, in the order of the diagram; `downsample` is the
# shortcut when the block changes shape (section 3).

# %% tags=["nbval-check-output"]
class InlineBasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x

        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)

        out = self.conv2(out)
        out = self.bn2(out)

        if self.downsample is not None:
            identity = self.downsample(x)

        out += identity          # y = F(x) + x  (He et al. 2016, eq. 1)
        out = self.relu(out)
        return out

block = InlineBasicBlock(16, 16).to(device)
x = torch.randn(2, 16, IMAGE_SIZE, IMAGE_SIZE, device=device)
print("in:", tuple(x.shape), "-> out:", tuple(block(x).shape))

# %% [markdown]
# **Prove it equals the package's block.** `tutorial_lib.checks.prove_equal` asserts the same
# parameter count; that the package block's weights load with `strict=True` (every key present,
# every shape equal); and identical outputs, not merely close (`torch.equal`), in training mode
# (batch statistics) and in eval mode (running statistics). A fresh BatchNorm is nearly the identity
# in eval mode (weight 1, bias 0, mean 0, variance 1: it only divides by `sqrt(1 + eps)`), so
# `tutorial_lib.norm.randomize_norm` first
# gives the package block's BatchNorm layers random parameters and statistics: eval mode then has
# something to get wrong.

# %% tags=["nbval-check-output"]
for inplanes, planes, stride in [(16, 16, 1), (16, 32, 2)]:
    shortcut = projection(inplanes, planes, stride) if (stride, inplanes) != (1, planes) else None
    reference = randomize_norm(BasicBlock(inplanes, planes, stride, shortcut).to(device), seed=SEED)
    inline = InlineBasicBlock(inplanes, planes, stride, projection(inplanes, planes, stride) if shortcut else None).to(device)
    x = torch.randn(4, inplanes, 16, 16, device=device)
    print(f"BasicBlock({inplanes}, {planes}, stride={stride}):", prove_equal(inline, reference, x))


# %% [markdown]
# ## 3. The shortcut when the shape changes
#
# `F(x) + x` needs both terms to have the same shape. Inside a stage they do; the first block of a
# stage doubles the channels and halves the resolution, so there the shortcut becomes a
# **projection**: a 1x1 convolution with the block's stride, followed by BatchNorm (He et al. 2016,
# eq. 2: `y = F(x) + W_s x`; option B of section 4.1 projects only where the shape changes, option
# C everywhere). The paper's CIFAR networks used option A instead (identity with zero-padded extra
# channels, no parameters, section 4.2); torchvision and this series use option B.
#
# **Exercise 1: the shortcut.** Write `shortcut(inplanes, planes, stride)`, the shortcut module of a
# block that takes `inplanes` channels to `planes` channels at `stride`. Work out from the arguments
# when the input can be added as it is (return `nn.Identity()`), and otherwise build option B as
# described above, as an `nn.Sequential`, following the block's conventions (look at how
# `InlineBasicBlock` builds its convolutions). The check compares it with
# `tutorial_lib.blocks.projection` on several shapes.

# %%
def shortcut(inplanes: int, planes: int, stride: int) -> nn.Module:
    ### BEGIN SOLUTION
    if stride == 1 and inplanes == planes:
        return nn.Identity()
    return nn.Sequential(
        nn.Conv2d(inplanes, planes, kernel_size=1, stride=stride, bias=False),
        nn.BatchNorm2d(planes),
    )
    ### END SOLUTION

print(shortcut(16, 32, 2))

# %% tags=["nbval-check-output"]
checks.check_shortcut_function(shortcut)


# %% [markdown]
# ## 4. Two networks that differ only in the addition
#
# To isolate what the shortcut does, we build the network of He et al.'s CIFAR-10 experiments
# (section 4.2): a 3x3 stem convolution, three stages of `n` basic blocks with `WIDTH`,
# `2·WIDTH` and `4·WIDTH` channels (the second and third stages start with stride 2), global
# average pooling and a linear classifier: `6n + 2` weighted layers. With `n = BLOCKS` that is 56
# layers, with `n = SHALLOW_BLOCKS` 20: the two depths of the paper's Fig. 1.
#
# The plain twin uses a `PlainBlock`: the package's `BasicBlock` with a `forward` that skips the
# addition. Everything else is shared: same modules, same `state_dict`, and, built after the same
# seed, the **same initial weights**. (The plain network keeps the two projection shortcuts as
# unused modules, so that the two state_dicts are identical; in the plain network those few weights,
# whose count is printed below, never receive a gradient.) Any difference we measure between twins comes from
# `+ identity` alone.

# %%
class PlainBlock(BasicBlock):
    # BasicBlock without its shortcut: y = relu(F(x)).
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)

        out = self.conv2(out)
        out = self.bn2(out)
        out = self.relu(out)
        return out


# %% [markdown]
# Both kinds of block go into one network skeleton, the paper's CIFAR layout: a 3×3 stem, three
# stages of `n` blocks whose width doubles as the resolution halves, global average pooling and a
# linear classifier.

# %%
class CifarNet(nn.Module):
    # He et al. 2016, section 4.2: 6n + 2 layers, three stages of n blocks.
    def __init__(self, block: type[nn.Module], n: int, width: int, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_stage(block, width, width, n, stride=1)
        self.layer2 = self._make_stage(block, width, 2 * width, n, stride=2)
        self.layer3 = self._make_stage(block, 2 * width, 4 * width, n, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(4 * width, num_classes)
        for m in self.modules():  # torchvision's initialisation (He et al. 2015, eq. 14, the fan_out form)
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @staticmethod
    def _make_stage(block, inplanes, planes, n, stride):
        downsample = projection(inplanes, planes, stride) if (stride, inplanes) != (1, planes) else None
        layers = [block(inplanes, planes, stride, downsample)]
        layers += [block(planes, planes) for _ in range(n - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)

        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)

        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        x = self.fc(x)
        return x


# %% [markdown]
# Build the twins from the same seed, and check what makes them twins: the same layer count as the
# paper's, the same parameters, the same initial weights.

# %% tags=["nbval-check-output"]
def build(block: type[nn.Module], n: int = BLOCKS) -> CifarNet:
    torch.manual_seed(SEED)  # the same seed, so twins start from the same weights
    return CifarNet(block, n, WIDTH).to(device)

plain, residual = build(PlainBlock), build(BasicBlock)
# He et al. count convolutions and the classifier, not the projection shortcuts.
weighted = [name for name, m in residual.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and "downsample" not in name]
unused = sum(p.numel() for name, p in plain.named_parameters() if "downsample" in name)
same_start = all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), residual.state_dict().values()))
print(f"weighted layers: {len(weighted)}, parameters: {count_parameters(residual):,} each "
      f"({unused:,} in the projections), same initial weights: {same_start}")

# %% [markdown]
# ## 5. Gradients at initialisation
#
# Before any training, push one batch through each network, backpropagate the loss, and measure
# the norm of the gradient that reaches every layer's weights, from the stem (layer 1) to the
# classifier (the last point). `tutorial_lib.train.gradient_norms` does this on a copy of the model,
# in training mode (BatchNorm on batch statistics, as during training), so the model itself is left
# untouched. We measure both depths and plot the deep pair. This is one seed's initial weights and
# one batch: read the large factors between rows, not the small differences.

# %%
train_data = load_dataset("multiscale-digits", "train", image_size=IMAGE_SIZE, num_samples=NUM_TRAIN, seed=SEED)
test_data = load_dataset("multiscale-digits", "test", image_size=IMAGE_SIZE, num_samples=NUM_TEST, seed=SEED)
images, labels = train_data.images[:BATCH_SIZE], train_data.labels[:BATCH_SIZE]

def layer_gradient_norms(model: nn.Module) -> list[float]:
    # Per weighted layer, stem to classifier; projections are left out, as in He et al.'s layer count.
    return [norm for name, norm in gradient_norms(model, images, labels).items() if "downsample" not in name]

norms, spread, stem_ratio = {}, {}, {}
for n in (SHALLOW_BLOCKS, BLOCKS):
    for kind, block in (("plain", PlainBlock), ("ResNet", BasicBlock)):
        name = f"{kind}-{6 * n + 2}"
        values = norms[name] = layer_gradient_norms(build(block, n))
        spread[name], stem_ratio[name] = max(values) / min(values), values[0] / values[-1]
        print(f"{name:>10}: stem {values[0]:.3g}, classifier {values[-1]:.3g}, stem / classifier = {stem_ratio[name]:,.1f}, "
              f"largest / smallest = {spread[name]:,.1f}")
deep, shallow = 6 * BLOCKS + 2, 6 * SHALLOW_BLOCKS + 2
plot_gradient_norms({name: dict(enumerate(norms[name])) for name in (f"plain-{deep}", f"ResNet-{deep}")},
                    title=f"gradient norm per layer at initialisation ({deep} layers)")
plt.show()

# %% [markdown]
# Read the plot from right (the classifier) to left (the stem), the direction the gradient travels.
# In the deep plain network the gradients do not vanish: they **explode** on the way back, growing
# block after block, so the stem receives a gradient hundreds of times larger than the classifier
# (the stem / classifier ratio printed above). Yang et al. (2019) derive this behaviour with a
# mean-field theory of wide, fully-connected BatchNorm networks without shortcuts: at initialisation
# the gradients explode exponentially with depth, and tuning the variance of the initial weights
# cannot remove the explosion. Our convolutional network lies outside their theorem, but the
# measurement has the shape it predicts. At 20 layers the same plain design stays within a range
# like the residual network's (the two 20-layer rows above): the problem appears with depth.
#
# In the residual network the norms still drift with depth, but over a far smaller range. Its
# curve has two bumps, at the first blocks of the second and third stages: there the resolution
# halves, the channels double, and the shortcut is a projection instead of the identity. Why the
# shortcut helps is cleanest in the variant He et al. studied next ("Identity Mappings", 2016b):
# when nothing follows the addition, `x_{l+1} = x_l + F(x_l)`, unrolling gives
# `x_L = x_l + Σ F(x_i)`, and the gradient at any block is the gradient at the top *plus* the
# branches' terms (their eq. 4-5): for the gradient to vanish, the branches' terms would have to
# cancel the top gradient exactly, for every sample of a mini-batch, which they call unlikely
# (2016b, section 3). That derivation holds for
# the **pre-activation** block. The block here is post-activation: its ReLU after the addition
# multiplies the gradient by 0 wherever the sum is negative, so the identity path is only open where
# the sum is positive, and eq. 5 holds only approximately. Exercise 3 builds the pre-activation
# block and measures the difference. He et al. (2016, section 4.1) checked that their BatchNorm
# plain networks did not suffer from *vanishing* gradients and concluded that the degradation is an
# optimisation difficulty; the measurement above shows what that difficulty looks like at the
# start of training.
#
# The cell below turns these sentences into checks, so a change that breaks them stops here with
# the numbers.

# %%
if deep >= 56:  # sentences about 56 layers or more
    checks.claim(stem_ratio[f"plain-{deep}"] > 100, f"the deep plain network's stem gets a gradient hundreds of times "
                 f"the classifier's; here {stem_ratio[f'plain-{deep}']:,.1f}x")
    checks.claim(spread[f"plain-{deep}"] > 10 * spread[f"ResNet-{deep}"], "the residual network's norms span a far "
                 f"smaller range; here {spread[f'ResNet-{deep}']:,.1f}x against {spread[f'plain-{deep}']:,.1f}x")
ratio = spread[f"plain-{shallow}"] / spread[f"ResNet-{shallow}"]
checks.claim(0.5 < ratio < 2, f"at {shallow} layers the plain and residual spreads are within a factor of 2; "
             f"here their ratio is {ratio:.2f}")
print(f"spread at {deep} layers: plain {spread[f'plain-{deep}']:,.1f}x, ResNet {spread[f'ResNet-{deep}']:,.1f}x; "
      f"at {shallow} layers: plain {spread[f'plain-{shallow}']:,.1f}x, ResNet {spread[f'ResNet-{shallow}']:,.1f}x")


# %% [markdown]
# ## 6. Why the residual network starts at a higher loss
#
# An untrained classifier that knows nothing should predict every class with probability 1/10, a
# cross-entropy of `ln 10`. The cell below measures, on one batch before training, the loss each
# network starts from, the spread (standard deviation) of its logits, and the standard deviation of
# the activations after each block of the last stage. This is one seed's weights and one batch:
# another batch gives another initial loss (the first steps of section 8's curves are other
# batches), so read only the large gaps below.
#
# Predict first: every BatchNorm of a fresh network outputs unit variance per channel (`γ = 1`,
# `β = 0`). In a plain network each block ends with such a BatchNorm (then a ReLU), so the scale is
# reset at every block. What happens in a residual stage, where each block *adds* its branch to what
# came before?

# %%
def block_stds(model: nn.Module) -> tuple[list[float], float, float]:
    # Std of each last-stage block's output, the initial loss and the logits' std, on the batch, in training mode.
    stds = []
    hooks = [b.register_forward_hook(lambda module, inputs, out: stds.append(out.std().item())) for b in model.layer3]
    model.train()
    with torch.no_grad():
        logits = model(to_float_images(images.to(device)))
    for hook in hooks:
        hook.remove()
    return stds, F.cross_entropy(logits, labels.to(device)).item(), logits.std().item()

start = {}
for n in (SHALLOW_BLOCKS, BLOCKS):
    for kind, block in (("plain", PlainBlock), ("ResNet", BasicBlock)):
        name = f"{kind}-{6 * n + 2}"
        stds, loss, logit_std = start[name] = block_stds(build(block, n))
        print(f"{name:>10}: initial loss {loss:.3f} (ln 10 = {math.log(10):.3f}), logit std {logit_std:.2f}, "
              f"last-stage block outputs' std {stds[0]:.2f} -> {stds[-1]:.2f}")
grow = start[f"ResNet-{deep}"][0][-1] / start[f"ResNet-{deep}"][0][0]
checks.claim(start[f"ResNet-{deep}"][1] > start[f"plain-{deep}"][1] + 0.1 and start[f"ResNet-{deep}"][1] > start[f"ResNet-{shallow}"][1],
             f"ResNet-{deep} starts at a higher loss than plain-{deep} and than ResNet-{shallow}; here "
             f"{start[f'ResNet-{deep}'][1]:.3f}, {start[f'plain-{deep}'][1]:.3f}, {start[f'ResNet-{shallow}'][1]:.3f}")
checks.claim(grow > 1.5, f"the residual stream's std grows along the deep network's last stage; here by {grow:.2f}x")


# %% [markdown]
# In the residual stage the activations' scale grows block after block: each block adds a branch
# whose last BatchNorm outputs unit variance per channel (`γ = 1`) to the stream, and variances of
# nearly independent terms add; the ReLU after the addition then removes part of the sum again (its
# negative half), so the stream's variance grows by less than one per block, but it grows with the
# number of blocks (the printed standard deviations rise from the first block of the stage to the
# last). The plain blocks reset the scale at every block. The classifier of the deep residual
# network therefore receives larger features and produces larger logits, and a random network with
# larger logits is more confident while no more often right: its loss starts above `ln 10`, and
# more so the deeper it is. The curves of section 8 start there. Section 9 removes the cause by
# making each branch add nothing at first, and the loss then starts near `ln 10` (measured there).

# %% [markdown]
# ## 7. The training loop, written out
#
# Everything that trains a model in this series goes through one function, `tutorial_lib.train.fit`.
# Its core is the loop every PyTorch training run has: **forward, loss, backward, step**. Here it is
# written out, with the settings of section 8: SGD with momentum (built by the package's
# `make_optimizer`, which decays convolution and linear weights but not BatchNorm parameters and
# biases), and a learning rate that warms up linearly and then follows a cosine (`schedule_factor`
# gives its value at each step, as a fraction of the peak). Each epoch visits the images in a new
# order, drawn from a generator seeded by `(seed, epoch)`: runs repeat exactly, and this loop and
# `fit` visit the same images in the same order.

# %%
def train_loop(model: nn.Module, data, *, epochs: int, batch_size: int, lr: float, warmup_steps: int, seed: int) -> list[float]:
    opt = make_optimizer(model, "sgd", lr=lr, weight_decay=WEIGHT_DECAY, momentum=MOMENTUM)
    total_steps = epochs * (len(data) // batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: schedule_factor("cosine", step, warmup_steps=warmup_steps, total_steps=total_steps))
    losses = []
    for epoch in range(epochs):
        model.train()  # BatchNorm on batch statistics (evaluation switches it to eval())
        for images, labels in batches(data, batch_size, device, shuffle_seed=derive_seed(seed, STREAM_SHUFFLE, epoch)):
            logits = model(images)                   # forward
            loss = F.cross_entropy(logits, labels)   # loss
            opt.zero_grad()                          # forget the previous step's gradients
            loss.backward()                          # backward: a gradient for every parameter
            opt.step()                               # step: update the weights
            sched.step()                             # the next step's learning rate
            losses.append(loss.item())
    return losses


# %% [markdown]
# **Prove that `fit` computes the same.** Train two copies of a small network (one block per stage)
# for two epochs on 512 images: one with the loop above, one with `fit` at the same settings. Every
# step's loss and every final weight must be identical, not merely close.

# %% tags=["nbval-check-output"]
small_data = load_dataset("multiscale-digits", "train", image_size=IMAGE_SIZE, num_samples=512, seed=SEED)
settings = dict(epochs=2, batch_size=BATCH_SIZE, lr=LR, warmup_steps=2, seed=SEED)
inline_model, fit_model = build(BasicBlock, 1), build(BasicBlock, 1)
inline_losses = train_loop(inline_model, small_data, **settings)
history_small = fit(fit_model, small_data, optimizer="sgd", momentum=MOMENTUM, weight_decay=WEIGHT_DECAY,
                    schedule="cosine", device=device, progress=False, **settings)
same_losses = inline_losses == history_small.step_loss
same_weights = all(torch.equal(a, b) for a, b in zip(inline_model.state_dict().values(), fit_model.state_dict().values()))
print(f"{len(inline_losses)} steps; identical losses: {same_losses}, identical weights and BatchNorm statistics: {same_weights}")
assert same_losses and same_weights

# %% [markdown]
# What `fit` adds around that loop is bookkeeping the later notebooks need, each switched on by an
# argument (`help(fit)` lists them): a check that stops at the first NaN or infinite loss, an
# optional evaluation at every epoch end (`val_data`), checkpoints and an exact resume (`out_dir`,
# `resume`), gradient clipping (`grad_clip`), augmentation, mixed precision (notebook 08) and
# training at several resolutions (notebook 07), and the per-epoch records of the `History` it
# returns.

# %% [markdown]
# ## 8. The degradation problem: plain and residual, 20 and 56 layers, one budget
#
# Now the setting of He et al.'s Fig. 1 and Fig. 6 (section 4.2), at the scale of this notebook:
# four networks, plain and residual at 20 and 56 layers, trained with the same images, the same
# order of batches, the same schedule and the same learning rate. The paper trained all its CIFAR
# networks with SGD at learning rate 0.1, momentum 0.9, weight decay 1e-4 and mini-batches of 128,
# for 64k iterations (section 4.2). Here the budget is `EPOCHS` passes over `NUM_TRAIN` images in
# steps of `BATCH_SIZE` (a small fraction of that);
# `fit`'s SGD uses Nesterov momentum and leaves BatchNorm parameters undecayed, and the rate rises
# linearly from near zero over `WARMUP_EPOCHS` before its cosine decay (the paper, too, started its
# 110-layer network at 0.01, section 4.2; no run without warm-up is shown here). The figure shows
# the training loss, on the images each network trains on; the test error is printed for
# reference.
#
# What the paper's Fig. 1 shows, the *degradation problem*, is specific: plain-56 trains (its
# training error falls for the whole run) and converges to a *higher* training error than plain-20.
# Keep that picture in mind when reading the short runs below.

# %%
histories, test_error = {}, {}
for n in (SHALLOW_BLOCKS, BLOCKS):
    for kind, block in (("plain", PlainBlock), ("ResNet", BasicBlock)):
        name = f"{kind}-{6 * n + 2}"
        model = build(block, n)
        histories[name] = fit(model, train_data, epochs=EPOCHS, batch_size=BATCH_SIZE, optimizer="sgd", lr=LR,
                              momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, schedule="cosine",
                              warmup_epochs=WARMUP_EPOCHS, channels_last=True, seed=SEED, device=device, progress=False)
        test_error[name] = 1 - evaluate(model, test_data)["accuracy"]
print(f"after {EPOCHS} epochs of {NUM_TRAIN} images (mean over the last epoch's batches, in training mode):")
for name, history in histories.items():
    print(f"{name:>10}: training loss {history.last['train_loss']:.3f}, training error {1 - history.last['train_acc']:.3f}, "
          f"test error {test_error[name]:.3f}")
smooth = 10
fig = plot_histories({name: histories[name] for name in (f"plain-{shallow}", f"plain-{deep}", f"ResNet-{shallow}", f"ResNet-{deep}")},
                     title=f"one run (seed {SEED}): same data, batches, schedule and learning rate", smooth=smooth)
ax_loss = fig.axes[0]
ax_loss.axhline(math.log(10), color="gray", linestyle=":", label="ln 10 (a uniform guess)")
ax_loss.set(ylabel="training loss (nats)", title=f"training loss (trailing mean of up to {smooth} steps)")
ax_loss.legend(fontsize="small", loc="upper right", ncol=2)  # above the curves, which stay near or below ln 10
plt.show()

# %% [markdown]
# One run is one seed. `benchmarks/degradation.py` trains the same four networks with the same
# settings over three seeds; its seed 0 has this run's settings and initial weights, but ran on one
# thread. The cell below reads its results file, first checking that the script builds exactly the
# networks above, and prints this run beside it.

# %%
root = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
sys.path.insert(0, str(root))  # the repository root, so that its benchmarks/ folder imports
from benchmarks import degradation as bench  # noqa: E402


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y.to(x.device)) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


same_networks = all(same_weights(build(block, n), bench.build(kind, 6 * n + 2, WIDTH, SEED))
                    for n in (SHALLOW_BLOCKS, BLOCKS) for kind, block in (("plain", PlainBlock), ("resnet", BasicBlock)))
print(f"the script builds the same networks, with the same initial weights: {same_networks}")
stored = json.loads((root / "benchmarks" / "results" / "degradation.json").read_text())
print(f"command: {stored['command']}\nsettings: {stored['settings']}\nmachine: {stored['machine']}")
seeds = sorted(stored["seeds"])
runs = {name: [stored["seeds"][s][name] for s in seeds] for name in stored["seeds"][seeds[0]]}
final = {name: [run["train_loss"][-1] for run in per_seed] for name, per_seed in runs.items()}
print(f"\nlast-epoch training loss (training error) for seeds {', '.join(seeds)}:")
for name, per_seed in runs.items():
    print(f"{name.replace('resnet', 'ResNet'):>10}: " + "   ".join(f"{run['train_loss'][-1]:.3f} ({run['train_error'][-1]:.3f})" for run in per_seed))
this_run = {name.lower(): history.last["train_loss"] for name, history in histories.items()}
print(f"\nthis notebook's run ({torch.get_num_threads()} threads): "
      + ", ".join(f"{name} {history.last['train_loss']:.3f}" for name, history in histories.items()))
common = [name for name in final if name in this_run]  # other parameters train other networks
if common:
    print(f"largest difference from the file's seed 0: {max(abs(this_run[name] - final[name][0]) for name in common):.3f}")


# %% [markdown]
# Same settings, same initial weights, another thread count: the sums inside the convolutions run in
# another order, round differently in the last bits, and over a few hundred steps of SGD at a high
# rate those differences grow into a different run (the largest difference is printed above). At
# this budget that alone moves results by as much as some of the comparisons below: one more reason
# to read them seed by seed, with a test, and never from one run.
#
# Read each comparison seed by seed: the cell below prints, for each pair, the difference in the
# last epoch's training loss in every seed of the file, and checks each statement the text below
# makes.

# %%
def differences(a: str, b: str) -> list[float]:
    # Last-epoch training loss of a minus that of b, per seed of the file.
    return [x - y for x, y in zip(final[a], final[b])]


def label(name: str) -> str:
    return name.replace("resnet", "ResNet")


def all_negative(values: list[float]) -> bool:
    return all(v < 0 for v in values)


def paired_p(diff: list[float]) -> float:
    # Two-sided p of the paired t-test: is the mean difference over seeds zero? (t with n - 1 df)
    from scipy import stats

    return float(stats.ttest_1samp(diff, 0.0).pvalue)


paired = {}
for a, b in (("resnet-20", "plain-20"), ("resnet-56", "plain-56"), ("plain-56", "plain-20"), ("resnet-56", "resnet-20")):
    diff = differences(a, b)
    paired[(a, b)] = paired_p(diff)
    print(f"{label(a):>10} minus {label(b):<10}: " + ", ".join(f"{v:+.3f}" for v in diff)
          + f"   ({label(a)} higher in {sum(v > 0 for v in diff)} of {len(diff)} seeds; paired t-test p = {paired[(a, b)]:.3f})")
# What the plain network loses from depth beyond what the residual one loses (He et al.'s degradation).
extra = [p - r for p, r in zip(differences("plain-56", "plain-20"), differences("resnet-56", "resnet-20"))]
print("(plain-56 - plain-20) - (ResNet-56 - ResNet-20): " + ", ".join(f"{v:+.3f}" for v in extra)
      + f"   (positive in {sum(v > 0 for v in extra)} of {len(extra)} seeds)")
guess = math.log(10)  # the loss of a uniform guess over the 10 classes
stuck = sum(v > guess - 0.01 for v in final["plain-56"])
print(f"plain-56 ends within 0.01 of ln 10 = {guess:.3f} in {stuck} of {len(seeds)} seeds; "
      f"its lowest last-epoch loss is {min(final['plain-56']):.3f}")
print(f"sign test: {len(seeds)} of {len(seeds)} seeds agreeing has a two-sided p of {2 * 0.5 ** len(seeds):.2f}")

# %% [markdown]
# The statements the text below makes, each checked against those numbers (and against this
# notebook's own run):

# %%
checks.claim(all_negative(differences("resnet-20", "plain-20")) and all_negative(differences("resnet-56", "plain-56")),
             "the ResNet ends below its plain twin at both depths in every seed of the file")
checks.claim(paired[("resnet-56", "plain-56")] < 0.05, "at 56 layers the ResNet's advantage passes the paired t-test")
checks.claim(paired[("resnet-56", "resnet-20")] > 0.05, "the depth order of the two ResNets does not pass the paired t-test")
checks.claim(stuck >= 1, f"in some seeds plain-56 has not left the loss of a guess at all; here {stuck}")
checks.claim(not all(v > 0 for v in extra) and not all_negative(extra),
             f"plain's extra depth penalty changes sign between seeds; here {extra}")
live = {name: history.last["train_loss"] for name, history in histories.items()}
checks.claim(live[f"ResNet-{shallow}"] < live[f"plain-{shallow}"] and live[f"ResNet-{deep}"] < live[f"plain-{deep}"],
             "this run, too, has the ResNet below its plain twin at both depths; here "
             + ", ".join(f"{name} {value:.3f}" for name, value in live.items()))

# %% [markdown]
# **What the runs show.** Two things hold in every seed of the file, and a third is not settled:
#
# - **The residual networks train faster.** With the same data, steps and learning rate, the ResNet
#   ends the budget below its plain twin at 20 layers and at 56 (this run agrees), although the
#   deep one started from the higher loss (section 6). At 56 layers the gap is large against its
#   spread: the paired t-test's p is printed beside it. Three seeds agreeing in sign is not enough
#   alone: the sign test's p is printed last.
# - **Plain-56 barely starts.** Its loss has hardly left that of a uniform guess, `ln 10`, and in
#   some seeds it has not left it at all (the count above): in this budget the deep plain network
#   fails to start. Whether the learning rate is to blame is measured below.
# - **Whether depth pays among the ResNets is not settled here.** In the file's seeds ResNet-56 ended
#   above ResNet-20, but that difference does not pass the paired t-test (printed), and this
#   notebook's own run, with another thread count, may order them either way (compare its numbers
#   above). In the paper's full runs ResNet-56 ends *below* ResNet-20 (Fig. 6).
#
# What the runs do **not** show is the degradation problem of He et al.'s Fig. 1. There, plain-56
# trains for 64k iterations and converges to a higher training error than plain-20 (section 4.2).
# Here, plain-56 mostly does not train, and the part of the depth penalty that is specific to plain
# networks (the last difference printed above: what plain loses from depth beyond what ResNet
# loses) changes sign between seeds. Three seeds could not settle it anyway: even 3 of 3 agreeing
# signs has the sign-test p printed above. Seeing degradation as the paper defines it needs runs
# long enough for plain-56 to converge: `benchmarks/degradation.py` takes `--epochs`,
# `--num-train` and `--width`, a job for a GPU.

# %% [markdown]
# **Fails to start because of the rate, or at any rate?** A network that ends at `ln 10` has learned
# nothing. One suspect is the learning rate: its stem receives hundreds of times the classifier's
# gradient (section 5), and one rate serves all its layers. A cheap measurement tests it: train
# plain-56 alone, with the same seeds, data and budget, at a tenth of the peak rate (the rate He et
# al. started ResNet-110 at, section 4.2). The cell reads the file `benchmarks/degradation.py`
# wrote and prints plain-56's training loss per epoch at both rates.

# %%
low = json.loads((root / "benchmarks" / "results" / "degradation_lr.json").read_text())
print(f"command: {low['command']}\nsettings: {low['settings']}")
assert {k: v for k, v in low["settings"].items() if k != "lr"} == {k: v for k, v in stored["settings"].items() if k != "lr"}
low_seeds = sorted(low["seeds"])
rates = {stored["settings"]["lr"]: [stored["seeds"][s]["plain-56"] for s in low_seeds],
         low["settings"]["lr"]: [low["seeds"][s]["plain-56"] for s in low_seeds]}
print(f"\nplain-56, training loss per epoch (seeds {', '.join(low_seeds)}):")
for lr, per_seed in rates.items():
    print(f"  peak rate {lr:<5}: " + "   ".join(" -> ".join(f"{v:.3f}" for v in run["train_loss"]) for run in per_seed))
high_final, low_final = ([run["train_loss"][-1] for run in per_seed] for per_seed in rates.values())
checks.claim(all(v > guess - 0.05 for v in low_final),
             f"at the lower rate, too, plain-56 ends within 0.05 of ln 10 in every seed; here {low_final}")
checks.claim(all(lo > hi - 0.01 for lo, hi in zip(low_final, high_final)),
             f"the lower rate ends no lower than the higher one in any seed; here {low_final} against {high_final}")


# %% [markdown]
# A tenth of the rate does not let plain-56 start either: in every seed it ends within 0.05 of
# `ln 10`, and no lower than at the full rate (to within 0.01). So at this budget a lower rate alone
# does not rescue it; with one other rate tried, this does not rule out every rate. Two explanations remain, and this budget cannot tell them apart: plain-56 may need
# more steps to leave the plateau (He et al.'s does train, over 64k iterations, section 4.2), or
# at this depth, width and data it may not train at any rate (the untrainability Yang et al. 2019
# describe). A longer run answers that, and only then can the question of Fig. 1 be asked: does
# plain-56, once it trains, converge above plain-20? That stays open here.

# %% [markdown]
# ## 9. Starting every block as the identity
#
# If the shortcut makes "do nothing" easy to learn, why not *start* there? Goyal et al. (2017,
# "Accurate, Large Minibatch SGD", section 5.1) set one parameter tensor of every residual block to
# zero at initialisation, so that the residual branch outputs exactly zero. Each block with an
# identity shortcut then passes its (non-negative, post-ReLU) input through unchanged (the two
# blocks with a projection pass on the projection of their input), and the untrained network
# behaves like a much shallower one. torchvision exposes this as `zero_init_residual=True`, and so
# does `tutorial_lib.models`.
#
# **Exercise 2: zero-init the residual branch.** Which one tensor of a `BasicBlock`, set to zero,
# makes the branch output exactly zero *whatever the convolutions compute*, in training mode and in
# eval mode, while leaving every other parameter as initialised? Work it out from the layers of the
# branch (section 2), then write `zero_init_last_bn(block)` that makes that change in place. (Not a
# convolution's weights: the answer must work whatever the convolutions compute.)

# %%
def zero_init_last_bn(block: BasicBlock) -> None:
    ### BEGIN SOLUTION
    nn.init.zeros_(block.bn2.weight)
    ### END SOLUTION


# %% tags=["nbval-check-output"]
checks.check_zero_init_function(zero_init_last_bn)

# %% [markdown]
# Apply it to every block of a fresh copy of the deep residual network, then measure what section 6
# measured (the loss it starts from) and the gradients again:

# %%
zero_init = build(BasicBlock)
for m in zero_init.modules():
    if isinstance(m, BasicBlock):
        zero_init_last_bn(m)
zero_stds, zero_loss, zero_logit_std = block_stds(zero_init)
print(f"zero-init ResNet-{deep}: initial loss {zero_loss:.3f} (ResNet-{deep}: {start[f'ResNet-{deep}'][1]:.3f}, "
      f"ln 10 = {math.log(10):.3f}), last-stage block outputs' std {zero_stds[0]:.2f} -> {zero_stds[-1]:.2f}")
checks.claim(zero_stds[-1] < 1.1 * zero_stds[0], f"with zero-init the stream no longer grows along the stage; "
             f"here {zero_stds[0]:.2f} -> {zero_stds[-1]:.2f}")
checks.claim(abs(zero_loss - math.log(10)) < abs(start[f"ResNet-{deep}"][1] - math.log(10)),
             f"zero-init starts nearer ln 10 than the standard init; here {zero_loss:.3f} against {start[f'ResNet-{deep}'][1]:.3f}")
zero_norms = gradient_norms(zero_init, images, labels)
learning = [name for name, norm in zero_norms.items() if norm > 0.0]
print(f"{len(zero_norms) - len(learning)} of {len(zero_norms)} conv/linear layers get exactly zero gradient")
print("the others:", learning)
probe = copy.deepcopy(zero_init).train()  # a copy: this forward pass updates BatchNorm statistics
F.cross_entropy(probe(to_float_images(images.to(device))), labels.to(device)).backward()
last_bns = [m.bn2 for m in probe.modules() if isinstance(m, BasicBlock)]
moving = sum(bool(bn.weight.grad.abs().sum() > 0) for bn in last_bns)
print(f"the last BatchNorm's gamma gets a non-zero gradient in {moving} of {len(last_bns)} blocks")


# %% [markdown]
# The stream no longer grows along the stage, and the loss starts nearer `ln 10`: the cause named in
# section 6 is gone. Every convolution inside a residual branch gets **exactly zero** gradient at the
# first step: its output is multiplied by `γ = 0` on the way out, so its gradient is multiplied by
# zero on the way back. What learns first is the path the shortcuts leave (the stem, the two
# projections, the classifier) and, in each block, the last BatchNorm's `γ` and `β`: the last line
# counts the blocks whose `γ` gets a non-zero gradient. As soon as the `γ`s leave zero, the branches start learning too. At initialisation
# the network is effectively four weighted layers deep (the stem, the two projections and the
# classifier); it grows into its depth as it trains.
# Notebook 05 measures what this initialisation changes in training.

# %% [markdown]
# ## 10. Exercise 3: the pre-activation block
#
# In "Identity Mappings in Deep Residual Networks" (2016b, Fig. 1b and Fig. 4e), He et al. move
# BatchNorm and ReLU *before* each convolution and leave nothing after the addition, so that the
# identity path is a pure sum and their eq. 5 holds exactly between any two blocks of a stage. At
# the two stage entries the shortcut here is the series' projection (1x1 convolution and
# BatchNorm), which rescales the stream; many pre-activation implementations use a bare 1x1
# convolution there. One more simplification: our stem ends with BN and ReLU and the first block
# applies BN and ReLU again, where He et al. let the first block share the stem's activation
# (2016b, appendix).
#
# **Build it.** Write `PreActBlock(inplanes, planes, stride=1, downsample=None)`, a drop-in for
# `BasicBlock` in `CifarNet`. Derive its `forward` from the two rules above rather than from
# `BasicBlock`'s: every convolution is *preceded* by its normalisation and activation, and nothing
# touches the sum. Name the layers `bn1`, `conv1` (3x3, the block's stride), `bn2`, `conv2` (3x3),
# convolutions without bias, so the check can inspect them; which tensor each BatchNorm normalises,
# and so how many channels it has, follows from the rules. When `downsample` is given, apply it to
# the block's pre-activated input (the check also accepts `downsample(x)`, the choice some
# implementations make).
#
# **Predict, then measure.** Before running the measurement cell, write down your answer: at 56 and
# at 110 layers, will the pre-activation network's gradient norms span a smaller or a larger range
# (largest / smallest, as in section 5) than the post-activation network's, and will either come
# near the plain network's?

# %%
class PreActBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        ### BEGIN SOLUTION
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.relu = nn.ReLU(inplace=False)
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, padding=1, bias=False)
        self.downsample = downsample
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        out = self.bn1(x)
        out = self.relu(out)
        identity = x if self.downsample is None else self.downsample(out)

        out = self.conv1(out)
        out = self.bn2(out)
        out = self.relu(out)
        out = self.conv2(out)

        return out + identity   # a pure sum: nothing after the addition
        ### END SOLUTION


# %% tags=["nbval-check-output"]
checks.check_preact_block(PreActBlock)


# %% [markdown]
# The measurement: gradient norms at initialisation on the same batch as section 5, for plain,
# post-activation and pre-activation networks of 20, 56 and 110 layers (`SHALLOW_BLOCKS`, `BLOCKS`
# and twice `BLOCKS` blocks per stage), built after the same seed. A pre-activation
# network ends with no BatchNorm and ReLU after its last block, so He et al. (2016b) add one before
# the pooling; the cell appends it to `layer3`.

# %%
def preact_net(n: int) -> CifarNet:
    model = build(PreActBlock, n)
    model.layer3.append(nn.BatchNorm2d(4 * WIDTH).to(device))
    model.layer3.append(nn.ReLU())
    return model

variants = {"plain": lambda n: build(PlainBlock, n), "post-activation": lambda n: build(BasicBlock, n), "pre-activation": preact_net}
measured, stage_blocks = {}, (SHALLOW_BLOCKS, BLOCKS, 2 * BLOCKS)
print(f"{'largest / smallest gradient norm':<34}" + "".join(f"{6 * n + 2:>12} layers" for n in stage_blocks))
for name, make in variants.items():
    measured[name] = [max(v) / min(v) for v in (layer_gradient_norms(make(n)) for n in stage_blocks)]
    print(f"{name:<34}" + "".join(f"{value:>19,.1f}" for value in measured[name]))
print(f"{'post- / pre-activation':<34}" + "".join(f"{post / pre:>19,.2f}" for post, pre in
                                                   zip(measured["post-activation"], measured["pre-activation"])))
checks.claim(all(measured["pre-activation"][i] < measured["post-activation"][i] for i in (1, 2)),
             "at 56 and 110 layers the pre-activation spread is below the post-activation one; here "
             f"{measured['pre-activation'][1:]} against {measured['post-activation'][1:]}")
checks.claim(all(10 * measured["post-activation"][i] < measured["plain"][i] for i in (1, 2)),
             "at 56 and 110 layers both residual variants stay far below the plain network's spread")

# %% [markdown]
# Both residual variants keep the spread far below the plain network's (at least tenfold, checked
# above), which explodes with depth. In this measurement the pre-activation block's spread is also
# the smaller of the two at 56 and 110 layers (checked above; the last row gives the factor). Read
# that difference with care: it is one seed's weights and one batch, and a factor of that size is
# the kind another seed could change; nothing here ranks the two designs in general. Nor does the
# measurement isolate *why*: the pure sum (eq. 5) is one difference, the post-activation block's
# ReLU after the addition (which closes the identity path wherever the sum is negative) another,
# but the two designs also place their BatchNorms differently, and a weight's gradient norm depends
# on the BatchNorm that follows it. Neither keeps the norms constant: the branches' terms still add
# up with depth. What matters in the end is training, and there He et al. (2016b, Table 2) report
# lower CIFAR-10 test errors for pre-activation ResNet-110 and ResNet-164 than for the original
# post-activation design.

# %% [markdown]
# ## Summary
#
# - A basic block is two 3x3 convolutions with BatchNorm, a ReLU between them, the input added
#   back, and a ReLU after the addition: `y = relu(F(x) + x)`. Built inline, it loads the package's
#   weights strictly and gives identical outputs.
# - Where a block changes shape, the shortcut is a projection: a strided 1x1 convolution and
#   BatchNorm (option B of He et al. 2016).
# - Measured at initialisation, a deep plain BatchNorm network's gradients explode towards the
#   input; the residual twin, with the same weights, keeps them within a much narrower range. At 20
#   layers the two are alike.
# - A residual stage adds a unit-variance branch per block, so the untrained deep ResNet's features
#   and logits are larger and its loss starts above `ln 10`; zero-initialising the last BatchNorm
#   scale (`zero_init_residual`) removes that and makes every identity block start as the identity.
# - Over three seeds of a short budget, the residual network trained faster than its plain twin at
#   20 and at 56 layers; plain-56 barely left the loss of a guess at learning rate 0.1 (in some
#   seeds not at all), and at a tenth of that rate it did no better; whether ResNet-56 or ResNet-20
#   ends lower was not settled at this budget, and one run's answer moved with the thread count.
# - The degradation problem of He et al. (2016, Fig. 1) is different: a deeper plain network that
#   *trains*, yet converges to a higher *training* error than a shallower one. Seeing it needs runs
#   long enough to converge; this notebook's budget cannot show it.
# - A training step is forward, loss, zero_grad, backward, step (and a schedule step); `fit` runs
#   exactly that loop, bit for bit, plus bookkeeping.
# - He et al. 2016b's eq. 5 (the gradient reaches every block through a pure sum) holds for the
#   pre-activation block within a stage. On one seed and one batch its gradient norms spanned a
#   smaller range than the post-activation block's; that ranks nothing: He et al. (2016b, Table 2)
#   compare the designs by training them.
#
# ## Quiz
#
# 1. In He et al.'s Fig. 1, a 56-layer plain network converges to a higher *training* error than a
#    20-layer one. Why does that rule out overfitting as the explanation, and why does it show an
#    optimisation problem rather than a lack of capacity?
# 2. Why does the plain twin keep its two unused projection shortcuts?
# 3. Why do the block's convolutions have `bias=False`?
# 4. Why does the training loop seed each epoch's shuffling generator from `(seed, epoch)` rather
#    than draw from torch's global generator?
# 5. Where in the training loop would gradient clipping act, and which argument of `fit` turns it on?
# 6. Why does the untrained ResNet-56 start from a higher loss than the untrained plain-56?
# 7. A deep plain network ends a short run at `ln 10`. Name two explanations other than the
#    degradation problem, and a cheap run that tells one of them apart.
#
# <details>
# <summary>Answers</summary>
#
# 1. Overfitting shows as a low training loss with a high test loss. There the deeper plain network
#    fails to fit the very data it trains on. It cannot be capacity: the 56-layer network could
#    copy the 20-layer one by making its extra layers identities, so a solution at least as good
#    exists; the optimiser does not find it (He et al. 2016, section 1 and Fig. 1).
# 2. So that both networks have exactly the same modules and `state_dict`: built after the same
#    seed they start from the same weights, and the comparison isolates the addition.
# 3. Each is followed by a BatchNorm, which subtracts the per-channel mean (removing any constant
#    bias) and then adds its own learned shift `β`. A bias would be a parameter with no effect.
# 4. So that a run is repeatable and a run resumed at epoch `e` sees exactly the batches an
#    uninterrupted run would, whatever else consumed random numbers in between (that is why the
#    inline loop and `fit` saw the same batches). `fit` seeds augmentation from its own stream, so
#    turning it on leaves the shuffling unchanged.
# 5. Between `loss.backward()` and `opt.step()`: `fit(..., grad_clip=1.0)` rescales the gradients
#    so that their global norm is at most 1.0.
# 6. Each residual block adds its branch, whose last BatchNorm outputs unit variance, to the stream:
#    the variance grows with the number of blocks, the logits get larger, and a random network with
#    large logits is confidently wrong. The plain network's BatchNorms reset the scale at every
#    block. With `γ = 0` in every block's last BatchNorm (section 9) the branches add nothing at
#    first.
# 7. It failed to start (the learning rate is too high for its exploding gradients, section 5), or
#    the budget is too short for it to get going; degradation needs a network that trains and ends
#    worse. Training the same network at a lower learning rate (section 8) separates the first;
#    a longer run the second.
#
# </details>
#
# ## Further reading
#
# - K. He, X. Zhang, S. Ren, J. Sun. *Deep Residual Learning for Image Recognition.* CVPR 2016.
#   Fig. 1 (20- versus 56-layer plain networks on CIFAR-10), eq. 1-2 and section 3.3 (shortcuts),
#   section 4.1 (shortcut options A, B, C), section 4.2, Fig. 6 and Table 6 (plain versus residual
#   networks of 20 to 110 layers on CIFAR-10; ResNet-110 reaches 6.43% test error in its best of 5
#   runs, 6.61 ± 0.16% on average).
# - K. He, X. Zhang, S. Ren, J. Sun. *Identity Mappings in Deep Residual Networks.* ECCV 2016.
#   Eq. 4-5: why the gradient reaches every pre-activation block through the identity path; Fig. 4
#   and Table 2-3: where to put BatchNorm and ReLU.
# - G. Yang, J. Pennington, V. Rao, J. Sohl-Dickstein, S. S. Schoenholz. *A Mean Field Theory of
#   Batch Normalization.* ICLR 2019. Gradient explosion at initialisation in deep, wide,
#   fully-connected BatchNorm networks without shortcuts.
# - D. Balduzzi et al. *The Shattered Gradients Problem: If resnets are the answer, then what is the
#   question?* ICML 2017.
# - P. Goyal et al. *Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour.* 2017. Section
#   5.1: zero-initialised `γ` in the last BatchNorm of each residual block.
