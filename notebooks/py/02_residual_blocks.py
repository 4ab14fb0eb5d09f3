# %% [markdown]
# # 02 · Residual blocks: why a shortcut lets a network go deep
#
# Stacking more layers should never make a network *worse* at fitting its training data: the extra
# layers could, in principle, learn the identity and leave the shallower network's answer alone.
# In practice, deep plain networks do get worse, on the training set itself. He et al. (2016)
# called this the *degradation problem* and fixed it with one line of code: each block adds its
# input to its output, `y = F(x) + x`. This notebook builds that block, proves it equals the one
# `tutorial_lib` (and torchvision) uses, and then **measures** what the addition changes on our
# `multiscale-digits` data: the gradients a deep network receives at initialisation, and how fast
# it trains. Along the way you run `fit`, the training loop the rest of the series uses, and read
# it line by line.
#
# **Learning objectives.** After this notebook you can
#
# 1. build a `BasicBlock` from convolutions, BatchNorm and ReLU, and prove it equals a reference implementation;
# 2. say when a block needs a projection shortcut, and build one;
# 3. measure per-layer gradient norms at initialisation and read what they say about a deep network;
# 4. compare a plain network with its residual twin under the same budget, and explain the degradation problem;
# 5. read `tutorial_lib.train.fit` and name each step of a training iteration.
#
# **Prerequisites.** Notebook 00 (setup, the dataset) and notebook 01 (convolutions, output sizes).
#
# **Run time:** about 4 min with the defaults, measured on the machine the README's syllabus describes (2 cores, no GPU).
# Two short training runs take most of it.
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

# %%
import inspect

import matplotlib.pyplot as plt
import torch
from torch import nn

from tutorial_lib import checks
from tutorial_lib.blocks import BasicBlock, projection
from tutorial_lib.checks import prove_equal
from tutorial_lib.cost import count_parameters
from tutorial_lib.data import load_dataset
from tutorial_lib.env import choose_device, seed_everything
from tutorial_lib.norm import randomize_norm
from tutorial_lib.train import evaluate, fit, gradient_norms
from tutorial_lib.viz import plot_gradient_norms, plot_histories

# %% [markdown]
# ## Parameters
#
# The defaults train two 56-layer networks for a few epochs on 4,096 images at 32 px: most of the
# notebook's run time. On a GPU (`DEVICE = "cuda"`), use the whole training split
# and train longer to see the full curves: `NUM_TRAIN = 16000`, `EPOCHS = 15`, `WIDTH = 16` (He et
# al.'s CIFAR width), and try `BLOCKS = 18` (He et al.'s ResNet-110, 2016, section 4.2).

# %% tags=["parameters"]
SEED = 0           # one integer drives every random generator
DEVICE = None      # None: automatic (cuda > mps > cpu), or "cpu", "cuda", "mps"
IMAGE_SIZE = 32    # multiscale-digits image side in pixels (32-256)
NUM_TRAIN = 4096   # training images (the split has 16,000)
NUM_TEST = 1000    # images of the in-distribution test split
WIDTH = 8          # channels of the first stage; stages have WIDTH, 2*WIDTH, 4*WIDTH
BLOCKS = 9         # blocks per stage: depth is 6 * BLOCKS + 2 (9 gives 56 layers)
EPOCHS = 5         # passes over the training images, for each network
BATCH_SIZE = 64    # images per optimizer step
LR = 2e-3          # peak learning rate (AdamW, one-cycle schedule)

