# %% [markdown]
# # 00 · Setup: an environment you can trust
#
# Every later notebook measures something: a parameter count, a training time, an accuracy. A
# measurement is only worth as much as the record of what produced it, so the series starts by
# building and *checking* the environment, the same way on a laptop, on a GPU box or on Colab.
#
# **Learning objectives.** After this notebook you can
#
# 1. install the series with one command and say what each dependency is for;
# 2. print an environment report (versions, device, threads) and read it;
# 3. make a run repeatable with `seed_everything`, and know what it does not cover;
# 4. re-run any notebook with other parameters, from Jupyter or from the command line (papermill);
# 5. describe the embedded `multiscale-digits` dataset and its object-size splits, and find your way
#    around the series: notebooks, the `tutorial_lib` package, tests.
#
# **Prerequisites.** Python 3.10+, `make`, and basic Python. No GPU needed.
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
# Every notebook starts the same way: import from `tutorial_lib`, seed, choose the device. The
# package is the single source of truth; notebooks import it rather than copy code.

# %%
import importlib.metadata
import time

import torch

from tutorial_lib import checks
from tutorial_lib.env import choose_device, environment_report, format_report, seed_everything, set_threads

# %% [markdown]
# ## Parameters
#
# The next cell is tagged `parameters` (the papermill convention): every knob of the notebook lives
# there, in capitals, and nothing below changes them. The defaults run on a 2-core CPU. On a GPU,
# set `DEVICE = "cuda"`; nothing else in this notebook needs to change.

# %% tags=["parameters"]
SEED = 0            # one integer drives every random generator
DEVICE = None       # None: automatic (cuda > mps > cpu), or "cpu", "cuda", "mps"
MATMUL_SIZE = 512   # size of the square matrices used to time the CPU threads
IMAGE_SIZE = 64     # side of the embedded dataset's images, in pixels

# %%
seed_everything(SEED)
device = choose_device(DEVICE)
print(f"device: {device}")

# %% [markdown]
# ## 1. The environment report
#
# `environment_report()` collects what produced a result: interpreter and library versions, the
# device, the number of CPU threads PyTorch uses, and whether the embedded dataset can be built
# offline. The same report is written into every training run's `metrics.json`, and
# `python -m tutorial_lib env` prints it in a terminal.

# %%
report = environment_report()
print(format_report(report))


# %% [markdown]
# Check it before going on. The series needs Python 3.10+, PyTorch 2.4+ and torchvision 0.19+, and
# the embedded dataset must be buildable without a network.

# %% tags=["nbval-check-output"]
def version_tuple(version: str) -> tuple[int, int]:
    major, minor = version.split("+")[0].split(".")[:2]
    return int(major), int(minor)


assert version_tuple(report["python"]) >= (3, 10), "Python 3.10 or newer is needed"
assert version_tuple(report["torch"]) >= (2, 4), "PyTorch 2.4 or newer is needed: pip install -U torch"
assert version_tuple(report["torchvision"]) >= (0, 19), "torchvision 0.19 or newer is needed"
assert report["embedded_data_offline"], report["embedded_data_detail"]
print("environment OK")

# %% [markdown]
# ## 2. What each dependency is for
#
# `pyproject.toml` declares lower bounds, not pins, so a learner on Colab or a laptop gets a build
# that matches their machine. `make lab` and `make test` install exactly these into `.venv`.
#
# | package | its job in the series |
# |---|---|
# | `torch` | tensors, autograd, layers, optimizers: everything that trains |
# | `torchvision` | the reference ResNets we prove our model equal to; dataset classes for CIFAR-10 and Imagenette; resizing transforms |
# | `timm` | a second, independent reference implementation (ResNet, Res2Net) |
# | `numpy` | fast array work while generating the embedded dataset |
# | `scikit-learn` | ships the real handwritten digits (`load_digits`) the embedded dataset is made of |
# | `scikit-image` | ships the real photos and textures used as backgrounds, and the photo in notebook 01 |
# | `matplotlib` | every plot |
# | `tqdm`, `ipywidgets` | progress bars, in a terminal and in Jupyter |
# | `optuna` | the small hyperparameter search in notebook 08 |
# | `safetensors` | reading weight files in the safe format model hubs use (notebook 04's `load_weights`) |
# | `jupyterlab`, `ipykernel` | where you read and run the notebooks |
# | `papermill`, `nbformat` | running a notebook with other parameters, and reading notebooks from code (section 5) |
# | `pytest`, `nbval`, `jupytext`, `ruff`, ... (the `dev` extra, for `make test`) | the tests: unit tests, notebooks checked cell by cell, notebooks paired with text files, the linter |
#
# The installed versions, read from the package metadata:

