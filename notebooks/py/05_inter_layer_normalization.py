# %% [markdown]
# # 05 · Inter-layer normalization: BatchNorm from scratch, and its alternatives measured
#
# A ResNet-101 has 104 normalization layers: one after every convolution. They are a large part of
# why a network that deep trains easily with plain SGD, and they are also the layers with the most
# surprising behaviour: BatchNorm computes a *different function* in training and in inference, its
# output for one image depends on the other images of the batch, and its statistics silently go
# stale when the input changes. This notebook writes BatchNorm from its equations, proves it equal to
# PyTorch's, then measures what it buys and what it costs against GroupNorm, LayerNorm, no
# normalization, and zero-initialised residual branches.
#
# The source text this series grew from says that normalizing each convolution's input "reduces model
# complexity". It does not: BatchNorm *adds* parameters, buffers and time per step. What it does is
# make training converge much faster. Section 7 puts numbers on both halves of that sentence.
#
# **Learning objectives.** After this notebook you can
#
# 1. write BatchNorm's training and inference computations from Ioffe & Szegedy's Algorithm 1 and say
#    what the running statistics are (and why the stored variance is the unbiased one);
# 2. explain, with a plot, why a deep residual network without normalization blows up at
#    initialization, and how BatchNorm, GroupNorm or a zero-initialised branch scalar (SkipInit) fix it;
# 3. choose between `norm="batch"`, `"group"`, `"layer"`, `"frozen"` and `"none"` from measured
#    accuracy, batch-size sensitivity and cost;
# 4. recognise and fix the classic BatchNorm bugs: a missing `model.eval()`, batches of one, stale
#    statistics after a change of resolution (`recalibrate_bn`).
#
# **Prerequisites.** Notebooks 02-04 (residual blocks, bottlenecks, ResNet-101 and its `norm` option).
#
# **Run time:** about 3 min with the defaults, measured on the machine the README's syllabus describes (2 cores, no GPU).
# Eleven short trainings take most of it.
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
# Everything comes from `tutorial_lib`: the models take their normalization by name (`norm="group"`),
# and `tutorial_lib.norm` holds the from-scratch `BatchNorm2d`, the name registry and `recalibrate_bn`.

# %%
import copy
import statistics
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from tutorial_lib import checks, viz
from tutorial_lib.blocks import Bottleneck
from tutorial_lib.cost import count_parameters
from tutorial_lib.data import load_dataset, to_float_images
from tutorial_lib.env import choose_device, seed_everything
from tutorial_lib.models import resnet18, resnet101, stage_shapes
from tutorial_lib.norm import BatchNorm2d, group_count, recalibrate_bn
from tutorial_lib.train import evaluate, fit

# %% [markdown]
# ## Parameters
#
# Every knob lives in the next cell (tagged `parameters`, so papermill can override it). The defaults
# fit a 2-core CPU: 32-pixel images, a ResNet-18 of width 8 for the trainings and a ResNet-101 of width 8 for the depth study. The digits are drawn large
# (`OBJECT_SIZE`, a fraction of the image side) so that a 192-step run learns something; object scale
# is the subject of notebooks 06 and 07. On a GPU, try `DEVICE = "cuda"`, `WIDTH = 64`,
# `NUM_TRAIN = 16000`, `EPOCHS = 10`, `SWEEP_NUM_TRAIN = 16000` and `SWEEP_BATCH_SIZES = (64, 16, 4, 2)`:
# the same cells then reproduce the comparisons at a scale where the differences are no longer
# dominated by how few steps a CPU can afford.

# %% tags=["parameters"]
SEED = 0
DEVICE = None                  # None: automatic (cuda > mps > cpu), or "cpu", "cuda", "mps"
IMAGE_SIZE = 32                # image side in pixels
OBJECT_SIZE = (0.6, 0.95)      # digit side as a fraction of the image side
NUM_TRAIN = 3072               # training images for the norm comparison (section 4)
NUM_TEST = 1000                # test images
WIDTH = 8                      # base width of the trained ResNet-18 (64 in the paper)
EPOCHS = 2                     # epochs per comparison run
BATCH_SIZE = 32                # images per step in section 4
LR = 0.1                       # SGD (Nesterov momentum 0.9), one-cycle schedule, at BATCH_SIZE
DEPTH_WIDTH = 8                # base width of the ResNet-101 followed through its depth (section 3)
SWEEP_BATCH_SIZES = (32, 8, 2) # batch sizes of the BN-vs-GN sweep (section 5)
SWEEP_NUM_TRAIN = 1024         # training images per sweep run
SWEEP_EPOCHS = 2               # epochs per sweep run

# %%
seed_everything(SEED)
device = choose_device(DEVICE)
print(f"device: {device}")

train_data = load_dataset("multiscale-digits", "train", image_size=IMAGE_SIZE, num_samples=NUM_TRAIN, object_size=OBJECT_SIZE)
test_data = load_dataset("multiscale-digits", "test", image_size=IMAGE_SIZE, num_samples=NUM_TEST, object_size=OBJECT_SIZE)
print(train_data)
print(test_data)


def as_float(images):
    # The dataset stores uint8 pixels; the models (and tutorial_lib.train) see floats in [0, 1].
    return to_float_images(images).to(device)


