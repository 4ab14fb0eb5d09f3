# %% [markdown]
# # 10 · Scaling up: the same code on a GPU and on several processes
#
# Notebooks 00-09 trained narrow networks on small images on a 2-core CPU. The real thing is a
# full-width ResNet-101 on real photos, on one GPU and then on several. None of that needs new
# training code: PyTorch ships the building blocks, and `tutorial_lib.train.fit` uses them when
# asked. This notebook explains each one, measures what it can on the CPU, and prints the
# commands for the GPU.
#
# **Learning objectives.** After this notebook you can
#
# 1. say what DistributedDataParallel (DDP) does in each step (gradients averaged by an all-reduce,
#    in buckets, overlapped with backward), prove on a CPU that it reproduces one process, and say
#    why BatchNorm needs synchronizing when each device holds few images;
# 2. move a recipe to more devices: the global batch, the learning-rate rule and its warm-up;
# 3. read the measured effect of channels-last, `torch.compile`, activation checkpointing and mixed
#    precision (bfloat16, float16 with loss scaling), and choose among them on a GPU;
# 4. launch a run on one GPU, on the GPUs of one machine, and on several machines.
#
# **Prerequisites.** Notebook 05 (BatchNorm statistics, its batch-size sweep) and 08 (learning-rate
# schedules and warm-up); the README's "Two commands" (the `train` command line).
#
# **Run time:** about 2 min with the defaults, measured on the machine the README's syllabus describes (2 cores, no GPU).
# It starts real two-process runs with `torchrun`. The slow measurements (compilation takes most
# of a minute per graph here; a ResNet-101 step at 224 px several seconds) are read from
# `benchmarks/results/scaling.json`, written by `benchmarks/bench_scaling.py`.
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
# The speed and memory options live in `tutorial_lib.speed`; `fit` takes them as arguments
# (`compile=`, `activation_checkpointing=`) beside its settings (`channels_last`, `precision`,
# `sync_bn`), and the command line as flags.

# %%
import copy
import json
import math
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from tutorial_lib import checks
from tutorial_lib.data import load_dataset
from tutorial_lib.env import choose_device, seed_everything
from tutorial_lib.models import resnet18, resnet101
from tutorial_lib.recipes import get_recipe
from tutorial_lib.speed import checkpoint_stages, residual_stages, saved_activation_bytes
from tutorial_lib.train import fit

# %% [markdown]
# ## Parameters
#
# `NUM_SAMPLES` is the training set of the live two-process runs, `WORLD_SIZE` their number of
# processes. `GPUS_PER_NODE`, `NODES` and `RENDEZVOUS` only shape the GPU commands printed in
# section 7; set them to your machines. On a GPU, set `DEVICE = "cuda"` and `MEMORY_SIZE = 224` to
# count activations at ImageNet's size.

# %% tags=["parameters"]
SEED = 0
DEVICE = None                     # None: automatic (cuda > mps > cpu), or "cpu", "cuda", "mps"
WORLD_SIZE = 2                    # processes of the live torchrun runs (on this CPU: gloo, one thread each)
NUM_SAMPLES = 2048                # training images of the live runs: 32 steps (the recipes use 16,000)
TIMING_ROUNDS = 8                 # interleaved rounds of the live channels-last timing
MEMORY_SIZE = 128                 # image side for the live ResNet-101 activation count (the benchmark: 224)
GPUS_PER_NODE = 8                 # for the printed GPU commands
NODES = 2                         # for the printed multi-node command
RENDEZVOUS = "node0.example.org:29500"  # host:port every node can reach (the first node's address)

# %%
seed_everything(SEED)
device = choose_device(DEVICE)
print(f"device: {device}, {torch.get_num_threads()} threads")
root = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
scaling = json.loads((root / "benchmarks" / "results" / "scaling.json").read_text())
machine = scaling["environment"]
print(f"stored by: {scaling['command']}, torch {machine['torch']}, {machine['cpu_count']} CPU cores, native bf16: {machine['bf16']}")

# %% [markdown]
# ## 1. What one data-parallel step does
#
# Data parallelism gives every device a full copy of the model and a different slice of the batch.
# Each computes the gradient of its slice's mean loss; averaging those gradients over the devices
# gives the gradient of the whole batch's mean loss, because the mean of equal-sized slices' means
# is the mean of the batch. So N devices take *the same step* one device would take on the whole
# batch, N times faster if the averaging is cheap.
#
# Check that claim on one CPU, with a network whose layers treat every image on its own (GroupNorm
# instead of BatchNorm): the gradient of the whole batch against the average of two halves'.

# %%
images = torch.rand(16, 3, 32, 32)
labels = torch.randint(0, 10, (16,))