# %%
seed_everything(SEED)
device = choose_device(DEVICE)
print(f"device: {device}, depth: {6 * BLOCKS + 2} layers")


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
# If the best thing a block can do is nothing, a residual block only has to push its weights
# towards zero, whereas a plain block has to make two convolutions, two BatchNorms and two ReLUs
# reproduce their input exactly. The basic block of ResNet-18 and -34 (Fig. 2 and Fig. 5 left of
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
# (batch statistics) and in eval mode (running statistics). A fresh BatchNorm is the identity in
# eval mode (weight 1, bias 0, mean 0, variance 1), so `tutorial_lib.norm.randomize_norm` first
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
# section 3.3, option B, eq. 2: `y = F(x) + W_s x`). The paper's CIFAR networks used option A
# instead (identity with zero-padded extra channels, no parameters); torchvision and this series use
# option B everywhere.
#
# **Exercise 1: the shortcut.** Write `shortcut(inplanes, planes, stride)` that returns
# `nn.Identity()` when the block keeps its shape, and otherwise an `nn.Sequential` of a bias-free
# 1x1 convolution with the block's stride and a `BatchNorm2d`. The check compares it with
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
# (section 4.2): a 3x3 stem convolution, three stages of `BLOCKS` basic blocks with `WIDTH`,
# `2·WIDTH` and `4·WIDTH` channels (the second and third stages start with stride 2), global
# average pooling and a linear classifier: `6·BLOCKS + 2` weighted layers, 56 with the defaults
# (the depth of the paper's Fig. 1).
#
# The plain twin uses a `PlainBlock`: the package's `BasicBlock` with a `forward` that skips the
# addition. Everything else is shared: same modules, same `state_dict`, and, built after the same
# seed, the **same initial weights**. (The plain network keeps the two projection shortcuts as
# unused modules, so that the two state_dicts are identical; in the plain network those few weights,
# printed below, never receive a gradient.) Any difference we measure below comes from `+ identity` alone.

# %% tags=["nbval-check-output"]
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