# %% [markdown]
# ## 1. BatchNorm from its equations
#
# Ioffe & Szegedy (2015), Algorithm 1. For one channel, over the $m$ values of a mini-batch
# $\mathcal{B} = \{x_1, \dots, x_m\}$:
#
# $$\mu_\mathcal{B} = \frac{1}{m}\sum_{i=1}^{m} x_i \quad (1) \qquad
# \sigma^2_\mathcal{B} = \frac{1}{m}\sum_{i=1}^{m} (x_i - \mu_\mathcal{B})^2 \quad (2)$$
#
# $$\hat{x}_i = \frac{x_i - \mu_\mathcal{B}}{\sqrt{\sigma^2_\mathcal{B} + \epsilon}} \quad (3) \qquad
# y_i = \gamma\,\hat{x}_i + \beta \quad (4)$$
#
# For a convolution the paper normalizes each channel jointly over the batch *and* all positions
# (section 3.2), so $m = N \cdot H \cdot W$. The learned $\gamma$ and $\beta$ (PyTorch's `weight` and
# `bias`) let the layer undo the normalization if that is what training wants. Note that eq. (2)
# divides by $m$: the *biased* variance.

# %%
def batch_norm_train(x, weight, bias, eps=1e-5):
    # Training-mode BatchNorm of an (N, C, H, W) batch: Algorithm 1, one channel per column.
    mean = x.mean(dim=(0, 2, 3), keepdim=True)                          # eq. (1), over N, H, W
    var = ((x - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)           # eq. (2), biased
    x_hat = (x - mean) / torch.sqrt(var + eps)                          # eq. (3)
    return weight.view(1, -1, 1, 1) * x_hat + bias.view(1, -1, 1, 1)   # eq. (4)


# Features of real images: a random 3x3 convolution of 64 training images.
torch.manual_seed(SEED)
conv = nn.Conv2d(3, 8, 3, padding=1).to(device)
with torch.no_grad():
    features = conv(as_float(train_data.images[:64]))
    normalized = batch_norm_train(features, torch.ones(8, device=device), torch.zeros(8, device=device))
print("per-channel mean before:", [round(v, 3) for v in features.mean(dim=(0, 2, 3)).tolist()])
print("per-channel mean after: ", [round(v, 3) + 0.0 for v in normalized.mean(dim=(0, 2, 3)).tolist()])
print("per-channel std after:  ", [round(v, 3) for v in normalized.std(dim=(0, 2, 3), correction=0).tolist()])
assert torch.allclose(normalized.mean(dim=(0, 2, 3)), torch.zeros(8, device=device), atol=1e-5)
assert torch.allclose(normalized.std(dim=(0, 2, 3), correction=0), torch.ones(8, device=device), atol=1e-3)


# %% [markdown]
# At inference there may be a single image, so the batch statistics are replaced by estimates of the
# population's (Algorithm 2, step 10). PyTorch keeps them as **running averages**, updated at every
# training step and *outside* autograd:
#
# $$\text{running} \leftarrow (1 - \text{momentum})\cdot\text{running} + \text{momentum}\cdot\text{batch statistic}$$
#
# with `momentum = 0.1` by default (it is the weight of the *new* value, the opposite of an optimizer's
# momentum). The running variance stores the **unbiased** estimate $\sigma^2_\mathcal{B}\cdot m/(m-1)$,
# as Algorithm 2 does; the normalization itself uses the biased one. The statistics live in *buffers*:
# saved in the `state_dict` and moved by `.to(device)`, but never trained. Here is the whole layer:

# %%
class InlineBatchNorm2d(nn.Module):
    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))    # gamma
        self.bias = nn.Parameter(torch.zeros(num_features))     # beta
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0))

    def forward(self, x):
        if self.training:
            mean = x.mean(dim=(0, 2, 3))                                      # eq. (1)
            var = ((x - mean.view(1, -1, 1, 1)) ** 2).mean(dim=(0, 2, 3))     # eq. (2), biased
            m = x.numel() // x.shape[1]                                       # N * H * W
            with torch.no_grad():  # bookkeeping, not part of the function being differentiated
                self.num_batches_tracked += 1
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)
                self.running_var.mul_(1 - self.momentum).add_(self.momentum * var * m / (m - 1))
        else:
            mean, var = self.running_mean, self.running_var                   # Algorithm 2
        x_hat = (x - mean.view(1, -1, 1, 1)) / torch.sqrt(var.view(1, -1, 1, 1) + self.eps)  # eq. (3)
        return self.weight.view(1, -1, 1, 1) * x_hat + self.bias.view(1, -1, 1, 1)          # eq. (4)


# %% [markdown]
# **Proof of equality.** The inline layer, the package's `tutorial_lib.norm.BatchNorm2d` (the same
# maths, plus `momentum=None`, `affine=False`, `track_running_stats=False` and input checks) and
# `torch.nn.BatchNorm2d` go through three training steps on batches whose statistics shift, then one
# step in eval mode. Outputs, input gradients, running statistics and state_dict keys must agree
# (`tests/test_norm.py` checks more settings, in float64, to 1e-10).

# %% tags=["nbval-check-output"]
torch.manual_seed(SEED)
layers = {"inline": InlineBatchNorm2d(8), "tutorial_lib": BatchNorm2d(8), "torch": nn.BatchNorm2d(8)}
batches = [torch.randn(16, 8, 6, 6) * (1 + step) + step for step in range(3)]
upstream = torch.randn(16, 8, 6, 6)  # a fixed gradient arriving from the layers above
outputs, input_grads = {}, {}
for name, layer in layers.items():
    layer.train()
    outputs[name], input_grads[name] = [], []
    for x in batches:
        x = x.clone().requires_grad_()
        y = layer(x)
        y.backward(upstream)
        outputs[name].append(y.detach())
        input_grads[name].append(x.grad)
    layer.eval()
    outputs[name].append(layer(batches[0]).detach())

reference = layers["torch"]
for name in ("inline", "tutorial_lib"):
    layer = layers[name]
    same_outputs = all(torch.allclose(a, b, atol=1e-5) for a, b in zip(outputs[name], outputs["torch"]))
    same_grads = all(torch.allclose(a, b, atol=1e-5) for a, b in zip(input_grads[name], input_grads["torch"]))
    same_grads = same_grads and torch.allclose(layer.weight.grad, reference.weight.grad, atol=1e-4)
    same_stats = (torch.allclose(layer.running_mean, reference.running_mean, atol=1e-6)
                  and torch.allclose(layer.running_var, reference.running_var, atol=1e-6))
    print(f"{name} vs torch: outputs {same_outputs}, gradients {same_grads}, running statistics {same_stats}, "
          f"batches tracked {int(layer.num_batches_tracked)}")
    assert same_outputs and same_grads and same_stats
    assert list(layer.state_dict()) == list(reference.state_dict())
