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
# Every notebook starts the same way: import from `tutorial_lib`, seed, choose the device. The
# package is the single source of truth; notebooks import it rather than copy code.

# %%
import importlib.metadata
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import nbformat
import torch

from tutorial_lib import checks
from tutorial_lib.data import DIGIT_SPLITS, load_dataset
from tutorial_lib.env import choose_device, environment_report, format_report, seed_everything, set_threads
from tutorial_lib.viz import plot_object_sizes, show_splits

default_threads = torch.get_num_threads()   # before this notebook changes it, for section 1

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
REPEATS = 9         # timings per measurement; the median is reported

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
# `python -m tutorial_lib env` prints it in a terminal. The cell below leaves the `platform` entry
# (operating system, kernel release, C library) out of what it prints, because a stored notebook
# travels to every reader and that string describes only the machine that ran it; `report["platform"]`
# holds it, and `metrics.json` keeps it.

# %%
report = environment_report()
shown = {key: value for key, value in report.items() if key != "platform"}
print(format_report(shown))
print(f"{'system':<21} : {platform.system()} (the full platform string, with the kernel release, is in the report)")

# %% [markdown]
# Two lines of the report are easy to misread: `cpu_count` is the number of *logical* CPUs the
# operating system offers (a hyper-threaded core counts twice), while `threads` is how many threads
# PyTorch will use for one operator. They need not agree; the next cell says why on this machine.

# %%
omp = os.environ.get("OMP_NUM_THREADS")
print(f"PyTorch uses {default_threads} thread(s); the operating system offers {os.cpu_count()} logical CPUs.")
if omp:
    print(f"The environment sets OMP_NUM_THREADS={omp}, and PyTorch follows it (a shared machine often sets it "
          "so that programs do not fight over cores).")
else:
    print("OMP_NUM_THREADS is not set, so PyTorch chose its default: one thread per physical core it detects.")


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
# ### Correcting a widely copied install list
#
# A widely copied blog post on "Multi-scale ResNet-101", whose false claims this series quotes and
# measures as it goes, lists two packages to install: `tensorflow` and `google-cloud-images`.
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
# On a CPU, PyTorch can split one operator across threads. Whether a second thread pays depends
# on two things, and timing shows which case *your* machine is in (on a GPU the question does not arise):
#
# - **Work per operator.** Each extra thread has to be woken, handed its share, and waited for at
#   the end. That costs microseconds, whatever the size. A 512 × 512 matrix product (134.2 million
#   multiply-adds, the MMACs column below) amortises it; a 64 × 64 one (0.3 million) finishes in
#   about the time the hand-over takes, so a second thread can make it *slower*.
# - **A free core.** A second thread only runs in parallel if a second core is idle. On a machine
#   shared with other programs (a browser, another notebook, a test run), the second thread often
#   waits for a core another program holds, and the operator waits for its slowest thread. The
#   operating system's *load average* (the number of programs that wanted a CPU, averaged over the
#   last minute) tells whether that was the case; the measurement prints it.

# %% [markdown]
# ### Exercise 1a: a timer you can trust
#
# Timing is noisy: a single timing is at the mercy of whatever else the machine does in that
# millisecond, and the first call of an operation also pays for memory allocation. Write
# `median_time(work, repeats)` for any operation: `work` is a function without arguments. Call it
# once without timing it (the warm-up), then time `repeats` calls one by one with
# `time.perf_counter()` and return the **median** of those timings, in seconds (why the median and
# not the mean or the fastest call? the check tells you if you pick another). The check feeds it an
# operation whose first call takes 40 ms and whose later calls take between 2 and 60 ms.

# %%
def median_time(work, repeats: int) -> float:
    ### BEGIN SOLUTION
    work()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]
    ### END SOLUTION


# %%
checks.check_median_time_function(median_time)


# %% [markdown]
# The measurements below use the same recipe, but keep all `REPEATS` timings so that the table can
# show their spread: the median, and the **interquartile range** (the middle half of the timings,
# written `[q1-q3]`). A difference between one thread and several is called only when the two
# ranges do not overlap; otherwise it is within the noise of this machine. The matrix sizes go from
# tiny to `MATMUL_SIZE`; the load average is read just before.

# %%
def quartiles(work, threads: int, repeats: int = REPEATS) -> tuple[float, float, float]:
    """(q1, median, q3) seconds of `repeats` calls of `work` with `threads` threads, after a warm-up call."""
    previous = set_threads()
    set_threads(threads)
    try:
        work()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            work()
            times.append(time.perf_counter() - start)
    finally:
        set_threads(previous)
    q1, median, q3 = statistics.quantiles(times, n=4)
    return q1, median, q3