def gradient(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def halves_gap(norm):
    torch.manual_seed(SEED)
    model = resnet18(num_classes=10, width=8, stem="small", norm=norm).train()
    whole = gradient(model, images, labels)
    halves = (gradient(model, images[:8], labels[:8]) + gradient(model, images[8:], labels[8:])) / 2
    return (whole - halves).abs().max().item() / whole.abs().max().item()


gap_group = halves_gap("group")
print(f"GroupNorm: largest gradient difference, whole batch vs mean of halves: {gap_group:.1e} (relative)")

# %% [markdown]
# A difference at the level of float32 rounding (the same sums, added in another order): the averaged
# halves are the whole batch.
# Now the same with BatchNorm, which normalizes each image with the mean and variance *of its
# batch*: each half sees other statistics than the whole batch.

# %%
gap_batch = halves_gap("batch")
print(f"BatchNorm: largest gradient difference, whole batch vs mean of halves: {gap_batch:.1e} (relative)")
checks.claim(gap_group < 1e-5 < gap_batch, "averaging halves reproduces the batch with GroupNorm, not with BatchNorm")

# %% [markdown]
# That is why DDP alone is *not* one big batch for a BatchNorm network: each device normalizes with
# the statistics of its own slice. With a large slice (64 images per GPU) the slice's statistics
# are close to the batch's and it hardly matters; with a few images per device they are noisy. On
# ImageNet, Wu & He (2018, Table 2) measured ResNet-50's error with BatchNorm rising from 23.6% at 32
# images per GPU to 34.7% at 2; notebook 05's small sweep (section 5) did not reproduce that trend,
# and says why. `torch.nn.SyncBatchNorm` computes the mean and variance over all devices' slices (one
# collective per layer in forward, gathering each device's statistics, and one in backward), so each
# layer normalizes with the global batch's
# statistics (Peng et al. 2018, "MegDet", sec 3.3). `fit(sync_bn=True)`, or `--sync-bn`, converts the
# model's BatchNorm layers for the run (on the CPU, where PyTorch's SyncBatchNorm does not run, with
# `tutorial_lib.norm.SyncBatchNorm`, written on `torch.distributed` collectives).
#
# **How DDP averages, cheaply.** `DistributedDataParallel` registers a hook on every parameter's
# gradient. Gradients are grouped into *buckets* of about 25 MB in reverse order of the parameters
# (the order backward produces them); as soon as a bucket's gradients are all computed, DDP starts
# an asynchronous all-reduce of it while backward goes on with earlier layers. Communication hides
# behind computation, and few large messages cost less than many small ones (Li et al. 2020,
# "PyTorch Distributed", VLDB, sec 3.2). For the full-width ResNet-101:

# %%
full = resnet101(num_classes=10)
gradient_bytes = sum(p.numel() * p.element_size() for p in full.parameters())
bucket_mb = 25  # DistributedDataParallel(bucket_cap_mb=25), the default
print(f"ResNet-101 (10 classes): {gradient_bytes / 2**20:.0f} MiB of float32 gradients per step, "
      f"about {math.ceil(gradient_bytes / (bucket_mb * 2**20))} buckets of {bucket_mb} MiB, all-reduced while backward runs")
del full

# %% [markdown]
# An all-reduce of B bytes over N devices by the ring algorithm sends about 2·B·(N-1)/N bytes from
# each device, nearly independent of N: adding GPUs adds compute without adding much traffic per GPU
# (Li et al. 2020, sec 2.3).
#
# ## 2. A real two-process run, from this notebook
#
# `torchrun` starts `WORLD_SIZE` processes that find each other through an address and port
# (here 127.0.0.1), and tells each its rank, its local rank (its number on this machine) and the world
# size in environment variables; the command line calls
# `torch.distributed.init_process_group` (gloo on a CPU, NCCL on GPUs) and `fit` wraps the model in
# DDP. `--batch-size` stays the *global* batch: each process takes its slice of every batch, so the
# steps, the learning rate and the schedule are those of one process.
#
# Three short runs of the `cpu-baseline` recipe on `NUM_SAMPLES` images, one epoch, in float32: one
# process, `WORLD_SIZE` processes with `--sync-bn`, and `WORLD_SIZE` processes without. Every process
# gets one thread, the one-process run too, so that all three do their arithmetic alike; their wall
# times on a shared 2-core CPU say nothing about speed on GPUs.

# %%
runs_dir = Path(tempfile.mkdtemp(prefix="10-scaling-"))
train = ["-m", "tutorial_lib", "train", "--dataset", "multiscale-digits", "--recipe", "cpu-baseline", "--num-samples",
         str(NUM_SAMPLES), "--epochs", "1", "--precision", "fp32", "--device", "cpu", "--no-progress", "--overwrite"]
# --standalone: one machine, the processes meet on localhost at a free port. GLOO_SOCKET_IFNAME keeps
# gloo on the loopback interface; one thread per process, as torchrun would set.
torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={WORLD_SIZE}"]
environment = dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo")
runs = {
    "1 process": ([sys.executable], [], "one"),
    f"{WORLD_SIZE} processes, --sync-bn": (torchrun, ["--sync-bn"], "sync"),
    f"{WORLD_SIZE} processes, plain BN": (torchrun, [], "plain"),
}
metrics = {}
for name, (launcher, flags, folder) in runs.items():
    start = time.perf_counter()
    result = subprocess.run([*launcher, *train, *flags, "--out", str(runs_dir / folder)], env=environment,
                            capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{result.stderr[-3000:]}")
    shown = "python" if launcher == [sys.executable] else f"torchrun --standalone --nproc-per-node={WORLD_SIZE}"
    print(f"$ {shown} {' '.join(train + flags)} --out {folder}")
    seconds = result.stdout.strip().splitlines()[-1].split("->")[0].strip()  # the line ends with the run folder
    print(f"{seconds}  [{time.perf_counter() - start:.0f} s with start-up]\n")
    metrics[name] = json.loads((runs_dir / folder / "metrics.json").read_text())

# %% [markdown]
# Each run's per-step losses against the one-process run's: the first step (the same initial weights
# for all three, so only the forward pass can differ) and the whole run. One short epoch is far
# from a trained network (the losses have barely left chance level); these runs show the mechanics.

# %%
one = metrics["1 process"]["history"]["step_loss"]
gaps = {name: [abs(a - b) for a, b in zip(run["history"]["step_loss"], one)] for name, run in metrics.items()}
print(f"{'run':<28}{'steps':>6}{'first loss':>11}{'last loss':>10}{'|gap| at step 1':>17}{'largest |gap|':>15}")
for name, run in metrics.items():
    losses = run["history"]["step_loss"]
    print(f"{name:<28}{len(losses):>6}{losses[0]:>11.4f}{losses[-1]:>10.4f}{gaps[name][0]:>17.1e}{max(gaps[name]):>15.1e}")
sync_name, plain_name = list(metrics)[1:]
checks.claim(gaps[sync_name][0] < 1e-5 < gaps[plain_name][0],
             "at the first step SyncBN reproduces one process's loss and plain BatchNorm does not")

fig, ax = plt.subplots(figsize=(6.5, 3))
for name in (sync_name, plain_name):
    ax.semilogy(range(1, len(one) + 1), [max(g, 1e-8) for g in gaps[name]], marker=".", label=name)
ax.set_xlabel("step")
ax.set_ylabel("|loss - 1-process loss|")
ax.set_title("two processes against one, step by step (values under 1e-8 drawn at 1e-8)")
ax.legend(fontsize=8)
plt.show()


# %% [markdown]
# Read the first step, then the curves. With SyncBN the first step gives the one-process loss to
# float32 rounding: the same batch, normalized with the same statistics. Without SyncBN the first
# step already differs, by what half-batch statistics change. After that *both* runs drift away
# from the one-process run, within a few steps, to gaps of the same size: a difference at rounding
# level does not stay there. The likely amplifier (not isolated here) is AdamW's early steps, which
# divide each gradient by its own running size, so that even a tiny gradient whose rounding differs
# takes a full-size step. `tests/test_distributed.py` is the control: at a small constant learning
# rate two processes with SyncBN stay within 2e-4 of one process's losses to the end and finish with
# its weights, and `--resume` continues a distributed run exactly. So SyncBN makes each step the
# one-process step; it does not make a chaotic early training reproducible across machines, which
# nothing does.
#
# ## 3. More devices, bigger batch: the learning-rate rule
#
# Keeping 128 images per GPU on 8 GPUs makes the global batch 1,024: 8 times fewer steps per epoch.
# Fewer, larger steps need a larger learning rate to make the same progress.
# Goyal et al. (2017, "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour", sec 2.1) give
# the **linear scaling rule**: *"When the minibatch size is multiplied by k, multiply the learning
# rate by k"*, since k small steps of size η move about as far as one step of kη over the same
# images, as long as the gradient changes slowly over those k steps. That fails at the start of
# training, when the network changes fast, so they add a **gradual warm-up** (sec 2.2): the rate
# climbs from η to kη over the first 5 epochs. With both, their ResNet-50 at a batch of 8,192 on 256
# GPUs reached 23.74% ± 0.09 top-1 error against 23.60% ± 0.12 for the batch-256 baseline (their
# Table 1); without warm-up, 24.84% ± 0.37.
#
# The linear rule is derived for SGD. For Adam-type optimizers, which divide each gradient by its
# running size, Malladi et al. (2022, "On the SDEs and Scaling Rules for Adaptive Gradient
# Algorithms") derive a **square-root rule**: k times the batch, sqrt(k) times the learning rate
# (their rule also adjusts Adam's betas, which `fit` keeps). The recipes use AdamW, so the commands
# below apply the square root.
#
# `fit` leaves the rule to you on purpose: `batch_size` is the global batch, and the recipe's
# learning rate is for the recipe's batch. Either rule is a first value to check on a validation
# split (notebook 08), not a guarantee. The one-cycle schedule of the recipes has its own warm-up
# (30% of training, notebook 08), counted as a share of the steps, so it needs no change.
#
# ## 4. Channels-last and compilation
#
# **Channels-last** (NHWC) stores the channels of a pixel next to each other. Convolution kernels
# on GPUs with tensor cores and oneDNN's on CPUs are written for it, so `fit(channels_last=True)`
# converts the weights and every batch; the result is the same up to rounding. Live, a `cpu-baseline`
# training step in both layouts, interleaved so both see the same machine load:

# %%
def make_train_step(layout):
    torch.manual_seed(SEED)
    options = dict(get_recipe("cpu-baseline")["model"])
    model = resnet18(num_classes=10, width=options["width"], stem=options["stem"]).train().to(memory_format=layout)
    x = torch.rand(64, 3, 32, 32).contiguous(memory_format=layout)
    y = torch.randint(0, 10, (64,))
    optimizer = torch.optim.AdamW(model.parameters())

    def step():
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


steps = {"NCHW": make_train_step(torch.contiguous_format), "NHWC": make_train_step(torch.channels_last)}
# The benchmarks' timer: A then B, then B then A, ...; 2 unmeasured rounds warm oneDNN's kernel caches.
sys.path.insert(0, str(root))  # the repository root, so that its benchmarks/ folder imports
from benchmarks.bench_resnet101_step import interleaved_times  # noqa: E402

times = interleaved_times(steps, 2, TIMING_ROUNDS, torch.device("cpu"))
ratios = sorted(a / b for a, b in zip(times["NHWC"], times["NCHW"]))
stored_ratio = scaling["channels_last"]["ratio_nhwc_over_nchw"]
print(f"median step: NCHW {1000 * statistics.median(times['NCHW']):.0f} ms, NHWC {1000 * statistics.median(times['NHWC']):.0f} ms")
print(f"ratio NHWC / NCHW: median {statistics.median(ratios):.2f} over {len(ratios)} paired rounds "
      f"(range {ratios[0]:.2f}-{ratios[-1]:.2f}); {stored_ratio:.2f} in the benchmark")

# %% [markdown]
# Read the ratio, not the milliseconds: below 1 means channels-last is faster. On this 2-core
# machine the gain is modest: compare the median with the range of the paired rounds, and with the
# benchmark's separate sitting. On GPUs with
# tensor cores PyTorch's memory-format tutorial recommends channels-last with mixed precision, and
# the recipes keep it on.
#
# **`torch.compile`** captures the Python forward pass as a graph (TorchDynamo) and generates fused
# kernels for it (TorchInductor): fewer passes over memory for the element-wise layers (BatchNorm,
# ReLU, the residual addition). It pays a compilation on the first step at each new input shape.
# Multi-resolution training changes the shape every step, which raises a choice: `compile="static"`
# (one graph per size: `dynamic=False`), or `compile="dynamic"` (one graph with the height and width
# as symbols). The benchmark measured both, on `cpu-baseline`'s network:

# %%
compiled = scaling["compile"]
print(f"one size (32 px): first step {compiled['first_step_s_one_size']} s (compilation), then "
      f"compiled / eager step time = {compiled['ratio_compiled_over_eager_32px']:.2f}")
print(f"sizes {compiled['sizes']}: first pass static {compiled['first_pass_s_static']} s, dynamic "
      f"{compiled['first_pass_s_dynamic']} s; steady state compiled / eager: static "
      f"{compiled['ratio_static_over_eager_sizes']:.2f}, dynamic {compiled['ratio_dynamic_over_eager_sizes']:.2f}")
saving_s = compiled["median_ms_32px"]["eager"] / 1000 * (1 - compiled["ratio_compiled_over_eager_32px"])  # per step
if saving_s > 0:
    print(f"the compilation is repaid after about {compiled['first_step_s_one_size'] / saving_s:.0f} steps")
else:
    print("no steady-state gain: the compilation is never repaid on this CPU")

# %% [markdown]
# On a CPU Inductor leaves the convolutions to oneDNN, the kernels eager mode calls too, and fuses
# only what lies between them; the printed ratios show no gain we can tell from noise on this
# machine (the benchmark ran beside other work: its absolute milliseconds moved between sections,
# only its paired ratios are comparable). On a
# GPU, measure it with `benchmarks/bench_scaling.py --only compile` before relying on it. With
# several training sizes, static compiles once per size (a few graphs, each specialized), dynamic
# once for all (kernels that cannot specialize on the size): the first-pass times above are the
# compilation cost of each choice.
#
# ## 5. Activation checkpointing: memory for time
#
# Backward needs, for most layers, the layer's input from the forward pass: autograd keeps them
# all until backward reaches them, and for a ResNet at ImageNet's size they, not the weights, fill
# the GPU. `tutorial_lib.speed.saved_activation_bytes` counts exactly what autograd keeps, through
# `torch.autograd.graph.saved_tensors_hooks`. The full-width ResNet-101 on a batch of 2 images of
# `MEMORY_SIZE` px:

# %%
torch.manual_seed(SEED)
r101 = resnet101(num_classes=10).train()
batch = torch.rand(2, 3, MEMORY_SIZE, MEMORY_SIZE)
weights_mib = sum(p.numel() * p.element_size() for p in r101.parameters()) / 2**20
kept_plain = saved_activation_bytes(r101, batch) / 2**20
undo = checkpoint_stages(r101)
kept_checkpointed = saved_activation_bytes(r101, batch) / 2**20
undo()
print(f"residual stages of {[len(stage) for _, stage in residual_stages(r101)]} blocks")
print(f"weights: {weights_mib:.0f} MiB; kept for backward at {MEMORY_SIZE} px, batch 2: {kept_plain:.0f} MiB plain, "
      f"{kept_checkpointed:.1f} MiB with the 4 stages checkpointed ({kept_checkpointed / kept_plain:.3f} of it)")

# %% [markdown]
# **Activation checkpointing** (Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost")
# keeps only each checkpointed segment's input and recomputes its inside during backward:
# `fit(activation_checkpointing=True)` wraps each residual stage in `torch.utils.checkpoint`. The
# price is one more forward pass of the stages, about a third more compute per step (a backward
# costs about two forwards). The benchmark measured it at ImageNet's size, torchvision's ResNet-101
# at 224 px with a batch of 8, the memory in a fresh process for each, the time over 3 paired rounds:

# %%
ck = scaling["checkpointing"]
print(f"kept for backward: {ck['saved_activation_mib_plain']} MiB plain, {ck['saved_activation_mib_checkpointed']} MiB checkpointed "
      f"(ratio {ck['ratio_saved_activations_checkpointed_over_plain']:.2f})")
print(f"peak resident memory of the process: {ck['peak_rss_mib_plain']} MiB plain, {ck['peak_rss_mib_checkpointed']} MiB checkpointed")
print(f"step time: {ck['median_ms']['plain'] / 1000:.1f} s plain, {ck['median_ms']['checkpointed'] / 1000:.1f} s checkpointed "
      f"(ratio {ck['ratio_time_checkpointed_over_plain']:.2f})")

# %% [markdown]
# One trap, which `checkpoint_stages` closes: recomputing a BatchNorm layer in training mode
# updates its running statistics a second time. PyTorch's checkpoint does not know about it; the
# recomputation here restores the buffers. Proof, two steps of a small ResNet-18 with and without
# checkpointing, compared exactly, running statistics included:

# %%
digits = load_dataset("multiscale-digits", "train", num_samples=128, image_size=32, seed=SEED)
torch.manual_seed(SEED)
plain = resnet18(num_classes=10, width=8, stem="small")
checkpointed = copy.deepcopy(plain)
fit(plain, digits, epochs=1, batch_size=64, progress=False)
fit(checkpointed, digits, epochs=1, batch_size=64, progress=False, activation_checkpointing=True)
a, b = plain.state_dict(), checkpointed.state_dict()
different = [key for key in a if not torch.equal(a[key], b[key])]
print(f"{len(a)} state_dict entries compared; different: {different or 'none'}")
checks.claim(not different, "checkpointed training ends with bit-identical weights and BatchNorm statistics")

# %% [markdown]
# The activation count fell to about an eighth, the process's peak memory far less (both printed
# above). The peak also holds what no setting removes: the weights, their gradients and AdamW's two
# moments (four copies of the weights), PyTorch's own libraries, and during backward the recomputed
# stage's activations with the gradients flowing through it; a CPU allocator also keeps memory it
# has freed. On a GPU, `torch.cuda.max_memory_allocated()` with and without the flag is the figure
# to compare.
#
# Checkpointing is what you turn on when a batch does not fit: it buys a larger per-device batch
# (fewer devices, or no SyncBN needed) for about a third more time. `compile` and checkpointing are
# not combined here: Dynamo cannot trace the recomputation that restores the statistics, and `fit`
# says so.
#
# ## 6. Mixed precision: bfloat16, and float16 with loss scaling
#
# Tensor cores multiply 16-bit numbers many times faster than 32-bit ones. Mixed precision runs
# convolutions and matrix products in 16 bits under `torch.autocast` and keeps the weights, the
# optimizer state and the reductions in float32. Which 16 bits matters:

# %%
for dtype in (torch.float32, torch.bfloat16, torch.float16):
    info = torch.finfo(dtype)
    print(f"{str(dtype):<16} largest {info.max:.3g}   smallest normal {info.tiny:.3g}   step after 1.0: {info.eps:.3g}")
tiny_gradient = torch.tensor(1e-8)
print(f"\na gradient of 1e-8 in float16: {tiny_gradient.half().item()}; "
      f"scaled by 2**16 first: {(tiny_gradient * 2**16).half().item():.3g} (divided back in float32: "
      f"{(tiny_gradient * 2**16).half().float().item() / 2**16:.3g})")

# %% [markdown]
# bfloat16 keeps float32's exponent range (its largest and smallest numbers) and gives up
# precision: `precision="bf16"` needs nothing else. float16 keeps more precision but its range
# stops near 6e-5 (smaller numbers lose bits, then become 0): small gradients vanish. **Loss
# scaling** (Micikevicius et al. 2018, "Mixed Precision Training", sec 3.2) multiplies the loss by a
# large factor before backward, so the gradients are large enough to survive in float16, then
# divides them in float32 before the step; `torch.amp.GradScaler` picks the factor, halving it and
# skipping the step whenever a gradient overflows to infinity. `precision="fp16"` does this: use it
# on GPUs without bfloat16 (before NVIDIA's Ampere), and `"bf16"` (or `"auto"`) on the others.
#
# On this CPU both are emulated, without native 16-bit arithmetic, and slower than float32:

# %%
mixed = scaling["precision"]
print(f"native bfloat16 on the benchmark's CPU: {mixed['native_bf16']}; cpu-baseline step time relative to float32: "
      f"bf16 {mixed['ratio_bf16_over_fp32']:.2f}, fp16 {mixed['ratio_fp16_over_fp32']:.2f}")

# %% [markdown]
# That is why every recipe says `precision="auto"`: bfloat16 where the hardware runs it natively,
# float32 elsewhere. `tests/test_speed.py` checks that float16 training with loss scaling learns,
# keeps float32 weights, stores the loss scale in the checkpoint and resumes exactly.
#
# ## 7. On GPUs: the commands
#
# The `gpu-imagenette-resnet101` recipe trains torchvision's full-width ResNet-101 on Imagenette
# (10 ImageNet classes, fast.ai) at 128 px for 5 epochs, with batch 128 on one GPU. The number to
# aim at is the fast.ai Imagenette leaderboard (https://github.com/fastai/imagenette) at 128 px and 5
# epochs: 87.4%, by an `xse_resnext50` with a tuned recipe. A plain ResNet-101 from scratch should
# land below it: this series has not measured it (no GPU was lent to it), so take the recipe as a
# starting point. Its code path, JPEG folder to checkpoint, two processes and float16 included, is
# tested on the CPU (`tests/test_imagenette.py`). The commands, with the linear scaling rule applied
# to the recipe:

# %%
gpu = get_recipe("gpu-imagenette-resnet101")["fit"]
base = "-m tutorial_lib train --dataset imagenette --recipe gpu-imagenette-resnet101 --download --workers 8"
gpus = GPUS_PER_NODE * NODES
global_batch = gpu["batch_size"] * GPUS_PER_NODE
scaled_lr = gpu["lr"] * math.sqrt(GPUS_PER_NODE)  # square-root rule for AdamW
print("# one GPU")
print(f"python {base} --device cuda --out runs/imagenette")
print(f"\n# one machine, {GPUS_PER_NODE} GPUs: {gpu['batch_size']} images per GPU, global batch {global_batch}, "
      f"learning rate x sqrt({GPUS_PER_NODE})")
print(f"torchrun --nproc-per-node={GPUS_PER_NODE} {base} --device cuda --batch-size {global_batch} "
      f"--lr {scaled_lr:.3g} --out runs/imagenette-{GPUS_PER_NODE}gpu")
print(f"\n# {NODES} machines x {GPUS_PER_NODE} GPUs, the same global batch {global_batch}: {global_batch // gpus} images "
      f"per GPU; run the same command on every machine")
print(f"torchrun --nnodes={NODES} --nproc-per-node={GPUS_PER_NODE} --rdzv-id=imagenette --rdzv-backend=c10d "
      f"--rdzv-endpoint={RENDEZVOUS} {base} --device cuda --batch-size {global_batch} "
      f"--lr {scaled_lr:.3g} --sync-bn --out runs/imagenette-{gpus}gpu")


# %% [markdown]
# The one-machine command keeps the recipe's images per GPU and applies the square-root rule. The
# multi-node command keeps that global batch, with fewer images per GPU, so the learning rate stays,
# and adds `--sync-bn`, as section 1 suggests for smaller per-device batches. Imagenette is too small to
# need 16 GPUs; the syntax is what carries over to ImageNet.
#
# Notes for those commands. `--download` fetches Imagenette once (about 100 MB) into the data
# folder; every machine of a multi-node run needs it (or a shared `TUTORIAL_DATA_DIR`). `--workers`
# decodes JPEGs in parallel processes, which a GPU needs to be kept busy. Add
# `--compile static` and `--activation-checkpointing` (one or the other) after measuring them; the
# run folder is written by the first process only, and `--resume` continues a run with the same
# number of processes and the same batch.
#
# ## Exercises
#
# ### Exercise 1: move a recipe to more devices
#
# Write `scaled_run(fit_settings, world_size, per_rank_batch)`: a copy of a recipe's fit settings
# for `world_size` processes holding `per_rank_batch` images each, with the global batch and the
# learning rate scaled by the rule of the recipe's optimizer (section 3: linear for `"sgd"`, square
# root for `"adamw"`, which is also what a missing `optimizer` means), every other setting kept.
# The batch may also shrink (fewer devices than the recipe assumed). Before you run it: the
# `cpu-baseline` recipe (AdamW, batch 64) on 8 GPUs of 32 images each, what learning rate?

# %%
def scaled_run(fit_settings, world_size, per_rank_batch):
    ### BEGIN SOLUTION
    scaled = dict(fit_settings)
    scaled["batch_size"] = world_size * per_rank_batch
    k = scaled["batch_size"] / fit_settings["batch_size"]
    rule = k if fit_settings.get("optimizer", "adamw") == "sgd" else math.sqrt(k)
    scaled["lr"] = fit_settings["lr"] * rule
    return scaled
    ### END SOLUTION


mine = scaled_run(get_recipe("cpu-baseline")["fit"], 8, 32)
print(f"cpu-baseline on 8 x 32 images: batch {mine['batch_size']}, lr {mine['lr']:g}")

# %% tags=["nbval-check-output"]
checks.check_scaled_run_function(scaled_run)


# %% [markdown]
# ### Exercise 2: where does the memory go?
#
# Checkpointing all four stages is one choice; checkpointing only the stage that keeps the most is
# cheaper. Write `stage_memory(model, images)`: a dict from each residual stage's name (as
# `tutorial_lib.speed.residual_stages(model)` names them) to the bytes autograd keeps for that
# stage alone. `saved_activation_bytes` counts any module on its input, but a stage's input exists
# only inside the model's forward pass: you need a way to see it there (PyTorch's module hooks are
# one). Predict first: which stage of a ResNet-101 keeps the most, the first (largest feature maps)
# or the third (23 blocks)?

# %%
def stage_memory(model, images):
    ### BEGIN SOLUTION
    inputs = {}
    hooks = [stage.register_forward_pre_hook(lambda module, args, name=name: inputs.__setitem__(name, args[0]))
             for name, stage in residual_stages(model)]
    with torch.no_grad():
        model(images)
    for hook in hooks:
        hook.remove()
    return {name: saved_activation_bytes(stage, inputs[name], loss=False) for name, stage in residual_stages(model)}
    ### END SOLUTION


# %% tags=["nbval-check-output"]
checks.check_stage_memory_function(stage_memory)

# %% [markdown]
# The full-width ResNet-101 of section 5, stage by stage:

# %%
per_stage = {name: value / 2**20 for name, value in stage_memory(r101, batch).items()}
blocks = {name: len(stage) for name, stage in residual_stages(r101)}
fig, ax = plt.subplots(figsize=(6, 3))
ax.bar(list(per_stage), list(per_stage.values()), color="tab:blue")
for i, (name, value) in enumerate(per_stage.items()):
    ax.text(i, value, f"{blocks[name]} blocks", ha="center", va="bottom", fontsize=8)
ax.set_ylabel("MiB kept for backward")
ax.set_title(f"ResNet-101, batch 2 at {MEMORY_SIZE} px: activation memory by stage")
ax.margins(y=0.15)
plt.show()
units = {name: count / 2**i for i, (name, count) in enumerate(blocks.items())}  # a block keeps half of the stage before's
print("expected, in first-stage blocks:", {name: round(unit, 3) for name, unit in units.items()})
print("measured MiB per expected unit:", {name: round(per_stage[name] / units[name], 1) for name in units})
largest = max(per_stage, key=per_stage.get)
print(f"largest: {largest}, {per_stage[largest]:.0f} MiB of the stages' {sum(per_stage.values()):.0f} MiB "
      f"(share {per_stage[largest] / sum(per_stage.values()):.2f}); the whole model keeps {kept_plain:.0f} MiB")

# %% [markdown]
# Each stage keeps about (blocks) x (pixels) x (channels): every stage halves the side (4 times fewer
# pixels) and doubles the width, so a block keeps half of what a block of the stage before keeps.
# In units of a first-stage block, (blocks) / 2^(stage - 1): the printed expectation. The measured
# MiB per unit are of one size only roughly (the stem's pooling, the first block's projection and
# the downsampling blocks do not follow the rule), but the ranking holds: the third stage's 23
# blocks outweigh the first stage's large maps. The printed share is that stage's part of what the
# four stages keep: checkpointing it alone saves about that share of what checkpointing all four saves.
#
# ## Summary
#
# - Data parallelism averages the gradients of equal slices, which *is* the whole batch's gradient,
#   except where layers mix the images of a batch: BatchNorm. SyncBatchNorm restores the
#   equivalence step by step: a two-process run's first step gave one process's loss to rounding
#   with it and differed without it (section 2 prints both); after that early training amplified
#   every difference, and the low-learning-rate control in `tests/test_distributed.py` stays equal.
# - DDP overlaps its all-reduces with backward, in buckets; `fit` keeps `batch_size` global, so a run
#   is the same run on any number of processes. Growing the batch is a separate decision, with a
#   learning-rate rule (linear for SGD, Goyal et al. 2017; square root for Adam-type optimizers,
#   Malladi et al. 2022) and a warm-up.
# - Channels-last, `torch.compile`, checkpointing and mixed precision change how a step runs, not
#   what it computes. Their value depends on the hardware: on this CPU the measured gains are small
#   or negative (sections 4 and 6 print them); on GPUs measure them with the same benchmark script.
# - Activation checkpointing trades about a third more compute for most of the activation memory,
#   exactly, once BatchNorm's double update is handled.
#
# ## Quiz
#
# 1. Two GPUs each compute the mean loss over 64 images and DDP averages the gradients. When is
#    that exactly the gradient of the 128-image mean loss, and when not?
# 2. Why does DDP start all-reducing the gradients of the *last* layers first?
# 3. You move a recipe from 1 GPU with batch 128 and lr 0.1 (SGD) to 4 GPUs with 128 each. Which
#    batch and learning rate does the rule give, what else should change, and what would the
#    learning rate be with AdamW?
# 4. Why can float16 training without loss scaling stop learning while bfloat16 does not?
# 5. Checkpointing every residual stage of a ResNet: roughly how much slower is a step, and why
#    does it not slow down evaluation?
#
# <details><summary>Answers</summary>
#
# 1. When every layer treats each image on its own (GroupNorm, LayerNorm, no normalization): the
#    average of the two slices' mean gradients is the mean over 128. With BatchNorm each slice is
#    normalized with its own statistics, so the forward passes differ (section 1 measured it);
#    SyncBatchNorm makes them equal.
# 2. Backward produces gradients from the last layer to the first; the last layers' bucket is
#    complete first, so its all-reduce can run while backward computes the rest.
# 3. Global batch 4 x 128, lr 4 x 0.1, with a gradual warm-up to it over the first epochs (Goyal et
#    al. use 5). SyncBN matters only if the per-GPU batch is small; at 128 it is not needed. With
#    AdamW, the square-root rule: lr x sqrt(4), twice the rate.
# 4. float16's smallest normal number is about 6e-5 (section 6 prints it); smaller gradients lose
#    precision and then become zero, so the weights stop receiving updates. bfloat16 has float32's
#    range: the same gradients stay representable, only less precise.
# 5. About one more forward pass of the stages per step: roughly a third more (a backward costs
#    about two forwards); section 5 prints the measured ratio. Evaluation keeps no activations for
#    backward, and `checkpoint_stages` runs the stages plainly under `torch.no_grad()` or in eval mode.
#
# </details>
#
# ## Further reading
#
# - P. Goyal et al., "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour", 2017 (linear
#   scaling rule, gradual warm-up, Table 1).
# - S. Malladi, K. Lyu, A. Panigrahi, S. Arora, "On the SDEs and Scaling Rules for Adaptive Gradient
#   Algorithms", NeurIPS 2022 (the square-root rule for Adam).
# - S. Li et al., "PyTorch Distributed: Experiences on Accelerating Data Parallel Training", VLDB
#   2020 (DDP's buckets and overlap).
# - C. Peng et al., "MegDet: A Large Mini-Batch Object Detector", CVPR 2018 (cross-GPU BatchNorm).
# - T. Chen, B. Xu, C. Zhang, C. Guestrin, "Training Deep Nets with Sublinear Memory Cost", 2016
#   (activation checkpointing).
# - P. Micikevicius et al., "Mixed Precision Training", ICLR 2018 (loss scaling).
# - PyTorch documentation: "Getting Started with Distributed Data Parallel", `torchrun`
#   (Elastic Launch), `torch.compile`, "Automatic Mixed Precision", "Channels Last Memory Format".