print("state_dict keys, all three:", list(reference.state_dict()))

# %% [markdown]
# From here on the series uses the package's layers; `norm="scratch-batch"` builds a whole ResNet with
# the from-scratch layer, whose weights load into a `norm="batch"` model and back (tested).
#
# ## 2. Train mode, eval mode, and what the running statistics are
#
# In **train mode** an image's output depends on the rest of its batch; in **eval mode** it does not.
# Same image, two different batch-mates:

# %%
bn = BatchNorm2d(3).to(device)
image = as_float(train_data.images[:1])
mates_a, mates_b = as_float(train_data.images[1:8]), as_float(train_data.images[8:15])
bn.train()
in_a, in_b = bn(torch.cat([image, mates_a]))[0], bn(torch.cat([image, mates_b]))[0]
print(f"train mode: the same image's output changes by up to {(in_a - in_b).abs().max().item():.3f} with its batch-mates")
bn.eval()
in_a, in_b = bn(torch.cat([image, mates_a]))[0], bn(torch.cat([image, mates_b]))[0]
print(f"eval mode:  it changes by {(in_a - in_b).abs().max().item():.3f}")
assert torch.equal(in_a, in_b)

# %% [markdown]
# The running statistics are exponential moving averages. After $t$ steps the initial value still
# weighs $(1-\text{momentum})^t$: $0.9^{10} = 0.35$, $0.9^{50} = 0.005$. So the estimate forgets its
# start in a few dozen steps, and it *keeps* forgetting: at the end of training it mostly reflects
# the last few dozen batches, computed by slightly different weights (the reason for
# `recalibrate_bn`, section 6). With `momentum=None` PyTorch uses the cumulative average instead,
# $\text{running} \leftarrow \text{running} + (\text{batch statistic} - \text{running})/t$: every batch
# counts equally. Below, one BatchNorm layer on raw images estimates the mean red intensity of the
# training images, 16 images per batch:

# %%
estimators = {"momentum=0.1": BatchNorm2d(3, momentum=0.1), "momentum=0.01": BatchNorm2d(3, momentum=0.01),
              "momentum=None (cumulative)": BatchNorm2d(3, momentum=None)}
traces = {name: [] for name in estimators}
stream = to_float_images(train_data.images[:960]).split(16)
for batch in stream:
    for name, layer in estimators.items():
        layer.train()
        layer(batch)
        traces[name].append(layer.running_mean[0].item())
true_mean = torch.cat(stream).mean(dim=(0, 2, 3))[0].item()
fig = viz.plot_running_estimates(traces, target=true_mean, ylabel="running_mean (red channel)",
                                 title="BatchNorm's running mean of 60 batches of 16 images")
plt.show()
for name, values in traces.items():
    print(f"{name:>27}: after 10 batches {values[9]:.4f}, after 60 {values[-1]:.4f} (mean of the 960 images: {true_mean:.4f})")
# With equal batches the cumulative average of batch means is exactly the mean of all images seen.
assert abs(traces["momentum=None (cumulative)"][-1] - true_mean) < 1e-5


# %% [markdown]
# `momentum=0.1` reaches the neighbourhood fast and then jitters with each batch; `0.01` is smooth
# but slow; the cumulative average lands exactly on the mean of what it saw, which is why
# `recalibrate_bn` uses it once the weights stop changing.
#
# ## 3. Activations through the depth of ResNet-101 at initialization
#
# He initialization keeps the variance of a signal roughly constant through *one* convolution and
# ReLU. A residual block adds its branch to its input, $x_{l+1} = x_l + F(x_l)$, so without
# normalization the variances add: $\mathrm{Var}(x_{l+1}) \approx \mathrm{Var}(x_l) + \mathrm{Var}(F(x_l))$,
# and with a branch as large as its input the signal doubles in variance at every block (De & Smith
# 2020, section 2). With BatchNorm ending each branch, $F(x_l)$ has unit variance whatever came in, so
# the variance grows only by about 1 per block, and the projection shortcut's BatchNorm resets it at
# every stage. SkipInit (`norm="none"` here) removes normalization but multiplies each branch by a
# learnable scalar that starts at 0, so every block starts as the identity. Below: the mean and
# standard deviation of each of the 33 bottleneck outputs for one batch of 16 training images, in a
# CPU-width ResNet-101 fresh from initialization (train mode, so BatchNorm uses batch statistics).

# %%
def block_statistics(model, images):
    # Mean and std of every bottleneck's output, in forward order, via forward hooks.
    means, stds = [], []

    def record(module, inputs, output):
        means.append(output.mean().item())
        stds.append(output.std().item())

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, Bottleneck)]
    try:
        with torch.no_grad():
            model(images)
    finally:
        for hook in hooks:
            hook.remove()
    return {"mean": means, "std": stds}


variants = {
    "BatchNorm": "batch",
    "GroupNorm": "group",
    "none + SkipInit": "none",
    "none, no SkipInit": lambda channels: nn.Identity(),
}
probe = as_float(train_data.images[:16])
depth_stats = {}
for name, norm in variants.items():
    torch.manual_seed(SEED)
    model = resnet101(width=DEPTH_WIDTH, stem="small", num_classes=10, norm=norm).to(device)
    model.train()
    depth_stats[name] = block_statistics(model, probe)