# %%
requirements = importlib.metadata.requires("tutorial_lib")
runtime = sorted(r.split(">")[0].split("=")[0].split(";")[0].strip() for r in requirements if "extra ==" not in r)
for name in runtime:
    print(f"{name:<14} {importlib.metadata.version(name)}")

# %% [markdown]
# ### Correcting the source text's install list
#
# The text this series grew from told readers to `pip install tensorflow google-cloud-images`.
# Both are wrong for this series:
#
# - **TensorFlow** is not used anywhere: the series is PyTorch only, and installing a second deep
#   learning framework costs gigabytes for nothing.
# - **`google-cloud-images` does not exist** on PyPI; `pip` fails with *"No matching distribution
#   found"*. Nothing in image classification needs a cloud client.
#
# The check below reads the dependency list the installer actually used.

# %% tags=["nbval-check-output"]
declared = {r.split(">")[0].split("=")[0].split(";")[0].strip().lower() for r in requirements}
assert "tensorflow" not in declared and "google-cloud-images" not in declared
assert {"torch", "torchvision"} <= declared
print("PyTorch only; no tensorflow, no google-cloud-images")


# %% [markdown]
# ## 3. Devices and threads
#
# `choose_device()` picks CUDA, then Apple's MPS, then the CPU. You can force a choice with an
# argument (`choose_device("cpu")`) or, without touching any notebook, with the environment variable
# `TUTORIAL_DEVICE=cpu`.
#
# On a CPU, PyTorch splits large operators across threads. Timing one matrix product with one thread
# and with all of them shows what that buys on *your* machine (on a GPU the question does not arise).