def verdict(one: tuple[float, float, float], many: tuple[float, float, float]) -> str:
    """'faster' / 'slower' when the interquartile ranges do not overlap, else 'within noise'."""
    return "faster" if many[2] < one[0] else "slower" if many[0] > one[2] else "within noise"


def load_average() -> float | None:
    """The operating system's 1-minute load average, or None where it does not exist (Windows)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def ms(q: tuple[float, float, float]) -> str:
    return f"{q[1] * 1e3:7.3f} [{q[0] * 1e3:.3f}-{q[2] * 1e3:.3f}]"


cpus = os.cpu_count() or 1        # logical CPUs: the most threads that can run at once
load = load_average()
print(f"load average before timing: {'n/a' if load is None else f'{load:.1f}'} (logical CPUs: {cpus})")
matrix_sizes = sorted({64, 128, 256, MATMUL_SIZE})
timed, speedups, verdicts = {}, {}, {}
print(f"{'size':>5}{'MMACs':>8}   {'1 thread, ms [q1-q3]':<26}{f'{cpus} threads, ms [q1-q3]':<26}{'speed-up':>8}")
for size in matrix_sizes:
    a, b = torch.randn(size, size), torch.randn(size, size)
    one, many = quartiles(lambda a=a, b=b: a @ b, 1), quartiles(lambda a=a, b=b: a @ b, cpus)
    timed[size], speedups[size], verdicts[size] = (one, many), one[1] / many[1], verdict(one, many)
    print(f"{size:>5}{size**3 / 1e6:>8.1f}   {ms(one):<26}{ms(many):<26}{speedups[size]:>7.2f}x  {verdicts[size]}")

# %% [markdown]
# What the table says on this machine, worded by the code from the numbers above. A load average
# counts this notebook too, so with *n* logical CPUs a load above *n* − 0.5 means that the other
# programs alone kept more than half a CPU busy on average, and often took the CPU the extra
# thread needed:

# %%
smallest, largest = matrix_sizes[0], matrix_sizes[-1]
busy = load is not None and load > cpus - 0.5
for size in matrix_sizes:
    print(f"{size} x {size}: {cpus} threads {verdicts[size]} against 1 (median ratio {speedups[size]:.2f}x)")
if cpus == 1:
    print("This machine offers one logical CPU, so there is no second thread to gain from.")
elif busy:
    print(f"The load average ({load:.1f}) exceeded {cpus - 0.5} with {cpus} logical CPUs: other programs were "
          "running, so the extra threads often waited for a CPU (the 'free core' condition failed). These "
          "timings describe a busy machine; re-run this cell when the machine is quiet to test the work-per-operator "
          "model.")
elif verdicts[largest] == "faster" and verdicts[smallest] != "faster":
    print(f"As the model predicts, the gain comes with the work per operator: the {largest} x {largest} product "
          f"got faster, the {smallest} x {smallest} one did not (the hand-over cost weighs most on it).")
elif verdicts[largest] == "faster":
    print(f"Every size down to {smallest} x {smallest} got faster: on this machine the hand-over cost is small "
          "even next to the smallest product.")
else:
    print(f"The machine looked quiet, yet even the {largest} x {largest} product did not get faster beyond the "
          "noise. The two conditions above do not explain that; possible causes, not tested here: logical CPUs "
          "that share one physical core (a virtual machine, hyper-threading), or a matrix library that already "
          "limits itself to one thread.")

# %% [markdown]
# ### Exercise 1b: predict, then measure
#
# Adding two tensors of 4 million `float32` values does one addition per 12 bytes it moves (two
# 4-byte inputs read, one 4-byte output written). A 512 × 512 product reads 2 × 512² values and
# does 512³ multiply-adds: 256 multiply-adds for every value it reads. Before running the
# measurement, write in `my_prediction` whether you expect all the logical CPUs to make the addition
# `"faster"` than one thread, `"slower"`, or leave it `"within noise"`, and whether it gains more or
# less than the product did.

# %%
my_prediction = "within noise"   # your guess: "faster", "within noise" or "slower"

# %%
x, y = torch.randn(4_000_000), torch.randn(4_000_000)
load = load_average()
add_one, add_many = quartiles(lambda: x + y, 1), quartiles(lambda: x + y, cpus)
add_speedup, add_verdict = add_one[1] / add_many[1], verdict(add_one, add_many)
print(f"load average before timing: {'n/a' if load is None else f'{load:.1f}'}")
print(f"x + y on 4 M values ({3 * x.element_size()} bytes moved per addition), ms [q1-q3]: 1 thread {ms(add_one).strip()}, {cpus} threads {ms(add_many).strip()}; "
      f"{add_speedup:.2f}x, {add_verdict} (you predicted {my_prediction!r})")
product = f"the {largest} x {largest} product ({speedups[largest]:.2f}x, {verdicts[largest]})"
if add_verdict != "faster" and verdicts[largest] != "faster":
    print(f"Neither the addition nor {product} got faster beyond the noise, so this run cannot say which gains "
          "more" + (" (the machine was busy, see above)." if load is not None and load > cpus - 0.5 else "."))
elif add_verdict != "faster":
    print(f"Only {product} gained: the addition waits on memory, which the cores share, more than on arithmetic, "
          "which they do not.")
elif verdicts[largest] != "faster":
    print(f"The addition gained and {product} did not: memory kept up with the threads here, and the "
          "product's extra threads probably lacked a free CPU when it was timed.")
elif add_speedup < speedups[largest]:
    print(f"Both gained, the addition less than {product}: it waits on memory, which the cores share.")
else:
    print(f"Both gained, the addition at least as much as {product}: here memory kept up with the threads.")

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
# deterministic *at a fixed thread count*, which is why its tests can demand *bit-identical*
# results on one machine. Another thread count can split a sum differently, and floating-point
# addition is not associative, so the last bits may change.
#
# ### Exercise 2: how big is a batch?
#
# Before training anything, estimate memory. Compute how many **mebibytes** (MiB, 2**20 bytes) one
# batch of 128 RGB images of 64 x 64 pixels takes as `float32` tensors, and store it in `batch_mib`.

# %%
batch_mib = None
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
start = time.perf_counter()
splits = {name: load_dataset("multiscale-digits", name, seed=SEED, image_size=IMAGE_SIZE) for name in DIGIT_SPLITS}
print(f"loaded {sum(len(d) for d in splits.values()):,} images in {time.perf_counter() - start:.1f} s")
for name, dataset in splits.items():
    object_sizes = dataset.object_sizes
    print(f"{name:<11} {len(dataset):>6,} images, object size {int(object_sizes.min())}-{int(object_sizes.max())} px")

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
show_splits(splits, n=10, seed=SEED)
plt.show()

# %%
plot_object_sizes(splits, title="object sizes per split")
plt.show()

# %% [markdown]
# Two more facts worth checking, because they decide what a test accuracy means: the test splits use
# **different handwritten digit images** from the training split (a model cannot pass by memorising
# particular images), and the same seed gives the **same bytes** every time (so every number in the
# series can be reproduced). What the split does *not* promise: scikit-learn's digits record no
# writer, so one person's handwriting may appear on both sides (the comment above
# `_NUM_TRAIN_DIGITS` in `tutorial_lib/data.py` explains the contiguous cut that keeps neighbouring
# rows, the likeliest to share a writer, together). A test accuracy here measures new images of
# digits, not handwriting never seen before.

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
#   training range, drawn from digit images the training split never uses (a writer may appear on
#   both sides: the source data records no writer).
# - A second thread helps only with enough work per operator and a free core: time with the median
#   of repeats, after a warm-up, call a difference only outside the spread of the timings, note the
#   load average, and read the speed-up table before choosing a thread count.
# - The blog post's install list (`tensorflow`, `google-cloud-images`) was wrong: PyTorch only, and
#   `google-cloud-images` does not exist.
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
# 2. An exact pin fixes the version, not the build (pip still picks the CPU, CUDA or Apple-silicon
#    wheel of that version), so that is not the reason. The reasons: an old exact version may have no
#    wheel at all for a newer Python or platform, so the install fails; it forces a reinstall of the
#    gigabytes of PyTorch that Colab or a lab machine already provides in a newer version; and it
#    shuts out bug fixes. A lower bound guarantees the APIs the series uses and accepts any newer
#    release that installs on the learner's machine.
# 3. Non-deterministic GPU kernels (cuDNN algorithm choice, atomic additions); use
#    `seed_everything(seed, deterministic=True)`, at some speed cost.
# </details>
#
# ## Further reading
#
# - PyTorch, *Reproducibility* notes: what seeds do and do not control.
# - Papermill documentation, *Parameterize*: the `parameters` tag convention.
# - nbval documentation: how notebooks are tested cell by cell.