fig = viz.plot_depth_statistics(depth_stats, title=f"ResNet-101 (width {DEPTH_WIDTH}) at initialization, {IMAGE_SIZE} px inputs")
plt.show()
for name, stats in depth_stats.items():
    print(f"{name:>18}: std after block 1 {stats['std'][0]:9.3g}, block 10 {stats['std'][9]:9.3g}, block 33 {stats['std'][-1]:9.3g}")
assert len(depth_stats["BatchNorm"]["std"]) == 33
assert depth_stats["none, no SkipInit"]["std"][-1] > 100 * depth_stats["BatchNorm"]["std"][-1]

# %% [markdown]
# Without normalization or SkipInit the standard deviation grows by orders of magnitude over 33
# blocks (the logits of such a network are enormous and its first gradient steps are useless); with
# BatchNorm or GroupNorm it grows slowly inside a stage and drops back at each stage's projection
# (blocks 4, 8 and 31); with SkipInit it stays flat, because every block is still the identity.
# De & Smith's point is that this, shrinking the residual branches at initialization, is the main
# reason BatchNorm makes deep ResNets trainable.
#
# ## 4. Training with BN, GN, LN, none and zero-init, at equal budget
#
# Five ResNet-18s of width 8, identical except for the normalization, train on the same images in
# the same order with the same seed, learning rate and number of steps:
#
# * `batch`: BatchNorm, the ResNet default;
# * `group`: GroupNorm, 32 groups or the largest divisor of the channel count below that
#   (`tutorial_lib.norm.group_count`): at width 8 the stages have 8, 16, 32 and 64 channels, so the
#   first two stages get one channel per group (which is InstanceNorm), the last two 32 groups;
# * `layer`: LayerNorm for feature maps, GroupNorm with one group;
# * `none`: no normalization, with SkipInit on each residual branch;
# * `batch + zero-init`: BatchNorm with the last BN of every branch starting at $\gamma = 0$
#   (`zero_init_residual=True`, Goyal et al. 2017, section 5.1).
#
# The parameter counts differ only where the maths says they should: every normalization layer has
# two parameters per channel, except SkipInit (one scalar per block).

# %% tags=["nbval-check-output"]
print("groups per stage with norm='group' at width", WIDTH, ":", [group_count(WIDTH * 2**i) for i in range(4)])
configs = {
    "batch": {"norm": "batch"},
    "group": {"norm": "group"},
    "layer": {"norm": "layer"},
    "none": {"norm": "none"},
    "batch + zero-init": {"norm": "batch", "zero_init_residual": True},
}
for name, options in configs.items():
    model = resnet18(width=WIDTH, stem="small", num_classes=10, **options)
    buffers = sum(b.numel() for b in model.buffers())
    print(f"{name:>17}: {count_parameters(model):,} parameters, {buffers:,} buffer values")

# %%
runs = {}
for name, options in tqdm(configs.items(), desc="norms", total=len(configs)):
    seed_everything(SEED)
    model = resnet18(width=WIDTH, stem="small", num_classes=10, **options)
    history = fit(model, train_data, epochs=EPOCHS, batch_size=BATCH_SIZE, optimizer="sgd", lr=LR,
                  seed=SEED, device=device, progress=False)
    result = evaluate(model, test_data)
    runs[name] = {"model": model, "history": history, "test_acc": result["accuracy"],
                  "ms_per_step": 1000 * history.train_seconds / len(history.step_loss)}

fig = viz.plot_histories({name: run["history"] for name, run in runs.items()},
                         title=f"ResNet-18 width {WIDTH}: same data, seed, learning rate and {len(runs['batch']['history'].step_loss)} steps")
plt.show()

# %%
print(f"{'norm':>17} | {'test accuracy':>13} | {'last-epoch train loss':>21} | {'ms per step':>11}")
for name, run in runs.items():
    last = run["history"].last
    print(f"{name:>17} | {run['test_acc']:13.3f} | {last['train_loss']:21.3f} | {run['ms_per_step']:11.0f}")
ranking = sorted(runs, key=lambda name: runs[name]["test_acc"], reverse=True)
print("ranking by test accuracy:", " > ".join(ranking))
# Equal budget: every run took the same number of optimizer steps on the same images.
assert len({len(run["history"].step_loss) for run in runs.values()}) == 1

# %% [markdown]
# What the table shows, at this budget (192 steps, a few seconds each):
#
# * **BatchNorm learns fastest:** the lowest training loss and the highest test accuracy after the
#   same number of steps. This is the speed-up Ioffe & Szegedy reported (the same accuracy as
#   Inception in 14 times fewer steps).
# * **GroupNorm and LayerNorm learn too**, more slowly here. They normalize each image on its own, so
#   they lose the mild regularizing noise of batch statistics, and at width 8 GroupNorm is
#   InstanceNorm in the first two stages. Their advantage is elsewhere: section 5.
# * **No normalization stays near chance.** SkipInit keeps the network well-behaved at initialization
#   (section 3), and the tests show it training on an easy batch, but on cluttered images with plain
#   SGD it needs far more steps than this budget holds (De & Smith also find that networks without
#   normalization cannot use the largest learning rates BatchNorm allows). Normalization is what
#   makes a short run enough.
# * **Zero-initialised branches start slowly.** Every block begins as the identity, which Goyal et al.
#   (2017, section 5.1) use to stabilise very large-batch training (8192 images per step); in a 192-step run the branches
#   spend most of the budget opening up.
#
# These are single runs on 1,000 test images (a standard error of $\sqrt{p(1-p)/n} \approx 1.6$ points for $p = 0.5$, $n = 1000$); the
# ranking, not the third digit, is the result. The GPU values of the parameters cell run the same
# comparison at a scale closer to the papers'.
#
# ## 5. Batch-size sensitivity: BatchNorm against GroupNorm
#
# BatchNorm's statistics come from the batch, so a small batch gives noisy statistics in training and
# a mismatch with the running averages at test time. Wu & He (2018, Fig. 1) trained ResNet-50 on
# ImageNet with 32 down to 2 images per GPU: BatchNorm's error rose from 23.6% to **34.7%** while
# GroupNorm stayed at **24.1%**. Here is the same experiment in miniature: BN and GN at the batch sizes
# of `SWEEP_BATCH_SIZES`, the same images and epochs for every run, and the learning rate scaled
# linearly with the batch size (the rule the paper uses, from Goyal et al. 2017): a batch of 2 takes
# 16 times as many steps as a batch of 32, each with a 16 times smaller learning rate.