# %%
def time_matmul(threads: int, size: int = MATMUL_SIZE, repeats: int = 5) -> float:
    # Median of a few runs: a single timing is at the mercy of whatever else the machine is doing.
    previous = set_threads()
    set_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    set_threads(previous)
    return sorted(times)[len(times) // 2]


all_threads = set_threads()
one, many = time_matmul(1), time_matmul(all_threads)
print(f"1 thread: {one * 1e3:.1f} ms, {all_threads} threads: {many * 1e3:.1f} ms, speed-up {one / many:.2f}x")

# %% [markdown]
# ## 4. Seeds: what repeats and what does not
#
# `seed_everything(seed)` seeds Python's `random`, NumPy and PyTorch (CPU and every GPU) from one
# integer. The same seed gives the same draws:

# %% tags=["nbval-check-output"]
seed_everything(SEED)
first = torch.randn(3)
seed_everything(SEED)
second = torch.randn(3)
assert torch.equal(first, second)
print("same seed, same numbers:", torch.equal(first, second))

# %% [markdown]
# What a seed does *not* cover: some GPU kernels (cuDNN's convolution algorithms, atomic adds) are
# non-deterministic by design. `seed_everything(seed, deterministic=True)` asks PyTorch for
# deterministic kernels, at some speed cost on a GPU. On a CPU the kernels this series uses are
# already deterministic, which is why its tests can demand *bit-identical* results.
#
# ### Exercise 1: how big is a batch?
#
# Before training anything, estimate memory. Compute how many **mebibytes** (MiB, 2**20 bytes) one
# batch of 128 RGB images of 64 x 64 pixels takes as `float32` tensors, and store it in `batch_mib`.

# %%
### BEGIN SOLUTION
batch_mib = 128 * 3 * 64 * 64 * 4 / 2**20
### END SOLUTION
print(f"{batch_mib:.2f} MiB")

# %%
checks.check_batch_bytes(batch_mib, batch=128, channels=3, size=64, bytes_per_value=4)

# %% [markdown]
# ## 5. Running a notebook with other parameters
#
# Because every knob sits in the tagged `parameters` cell, any notebook can be re-run with other
# values without editing it. In Jupyter, change the cell and *Run All*. From a terminal, use
# [papermill](https://papermill.readthedocs.io), which injects a new cell after the tagged one:
#
# ```bash
# papermill --help-notebook notebooks/04_building_resnet101.ipynb   # every knob: default and comment
# papermill notebooks/04_building_resnet101.ipynb /tmp/04_gpu.ipynb -p DEVICE cuda
# ```
#
# Here it is for real, on a two-cell notebook written to a temporary folder: the papermill command
# line runs it in a fresh kernel with `GREETING` overridden, exactly as you would from a terminal.

# %%
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

with tempfile.TemporaryDirectory() as folder:
    source, result = Path(folder, "demo.ipynb"), Path(folder, "demo_out.ipynb")
    demo = nbformat.v4.new_notebook()
    demo.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    demo.cells = [
        nbformat.v4.new_code_cell('GREETING = "hello"', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print(GREETING.upper())"),
    ]
    nbformat.write(demo, source)
    command = [sys.executable, "-m", "papermill", str(source), str(result), "-p", "GREETING", "multi-scale"]
    subprocess.run(command, check=True, capture_output=True)
    executed = nbformat.read(result, as_version=4)

printed = executed.cells[-1].outputs[0]["text"]
assert printed == "MULTI-SCALE\n"
print("papermill injected the parameter; the notebook printed:", printed.strip())

# %% [markdown]
# ## 6. A tour of the data
#
# The experiments in this series use an **embedded** dataset, `multiscale-digits`, that is built on
# your machine in a few seconds with no network: real handwritten digits (scikit-learn's
# `load_digits`, 8 x 8 pixels each) pasted onto crops of real photos and textures that scikit-image
# ships. What makes it useful is that the *object size* is controlled: the training split shows digits
# of one range of sizes, and two test splits show digits clearly smaller and clearly larger than any
# seen in training. That is exactly what a multi-scale network has to cope with, and what notebooks
# 06 and 07 measure.
#
# The first load generates and caches the images under `data/`; later loads read the cache.

# %%
from tutorial_lib.data import DIGIT_SPLITS, load_dataset

start = time.perf_counter()
splits = {name: load_dataset("multiscale-digits", name, seed=SEED, image_size=IMAGE_SIZE) for name in DIGIT_SPLITS}
print(f"loaded {sum(len(d) for d in splits.values()):,} images in {time.perf_counter() - start:.1f} s")
for name, dataset in splits.items():
    sizes = dataset.object_sizes
    print(f"{name:<11} {len(dataset):>6,} images, object size {int(sizes.min())}-{int(sizes.max())} px")

# %% tags=["nbval-check-output"]
image, label = splits["train"][0]
assert image.shape == (3, IMAGE_SIZE, IMAGE_SIZE) and image.dtype == torch.float32
assert 0.0 <= image.min() and image.max() <= 1.0 and 0 <= label <= 9
train_sizes, small_sizes, large_sizes = (splits[s].object_sizes for s in ("train", "test-small", "test-large"))
assert small_sizes.max() < train_sizes.min() and train_sizes.max() < large_sizes.min()
print("image:", tuple(image.shape), image.dtype, "| label:", label, "| size ranges are disjoint:", True)

# %% [markdown]
# Each row below is one split, examples sorted by object size; the title of each image gives its
# label and the digit's side in pixels. The image size is the same everywhere: only the object moves.

# %%
import matplotlib.pyplot as plt

from tutorial_lib.viz import plot_object_sizes, show_splits

show_splits(splits, n=10, seed=SEED)
plt.show()

# %%
plot_object_sizes(splits, title="object sizes per split")
plt.show()

# %% [markdown]
# Two more facts worth checking, because they decide what a test accuracy means: the test splits use
# **different handwritten digits** from the training split (a model cannot pass by memorising the
# shapes of particular digits), and the same seed gives the **same bytes** every time (so every number
# in the series can be reproduced).

# %% tags=["nbval-check-output"]
train_digits = set(splits["train"].digit_indices.tolist())
test_digits = set().union(*(set(splits[s].digit_indices.tolist()) for s in ("test", "test-small", "test-large")))
assert not train_digits & test_digits
again = load_dataset("multiscale-digits", "test", seed=SEED, image_size=IMAGE_SIZE)
assert torch.equal(again.images, splits["test"].images)
print(f"{len(train_digits)} training digits, {len(test_digits)} different test digits; reload identical: True")

# %% [markdown]
# ## 7. How the series is laid out
#
# | where | what |
# |---|---|
# | `notebooks/NN_topic.ipynb` | the lessons, in order; each committed *executed*, so you can read results before running |
# | `tutorial_lib/` | the package the notebooks import: one module per concept (`env`, `data`, `layers`, `blocks`, `norm`, `models`, `cost`, `train`, `multiscale`, `viz`, `checks`, `cli`) |
# | `tests/` | unit tests, the notebook policy test, and nbval, which re-runs every notebook and compares the cells whose output is exact |
# | `benchmarks/` | scripts that print measured ratios (each prints its figure last) |
# | `data/` | generated caches, git-ignored; nothing downloaded is ever committed |
#
# Two commands do everything: `make lab` (set up if needed, open JupyterLab) and `make test`
# (set up if needed, run every test and every notebook). The same code runs from a terminal:
# `python -m tutorial_lib env`, and, from notebook 02 on, `python -m tutorial_lib train ...`.
#
# Each notebook has the same shape: why, objectives, setup, **one parameters cell**, short sections
# each followed by a check, exercises with check cells, then a summary, a quiz and further reading.

# %% [markdown]
# ## Summary
#
# - One command installs the series (`make lab`), one tests it (`make test`); both are idempotent.
# - The environment report records versions, device and threads; every result should travel with it.
# - `seed_everything` makes runs repeatable; bit-exact GPU runs also need `deterministic=True`.
# - Every notebook is re-runnable with other parameters, from Jupyter or with papermill.
# - `multiscale-digits` controls object size: `test-small` and `test-large` hold digits outside the
#   training range, drawn from handwriting never seen in training.
# - The install list of the source text was wrong: PyTorch only, and `google-cloud-images` does not exist.
#
# ## Quiz
#
# 1. You set `TUTORIAL_DEVICE=cpu` on a GPU machine. Which device does `choose_device()` return?
# 2. Why does the series declare `torch>=2.4` rather than `torch==2.4.0`?
# 3. Two runs with the same seed on a GPU give slightly different losses. Name one cause and one fix.
#
# <details><summary>Answers</summary>
#
# 1. The CPU: the environment variable overrides the automatic choice (an explicit argument overrides both).
# 2. A pin would force one build on every machine; a lower bound lets pip pick the build that matches
#    the learner's platform (CPU, CUDA version, Apple silicon) while guaranteeing the APIs used.
# 3. Non-deterministic GPU kernels (cuDNN algorithm choice, atomic additions); use
#    `seed_everything(seed, deterministic=True)`, at some speed cost.
# </details>
#
# ## Further reading
#
# - PyTorch, *Reproducibility* notes: what seeds do and do not control.
# - Papermill documentation, *Parameterize*: the `parameters` tag convention.
# - nbval documentation: how notebooks are tested cell by cell.