class CifarNet(nn.Module):
    # He et al. 2016, section 4.2: 6n + 2 layers, three stages of n blocks.
    def __init__(self, block: type[BasicBlock], n: int, width: int, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_stage(block, width, width, n, stride=1)
        self.layer2 = self._make_stage(block, width, 2 * width, n, stride=2)
        self.layer3 = self._make_stage(block, 2 * width, 4 * width, n, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(4 * width, num_classes)
        for m in self.modules():  # torchvision's initialisation (He et al. 2015, eq. 10)
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


def build(block: type[BasicBlock]) -> CifarNet:
    torch.manual_seed(SEED)  # the same seed, so both networks start from the same weights
    return CifarNet(block, BLOCKS, WIDTH).to(device)

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
# untouched.

# %%
train_data = load_dataset("multiscale-digits", "train", image_size=IMAGE_SIZE, num_samples=NUM_TRAIN, seed=SEED)
test_data = load_dataset("multiscale-digits", "test", image_size=IMAGE_SIZE, num_samples=NUM_TEST, seed=SEED)
images, labels = train_data.images[:BATCH_SIZE], train_data.labels[:BATCH_SIZE]

def layer_gradient_norms(model: nn.Module) -> dict[str, float]:
    # Per weighted layer, in forward order; projections are left out, as in He et al.'s layer count.
    return {name: norm for name, norm in gradient_norms(model, images, labels).items() if "downsample" not in name}

norms = {"plain": layer_gradient_norms(plain), "residual": layer_gradient_norms(residual)}
spread = {}
for name, layer_norms in norms.items():
    values = list(layer_norms.values())
    spread[name] = max(values) / min(values)
    print(f"{name:>8}: stem {values[0]:.3g}, classifier {values[-1]:.3g}, largest / smallest = {spread[name]:,.0f}")
plot_gradient_norms(norms, title=f"gradient norm per layer at initialisation ({6 * BLOCKS + 2} layers)")
plt.show()

# %% [markdown]
# Read the plot from right (the classifier) to left (the stem), the direction the gradient travels.
# In the plain network the gradients do not vanish: they **explode** on the way back, growing
# block after block, so the stem receives a gradient hundreds of times larger than the classifier
# (the ratio printed above; set `BLOCKS = 18` for the 110-layer network and watch it grow). Yang et al. (2019)
# prove that this is what BatchNorm does to a deep network without shortcuts at initialisation: the
# explosion grows exponentially with depth, and no choice of initial weights removes it. One
# learning rate cannot suit layers whose gradients differ by orders of magnitude.
#
# In the residual network every block adds its branch to an identity path, so the gradient at any
# block contains the gradient of the block above it unchanged, plus the branch's contribution (He et
# al. 2016b, eq. 5). The norms still drift with depth, but over a far smaller range. He et al. (2016,
# section 4.1) checked that their BatchNorm plain networks did not suffer from *vanishing*
# gradients and concluded that the degradation is an optimisation difficulty; the measurement above
# shows what that difficulty looks like at the start of training.
#
# The cell below turns the two claims into checks (for 56 layers or more), so a change that breaks
# them fails loudly. Try `BLOCKS = 3` (20 layers) in the parameters cell: the plain network's
# gradients then stay within a range much like the residual network's, which is why the problem
# only appears with depth.

# %%
values = {name: list(layer_norms.values()) for name, layer_norms in norms.items()}
if 6 * BLOCKS + 2 >= 56:  # claims about deep networks; with BLOCKS = 3 (20 layers) the two differ far less
    assert values["plain"][0] > 10 * values["plain"][-1], "the plain network's stem gets a much larger gradient"
    assert spread["plain"] > 10 * spread["residual"], "the residual network's norms span a far smaller range"
print(f"spread of gradient norms: plain {spread['plain']:,.0f}x, residual {spread['residual']:,.0f}x")

# %% [markdown]
# ## 6. Read the training loop
#
# Everything that trains a model in this series goes through one function,
# `tutorial_lib.train.fit`. It is short enough to read in one screen, so read it before you trust
# it:

# %%
source = inspect.getsource(fit)
signature, _, rest = source.partition('    """')  # cut out the long docstring (read it with help(fit))
print(signature + rest.partition('"""\n')[2])

# %% [markdown]
# In order:
#
# 1. **Check the inputs, then freeze the settings.** The model and the datasets are checked, and
#    the keyword settings become a `FitConfig`, a frozen dataclass that rejects bad values before
#    any work (a negative learning rate, an unknown optimizer name: the message suggests the valid
#    ones). The same `FitConfig` is what recipes, the command line and every checkpoint hold.
# 2. **Optimizer and schedule.** AdamW by default (SGD with Nesterov momentum on request), with
#    weight decay on convolution and linear weights only (`make_optimizer` builds it from
#    `param_groups`). The learning rate follows a one-cycle schedule, updated after every batch
#    (`_make_scheduler` wraps `schedule_factor`; both are in `tutorial_lib/train.py`, under `fit`).
# 3. **Resume, or seed.** With `resume=True`, model, optimizer, scheduler, random state and history
#    come back from `out_dir/checkpoint.pt`. Shuffling and augmentation draw from generators seeded
#    by `(seed, stream, epoch)` and `(seed, stream, epoch, step)` (`derive_seed`, one stream per
#    source of randomness), never from hidden global state; that is what makes
#    a resumed run end with exactly the weights of an uninterrupted one (a test checks it bit for bit).
# 4. **`model.train()` at the start of every epoch**, because validation switches the model to
#    `eval()` in between (BatchNorm must use batch statistics while training and running
#    statistics while evaluating).
# 5. **The five lines every PyTorch training step has:** forward (`logits = model(images)`), loss,
#    `opt.zero_grad()`, `loss.backward()`, `opt.step()`; then `sched.step()`. Optional gradient
#    clipping sits between backward and step. Forward and loss run inside `torch.autocast`, which
#    does nothing unless `precision="bf16"` (or `"auto"` on hardware with native bfloat16) asks for
#    mixed precision: convolutions in bfloat16, weights and optimizer state still in float32.
#    Before the forward pass, a batch is resized to the step's training resolution (`train_sizes`,
#    notebook 07) and then augmented at that resolution.
# 6. **`loss.item()` once per step** copies the loss to Python: it feeds the running mean on the
#    progress bar and the NaN check. A NaN or infinite loss stops training at once with a message
#    saying what to try, instead of an hour of training a broken model.
# 7. **At each epoch end:** a record (loss, accuracy, learning rate, seconds), validation, and an
#    atomic checkpoint (`_save_checkpoint` writes a temporary file, then renames it, so a crash
#    never leaves half a file).
# 8. **Ctrl-C** (in Jupyter: the stop button) is caught: `fit` returns the history marked
#    `interrupted`, the last complete checkpoint stays on disk, and the model keeps its mid-epoch
#    weights. `finally` restores the model's previous train/eval mode.

# %% [markdown]
# ## 7. The first `fit` run: the residual network
#
# `val_data` is evaluated at the end of every epoch (in eval mode, and not counted in the epoch's
# `seconds`). `channels_last=True` stores weights and batches as NHWC, which makes oneDNN's CPU
# convolutions several times faster for these narrow networks.

# %%
history_residual = fit(residual, train_data, epochs=EPOCHS, batch_size=BATCH_SIZE, lr=LR, val_data=test_data,
                       channels_last=True, seed=SEED, device=device)
print(history_residual)
history_residual.plot(title=f"ResNet-{6 * BLOCKS + 2} on multiscale-digits")
plt.show()

# %% [markdown]
# ## 8. The plain twin, same budget
#
# Same data, same order of batches (the shuffling depends only on `seed` and the epoch), same
# schedule, same initial weights; only the addition is missing.

# %%
history_plain = fit(plain, train_data, epochs=EPOCHS, batch_size=BATCH_SIZE, lr=LR, val_data=test_data,
                    channels_last=True, seed=SEED, device=device)
print(history_plain)
plot_histories({f"plain-{6 * BLOCKS + 2}": history_plain, f"ResNet-{6 * BLOCKS + 2}": history_residual})
plt.show()

# %%
results = {"plain": (history_plain, evaluate(plain, test_data)), "residual": (history_residual, evaluate(residual, test_data))}
for name, (history, test) in results.items():
    print(f"{name:>8}: final training loss {history.last['train_loss']:.3f}, "
          f"training accuracy {history.last['train_acc']:.3f}, test accuracy {test['accuracy']:.3f}")
if NUM_TRAIN * EPOCHS >= 4096:  # a budget of a few steps (the re-run test's) is too short to compare
    assert history_residual.last["train_loss"] < history_plain.last["train_loss"]


# %% [markdown]
# Both networks started from the same weights and saw the same batches in the same order; the
# only difference is the addition. The residual network's training loss falls faster and ends lower
# (the `assert` above checks it), and its test accuracy follows. The plain network is worse *on its
# own training data*: that is the degradation problem (He et al. 2016, Fig. 1), an optimisation
# difficulty, not overfitting. With this short budget neither network has converged; in the
# paper's full CIFAR-10 runs the gap stays to the end, and grows with depth: plain-56 ends with a
# higher training error than plain-20, while ResNet-56 ends below ResNet-20 (Fig. 6).

# %% [markdown]
# ## 9. Starting every block as the identity
#
# If the shortcut makes "do nothing" easy to learn, why not *start* there? Goyal et al. (2017,
# "Accurate, Large Minibatch SGD", section 5.1) initialise the scale `γ` of the last BatchNorm of
# every residual block to zero. The residual branch then outputs exactly zero, each block passes
# its (non-negative, post-ReLU) input through unchanged, and the untrained network behaves like a
# much shallower one. torchvision exposes this as `zero_init_residual=True`, and so does
# `tutorial_lib.models`.
#
# **Exercise 2: zero-init the residual branch.** Write `zero_init_last_bn(block)` that changes a
# `BasicBlock` in place so that it starts as the identity. Change one tensor only.

# %%
def zero_init_last_bn(block: BasicBlock) -> None:
    ### BEGIN SOLUTION
    nn.init.zeros_(block.bn2.weight)
    ### END SOLUTION


# %% tags=["nbval-check-output"]
checks.check_zero_init_function(zero_init_last_bn)

# %% [markdown]
# Apply it to every block of a fresh copy of the residual network and measure the gradients again:

# %% tags=["nbval-check-output"]
zero_init = build(BasicBlock)
for m in zero_init.modules():
    if isinstance(m, BasicBlock):
        zero_init_last_bn(m)
zero_norms = gradient_norms(zero_init, images, labels)
learning = [name for name, norm in zero_norms.items() if norm > 0.0]
print(f"{len(zero_norms) - len(learning)} of {len(zero_norms)} conv/linear layers get exactly zero gradient")
print("the others:", learning)

# %% [markdown]
# Every convolution inside a residual branch gets **exactly zero** gradient at the first step: its
# output is multiplied by `γ = 0` on the way out, so its gradient is multiplied by zero on the way
# back. What learns first is the path the shortcuts leave (the stem, the two projections, the
# classifier) and, in each block, the last BatchNorm's `γ` and `β`, whose gradients are not zero. As soon as the
# `γ`s leave zero, the branches start learning too. At initialisation the network is effectively
# four weighted layers deep; it grows into its depth as it trains. Notebook 05 measures what this
# initialisation changes in training.

# %% [markdown]
# ## Summary
#
# - A basic block is two 3x3 convolutions with BatchNorm, a ReLU between them, the input added
#   back, and a ReLU after the addition: `y = relu(F(x) + x)`. Built inline, it loads the package's
#   weights strictly and gives identical outputs.
# - Where a block changes shape, the shortcut is a projection: a strided 1x1 convolution and
#   BatchNorm (option B of He et al. 2016).
# - Measured at initialisation, a deep plain BatchNorm network's gradients explode towards the
#   input; the residual twin, with the same weights, keeps them within a much narrower range.
# - With the same data, schedule and initial weights, the residual network trains faster; the plain
#   network is worse on the *training* set, which is the degradation problem, not overfitting.
# - `fit` is plain PyTorch: forward, loss, zero_grad, backward, step, schedule step; plus a NaN
#   check, per-epoch validation, atomic checkpoints and an exact resume.
# - Zero-initialising the last BatchNorm scale (`zero_init_residual`) makes every identity block
#   start as the identity: at the first step only the path through the shortcuts learns.
#
# ## Quiz
#
# 1. After the same budget, the plain network's *training* loss is higher than the residual
#    network's. Why does that rule out overfitting as the explanation?
# 2. Why does the plain twin keep its two unused projection shortcuts?
# 3. Why do the block's convolutions have `bias=False`?
# 4. Why does `fit` seed its shuffling generator from `(seed, stream, epoch)` rather than draw from torch's
#    global generator?
# 5. Where in `fit` would gradient clipping act, and which argument turns it on?
#
# <details>
# <summary>Answers</summary>
#
# 1. Overfitting shows as a low training loss with a high test loss. Here the plain network's
#    *training* loss is the higher one: it fails to fit the very data it trains on, which is an
#    optimisation problem. He et al. (2016, Fig. 1) show the same between plain networks of 20 and
#    56 layers: the deeper one could copy the shallower one by making its extra layers identities,
#    yet it ends with the higher training error.
# 2. So that both networks have exactly the same modules and `state_dict`: built after the same
#    seed they start from the same weights, and the comparison isolates the addition.
# 3. Each is followed by a BatchNorm, which subtracts the per-channel mean (removing any constant
#    bias) and then adds its own learned shift `β`. A bias would be a parameter with no effect.
# 4. So that a run resumed at epoch `e` sees exactly the batches an uninterrupted run would,
#    whatever else consumed random numbers in between; the same goes for augmentation, seeded
#    from `(seed, stream, epoch, step)`; each source of randomness has its own stream, so turning one
#    on leaves the others' draws unchanged.
# 5. Between `loss.backward()` and `opt.step()`: `fit(..., grad_clip=1.0)` rescales the gradients
#    so that their global norm is at most 1.0.
#
# </details>
#
# ## Further reading
#
# - K. He, X. Zhang, S. Ren, J. Sun. *Deep Residual Learning for Image Recognition.* CVPR 2016.
#   Fig. 1 (20- versus 56-layer plain networks on CIFAR-10), eq. 1-2 and section 3.3 (shortcut
#   options A, B, C), section 4.2, Fig. 6 and Table 6 (plain versus residual networks of 20 to 110
#   layers on CIFAR-10; ResNet-110 reaches 6.43% test error).
# - K. He, X. Zhang, S. Ren, J. Sun. *Identity Mappings in Deep Residual Networks.* ECCV 2016.
#   Eq. 4-5: why the gradient reaches every block through the identity path.
# - G. Yang, J. Pennington, V. Rao, J. Sohl-Dickstein, S. S. Schoenholz. *A Mean Field Theory of
#   Batch Normalization.* ICLR 2019. Gradient explosion at initialisation in deep BatchNorm
#   networks without shortcuts.
# - D. Balduzzi et al. *The Shattered Gradients Problem: If resnets are the answer, then what is the
#   question?* ICML 2017.
# - P. Goyal et al. *Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour.* 2017. Section
#   5.1: zero-initialised `γ` in the last BatchNorm of each residual block.