# %%
sweep_data = TensorDataset(train_data.images[:SWEEP_NUM_TRAIN], train_data.labels[:SWEEP_NUM_TRAIN])
sweep = {"batch": {}, "group": {}}
sweep_steps = {}
for batch_size in tqdm(SWEEP_BATCH_SIZES, desc="batch sizes"):
    for norm in sweep:
        seed_everything(SEED)
        model = resnet18(width=WIDTH, stem="small", num_classes=10, norm=norm)
        history = fit(model, sweep_data, epochs=SWEEP_EPOCHS, batch_size=batch_size, optimizer="sgd",
                      lr=LR * batch_size / BATCH_SIZE, seed=SEED, device=device, progress=False)
        sweep[norm][batch_size] = evaluate(model, test_data)["accuracy"]
        sweep_steps[batch_size] = len(history.step_loss)

paper = {"batch": {32: 23.6, 2: 34.7}, "group": {32: 24.1, 2: 24.1}}  # Wu & He 2018, Fig. 1 (ResNet-50, ImageNet)
fig = viz.plot_batch_size_sensitivity(sweep, reference=paper, title="BN vs GN: test error against batch size")
plt.show()
print(f"{'batch size':>10} | {'steps':>5} | {'lr':>7} | {'BN accuracy':>11} | {'GN accuracy':>11} | {'BN - GN':>7}")
for batch_size in SWEEP_BATCH_SIZES:
    bn_acc, gn_acc = sweep["batch"][batch_size], sweep["group"][batch_size]
    print(f"{batch_size:>10} | {sweep_steps[batch_size]:>5} | {LR * batch_size / BATCH_SIZE:7.4f} | "
          f"{bn_acc:11.3f} | {gn_acc:11.3f} | {bn_acc - gn_acc:+7.3f}")
largest, smallest = max(SWEEP_BATCH_SIZES), min(SWEEP_BATCH_SIZES)
gap_large = sweep["batch"][largest] - sweep["group"][largest]
gap_small = sweep["batch"][smallest] - sweep["group"][smallest]
print(f"BN's lead over GN: {gap_large:+.3f} at {largest} images per batch, {gap_small:+.3f} at {smallest}")
if len(SWEEP_BATCH_SIZES) > 2:
    middle = sorted(SWEEP_BATCH_SIZES)[1]
    print(f"from {middle} to {smallest} images per batch, accuracy changed by {sweep['batch'][smallest] - sweep['batch'][middle]:+.3f} "
          f"with BN and {sweep['group'][smallest] - sweep['group'][middle]:+.3f} with GN")


# %% [markdown]
# The trend to look for is the **gap**, not the absolute accuracies (these runs are short, and the
# number of steps changes with the batch size, which moves both norms). BatchNorm leads clearly at
# 32 and 8 images per batch and loses that lead at 2, where its statistics come from two images, and
# going from 8 to 2 images costs it far more accuracy than it costs GroupNorm, whose computation does
# not depend on the batch at all. The paper's numbers (squares) show the same thing at ImageNet
# scale. That is why detection and segmentation models, trained with one or two large images per GPU,
# use GroupNorm or frozen BatchNorm (`norm="frozen"`).
#
# ## 6. Pitfalls, shown
#
# ### 6.1 Forgetting `model.eval()`
#
# `tutorial_lib.train.evaluate` switches to eval mode (and back). A hand-written test loop that
# forgets it normalizes every test batch with its *own* statistics: the predictions then depend on
# the batch size and on which images share a batch, and, as a side effect, every test batch is
# written into the running statistics.

# %%
def accuracy_in_train_mode(model, data, batch_size):
    # The bug, reproduced on a copy: a test loop that never called model.eval().
    model = copy.deepcopy(model).to(device)
    model.train()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            images, labels = as_float(data.images[start:start + batch_size]), data.labels[start:start + batch_size].to(device)
            correct += (model(images).argmax(dim=1) == labels).sum().item()
    return correct / len(data), model


bn_model, gn_model = runs["batch"]["model"], runs["group"]["model"]
print(f"{'':>22} | {'BatchNorm':>9} | {'GroupNorm':>9}")
print(f"{'eval mode (correct)':>22} | {evaluate(bn_model, test_data)['accuracy']:9.3f} | {evaluate(gn_model, test_data)['accuracy']:9.3f}")
forgot = {}
for batch_size in (200, 8, 2):
    forgot[batch_size] = accuracy_in_train_mode(bn_model, test_data, batch_size)
    gn_acc, _ = accuracy_in_train_mode(gn_model, test_data, batch_size)
    print(f"{f'train mode, batch {batch_size}':>22} | {forgot[batch_size][0]:9.3f} | {gn_acc:9.3f}")
eval_acc = evaluate(bn_model, test_data)["accuracy"]
print(f"forgetting model.eval() costs BatchNorm {100 * (eval_acc - forgot[2][0]):.1f} points at batch size 2, "
      f"{100 * (eval_acc - forgot[8][0]):.1f} at 8")
polluted = forgot[8][1]
drift = (polluted.layer4[1].bn2.running_mean - bn_model.layer4[1].bn2.running_mean).abs().max().item()
print(f"side effect: the test batches moved layer4[1].bn2.running_mean by up to {drift:.3f}")
assert abs(evaluate(gn_model, test_data)["accuracy"] - accuracy_in_train_mode(gn_model, test_data, 8)[0]) < 0.005

# %% [markdown]
# GroupNorm computes the same function in both modes (its accuracy does not move); BatchNorm loses
# accuracy as the test batches shrink. Call `model.eval()` before inference and `model.train()`
# before training, explicitly, every time.
#
# ### 6.2 A batch of one in train mode
#
# In train mode BatchNorm needs more than one value per channel: with one value, eq. (2) gives a
# variance of 0 and every output is $\beta$. Whether a batch of one image triggers this depends on the
# map size. The ImageNet stem (7x7/2 convolution and max-pool) shrinks a 32-pixel image to 1x1 by
# `layer4`:

# %% tags=["nbval-check-output"]
imagenet_stem = resnet18(width=WIDTH, num_classes=10).to(device)
for name, shape in stage_shapes(imagenet_stem, IMAGE_SIZE).items():
    if name.startswith("layer"):
        print(name, shape)

# %% tags=["raises-exception"]
imagenet_stem.train()
imagenet_stem(as_float(test_data.images[:1]))

# %% [markdown]
# With the small stem the maps stay 4x4, so a batch of one image does *not* raise: BatchNorm silently
# normalizes over that one image's positions, a different function from the one the model was
# trained with (the output changes, no error tells you):

# %%
single = as_float(test_data.images[:1])
bn_model.eval()
with torch.no_grad():
    eval_logits = bn_model(single)
one_image_model = copy.deepcopy(bn_model)
one_image_model.train()
with torch.no_grad():
    train_logits = one_image_model(single)
print("eval-mode prediction:", eval_logits.argmax().item(), "| train-mode prediction of a batch of one:", train_logits.argmax().item(),
      f"| largest logit change {(eval_logits - train_logits).abs().max().item():.2f}")

# %% [markdown]
# ### 6.3 A last batch of one, and `drop_last`
#
# A `DataLoader` hands over whatever is left at the end of an epoch. With 33 images and batches of
# 32, the last batch holds one image, and a model like the one above crashes at the very end of the
# epoch, after minutes of work:

# %% tags=["nbval-check-output"]
tiny = TensorDataset(to_float_images(test_data.images[:33]), test_data.labels[:33])
print("drop_last=False:", [len(y) for _, y in DataLoader(tiny, batch_size=32)])
print("drop_last=True: ", [len(y) for _, y in DataLoader(tiny, batch_size=32, drop_last=True)])
imagenet_stem.train()
for step, (images, labels) in enumerate(DataLoader(tiny, batch_size=32)):
    try:
        F.cross_entropy(imagenet_stem(images.to(device)), labels.to(device)).backward()
        print(f"step {step}: batch of {len(labels)}: ok")
    except ValueError as error:
        print(f"step {step}: batch of {len(labels)}: ValueError: {str(error).splitlines()[0]}")


# %% [markdown]
# `DataLoader(..., drop_last=True)` for training fixes it (the dropped images are reshuffled into
# other batches next epoch). `tutorial_lib.train.fit` always drops the incomplete last batch; for
# evaluation, eval mode makes any batch size safe.
#
# ### 6.4 Statistics depend on the input resolution, and `recalibrate_bn`
#
# The running statistics describe the activations the model saw *at its training resolution*. Feed
# it larger images (the same test images, resized from 32 to 48 pixels) and the activations of every
# layer shift: their batch mean no longer matches `running_mean`. `recalibrate_bn` re-estimates all
# BatchNorm statistics on training images at the new resolution, with the weights frozen ("precise
# BN", Wu & Johnson 2021): it resets them, sets `momentum=None` (cumulative average), runs forward
# passes in train mode for the BN layers only, then restores everything else. Notebook 07 is about
# this train/test resolution discrepancy (Touvron et al. 2019); here we only measure it.

# %%
def resized(images, size):
    return F.interpolate(to_float_images(images), size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def mean_mismatch(model, images):
    # Mean |batch mean - running_mean| over the channels of every BatchNorm layer, one batch.
    gaps = []

    def record(module, inputs, output):
        gaps.append((inputs[0].mean(dim=(0, 2, 3)) - module.running_mean).abs().mean().item())

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    model.eval()
    try:
        with torch.no_grad():
            model(images.to(device))
    finally:
        for hook in hooks:
            hook.remove()
    return statistics.mean(gaps)


big = 3 * IMAGE_SIZE // 2
test_big = TensorDataset(resized(test_data.images, big), test_data.labels)
train_big = TensorDataset(resized(train_data.images, big), train_data.labels)
recalibrated = copy.deepcopy(bn_model)
used = recalibrate_bn(recalibrated, train_big, num_batches=16, batch_size=128, seed=SEED)
probe_small = as_float(test_data.images[:256])
probe_big = test_big.tensors[0][:256]
print(f"mean |batch mean - running_mean| per BN channel: {mean_mismatch(bn_model, probe_small):.3f} at {IMAGE_SIZE} px, "
      f"{mean_mismatch(bn_model, probe_big):.3f} at {big} px, {mean_mismatch(recalibrated, probe_big):.3f} at {big} px after recalibration")
acc = {
    "BN, statistics from 32 px": evaluate(bn_model, test_big)["accuracy"],
    f"BN, recalibrated at {big} px ({used} batches)": evaluate(recalibrated, test_big)["accuracy"],
    "GN (nothing to recalibrate)": evaluate(gn_model, test_big)["accuracy"],
}
print(f"test accuracy at {big} px (trained at {IMAGE_SIZE} px; at {IMAGE_SIZE} px BN scores {evaluate(bn_model, test_data)['accuracy']:.3f}):")
for name, value in acc.items():
    print(f"  {name:>36}: {value:.3f}")
assert mean_mismatch(recalibrated, probe_big) < mean_mismatch(bn_model, probe_big)

# %% [markdown]
# Recalibration brings the statistics back in line and recovers part of the lost accuracy; the rest
# is the object-size shift itself (every digit is now larger by the ratio of the two sizes, most of them larger than any
# seen in training), which no statistic can fix: that is notebook 07's subject.
#
# At the *training* resolution, precise BN replaces the running averages, which mostly reflect the
# last few dozen batches of a still-moving network, by an equal-weight average over many batches of
# the final one:

# %%
precise = copy.deepcopy(bn_model)
used = recalibrate_bn(precise, train_data, num_batches=24, batch_size=128, seed=SEED)
before, after = evaluate(bn_model, test_data)["accuracy"], evaluate(precise, test_data)["accuracy"]
print(f"test accuracy at {IMAGE_SIZE} px: running averages {before:.3f}, precise BN over {used} batches of 128: {after:.3f} ({100 * (after - before):+.1f} points)")
change = (precise.layer4[1].bn2.running_var / bn_model.layer4[1].bn2.running_var).log().abs().max().exp().item()
print(f"largest change of a running_var in layer4[1].bn2: a factor of {change:.2f}")
assert all(torch.equal(a, b) for (k, a), (_, b) in zip(precise.state_dict().items(), bn_model.state_dict().items())
           if "running" not in k and "num_batches" not in k), "recalibrate_bn must not change any weight"

# %% [markdown]
# Here the change is within noise, because the one-cycle schedule ends with a tiny learning rate, so
# the last batches of training already saw an almost-final network and the running averages were
# good estimates. Wu & Johnson show that running averages are poor estimates while the weights still
# change quickly (early in training, or with a large learning rate), which is where precise BN pays
# off, and whenever the statistics must describe a different input distribution, as at 48 px above.
#
# ## 7. Does normalization "reduce model complexity"? The numbers
#
# The source text claims that normalizing each convolution's input reduces the model's complexity.
# Count it: the full-size ResNet-101 with each normalization.

# %% tags=["nbval-check-output"]
counts = {}
for norm in ("batch", "group", "layer", "frozen", "none"):
    model = resnet101(norm=norm)
    counts[norm] = count_parameters(model)
    buffers = sum(b.numel() for b in model.buffers())
    norm_layers = sum(type(m).__name__ in ("BatchNorm2d", "GroupNorm", "FrozenBatchNorm2d") for m in model.modules())
    print(f"{norm:>7}: {counts[norm]:,} parameters, {buffers:,} buffer values, {norm_layers} normalization layers")
plain = counts["frozen"]  # frozen BN turns the norm parameters into buffers: convolutions and classifier only
print(f"convolutions and classifier alone: {plain:,}; BatchNorm adds {counts['batch'] - plain:,} parameters "
      f"(+{100 * (counts['batch'] - plain) / plain:.2f}%)")


# %% [markdown]
# BatchNorm adds 105,344 parameters (two per channel of each of the 104 layers) and as many buffer
# values (plus one batch counter per layer). The multiply-add counts of notebook 04 do not change,
# because they count operations per *weight* and BatchNorm costs a few operations per *activation*;
# but those operations are not free, least of all on a CPU, where they are limited by memory traffic.
# Time one training step of the section-4 network with and without normalization, on the same batch:

# %%
def step_times_ms(norms, repeats=15):
    # Median time of one SGD step per norm on the same batch. The models take turns, step by step,
    # so that anything else running on the machine slows them all alike.
    images, labels = as_float(train_data.images[:BATCH_SIZE]), train_data.labels[:BATCH_SIZE].to(device)
    setups = {}
    for norm in norms:
        seed_everything(SEED)
        model = resnet18(width=WIDTH, stem="small", num_classes=10, norm=norm).to(device)
        model.train()
        setups[norm] = (model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
    times = {norm: [] for norm in norms}
    for i in range(repeats + 3):
        for norm, (model, optimizer) in setups.items():
            start = time.perf_counter()
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= 3:  # the first steps allocate memory and pick kernels
                times[norm].append(1000 * (time.perf_counter() - start))
    return {norm: statistics.median(values) for norm, values in times.items()}


step_ms = step_times_ms(("none", "batch", "group"))
for norm, ms in step_ms.items():
    print(f"{norm:>5}: {ms:6.1f} ms per training step ({ms / step_ms['none']:.2f}x none)")
print(f"but after {len(runs['batch']['history'].step_loss)} steps (section 4): BatchNorm {runs['batch']['test_acc']:.3f} "
      f"test accuracy, none {runs['none']['test_acc']:.3f}")

# %% [markdown]
# So the correction: **normalization adds parameters, buffers and time per step; it does not reduce
# complexity.** What it buys is convergence: with BatchNorm the same number of (slightly slower) steps
# reaches a far better model (section 4), larger learning rates become usable, and a 101-layer
# network starts out well-conditioned (section 3). At inference BatchNorm can be folded into the
# preceding convolution and then costs nothing at all, which is the first exercise.
#
# ## Exercises
#
# ### Exercise 1: fold BatchNorm into a scale and a shift
#
# In eval mode BatchNorm is a fixed affine map per channel: $y = x \cdot \text{scale} + \text{shift}$.
# Compute `scale` and `shift` (one value per channel) from the layer's `weight`, `bias`,
# `running_mean`, `running_var` and `eps`. (Deployment tools go one step further and merge them into
# the convolution before it.)

# %%
bn_layer = bn_model.layer2[0].bn1  # a trained layer, with real running statistics

### BEGIN SOLUTION
with torch.no_grad():
    scale = bn_layer.weight / torch.sqrt(bn_layer.running_var + bn_layer.eps)
    shift = bn_layer.bias - bn_layer.running_mean * scale
### END SOLUTION

# %%
checks.check_bn_fold(scale, shift, bn_layer)


# %% [markdown]
# ### Exercise 2: GroupNorm from its equation
#
# Wu & He (2018) define GroupNorm with the same equations (1)-(3) as BatchNorm, but over a different
# set: for each *sample*, the channels are split into `num_groups` consecutive groups and each group
# is normalized over its channels and all positions (their eq. 7; their Fig. 3 does it in a few lines
# with one reshape). Write `group_norm_forward(x, num_groups, eps)` for an (N, C, H, W) tensor,
# without the affine part. With `num_groups=1` it is LayerNorm; with `num_groups=C`, InstanceNorm.

# %%
def group_norm_forward(x, num_groups, eps=1e-5):
    ### BEGIN SOLUTION
    n, c, h, w = x.shape
    grouped = x.reshape(n, num_groups, (c // num_groups) * h * w)
    mean = grouped.mean(dim=-1, keepdim=True)
    var = grouped.var(dim=-1, correction=0, keepdim=True)
    return ((grouped - mean) / torch.sqrt(var + eps)).reshape(n, c, h, w)
    ### END SOLUTION


# %%
checks.check_group_norm_function(group_norm_forward)

# %% [markdown]
# ## Summary
#
# - BatchNorm normalizes each channel over (N, H, W) of the batch with the biased variance, then
#   scales and shifts (Algorithm 1); at inference it uses running averages, stored with the unbiased
#   variance. `tutorial_lib.norm.BatchNorm2d` is that, equal to `torch.nn.BatchNorm2d`.
# - Without normalization a deep ResNet's activations grow by orders of magnitude at initialization;
#   BatchNorm, GroupNorm or a zero-initialised branch scalar (SkipInit) keep them in range.
# - At equal budget, BatchNorm trained fastest here; GroupNorm and LayerNorm trained more slowly;
#   no normalization stayed near chance. BatchNorm loses its lead at tiny batches, where GroupNorm,
#   independent of the batch, does not change (Wu & He's trend, in miniature).
# - Pitfalls: forgetting `model.eval()` costs accuracy and pollutes the statistics; a batch of one
#   value per channel raises in train mode (use `drop_last=True`); statistics go stale when the
#   resolution changes, and `recalibrate_bn` re-estimates them.
# - Normalization adds parameters (105,344 in ResNet-101) and time per step; it speeds convergence.
#   It does not reduce complexity.
#
# ## Quiz
#
# 1. Why does `running_var` store $\sigma^2_\mathcal{B} \cdot m/(m-1)$ while the training forward pass
#    divides by $\sqrt{\sigma^2_\mathcal{B} + \epsilon}$ with the biased $\sigma^2_\mathcal{B}$?
# 2. You fine-tune a pretrained ResNet-101 for detection with 2 images per GPU. Name two choices for
#    its normalization layers and why plain BatchNorm is a poor one.
# 3. Your model scores well with `evaluate()` but far worse in your own test loop with batches of 2 images.
#    What is the most likely bug, and what else did that loop change?
# 4. A ResNet with BatchNorm and the same ResNet with `norm="group"`: which has more parameters?
#
# <details><summary>Answers</summary>
#
# 1. In training the layer normalizes *this* batch, whose own (biased, maximum-likelihood) variance is
#    exactly what makes the output have unit variance. The running value estimates the variance of
#    the *population* from samples, and dividing by $m - 1$ makes that estimate unbiased (Algorithm 2).
#    For a convolution $m = N H W$ is large and the two barely differ.
# 2. Frozen BatchNorm (`norm="frozen"`: the pretrained statistics and affine parameters as constants)
#    or GroupNorm (`norm="group"`: batch-independent). With 2 images the batch statistics are noisy
#    and differ from the population's (Wu & He 2018, Table 3: 34.7% vs 24.1% ImageNet error for ResNet-50).
# 3. The loop never called `model.eval()`, so each batch of 2 was normalized with its own statistics;
#    and every forward pass in train mode also overwrote the running statistics with test data.
# 4. Neither: both have two parameters per channel of each normalization layer (44,549,160 for
#    ResNet-101). BatchNorm has buffers (running statistics) on top; GroupNorm has none.
# </details>
#
# ## Further reading
#
# - Ioffe & Szegedy (2015), *Batch Normalization: Accelerating Deep Network Training by Reducing
#   Internal Covariate Shift*: Algorithms 1-2; BN-Inception matched Inception's accuracy in 14 times
#   fewer training steps, and an ensemble reached 4.9% top-5 validation error on ImageNet.
# - Santurkar et al. (2018), *How Does Batch Normalization Help Optimization?*: the benefit comes from
#   a smoother loss landscape rather than from reducing "internal covariate shift".
# - Wu & He (2018), *Group Normalization*: ResNet-50 on ImageNet at 2 images per GPU, 34.7% error with
#   BN vs 24.1% with GN; at 32 images per GPU, 23.6% vs 24.1%.
# - Ba, Kiros & Hinton (2016), *Layer Normalization*; Ulyanov et al. (2016), *Instance Normalization*.
# - De & Smith (2020), *Batch Normalization Biases Residual Blocks Towards the Identity Function in
#   Deep Networks*: SkipInit, a zero-initialised scalar per residual branch.
# - Goyal et al. (2017), *Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour*: linear learning
#   rate scaling, warm-up, and $\gamma = 0$ in each branch's last BN (section 5.1); ResNet-50 with
#   8,192 images per batch matches small-batch accuracy.
# - Wu & Johnson (2021), *Rethinking "Batch" in BatchNorm*: precise BN, and where batch statistics go
#   wrong in training, inference and domain shift.
# - Touvron et al. (2019), *Fixing the Train-Test Resolution Discrepancy*: why the test resolution
#   matters (notebook 07).
