"""The environment: versions, device, threads and seeds.

A result is only reproducible when the learner knows what produced it. ``environment_report`` says
which library versions, device and thread count ran a notebook, and ``seed_everything`` makes the
random parts repeatable.
"""

from __future__ import annotations

import importlib
import os
import platform
import random
from typing import Any

import numpy as np
import torch

from tutorial_lib._validate import check_bool, check_int

__all__ = [
    "DEVICE_ENV_VAR",
    "DEVICE_KINDS",
    "choose_device",
    "embedded_data_offline",
    "environment_report",
    "format_report",
    "seed_everything",
    "set_threads",
    "supports_bf16",
]

#: Environment variable that overrides the automatic device choice (``cuda``, ``mps`` or ``cpu``).
DEVICE_ENV_VAR = "TUTORIAL_DEVICE"

DEVICE_KINDS = ("cuda", "mps", "cpu")


def seed_everything(seed: int, deterministic: bool = False) -> int:
    """Seed Python, NumPy and PyTorch (CPU and every GPU) from one integer.

    Args:
        seed: a non-negative integer below 2**32.
        deterministic: also ask PyTorch for deterministic kernels
            (``torch.use_deterministic_algorithms``) and turn off cuDNN's autotuner. Slower on a GPU;
            on a CPU the default kernels are already deterministic for the layers this series uses.

    Returns:
        The seed, so a notebook can print what it used.

    Raises:
        TypeError: if ``seed`` is not an integer or ``deterministic`` not a bool.
        ValueError: if ``seed`` is negative or too large for NumPy.
    """
    seed = check_int("seed", seed, minimum=0, maximum=2**32 - 1)
    check_bool("deterministic", deterministic)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds the CPU and every CUDA device
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.benchmark = not deterministic and torch.backends.cudnn.benchmark
    if deterministic:
        torch.backends.cudnn.deterministic = True
        # cuBLAS needs this to be deterministic (PyTorch "Reproducibility" notes).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return seed


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def choose_device(device: str | torch.device | None = None) -> torch.device:
    """Pick the device to run on: the argument, else ``$TUTORIAL_DEVICE``, else cuda > mps > cpu.

    Args:
        device: ``"cuda"``, ``"cuda:1"``, ``"mps"``, ``"cpu"``, a ``torch.device``, or ``None`` for the
            automatic choice.

    Returns:
        The ``torch.device`` to use.

    Raises:
        TypeError: if ``device`` is not a string, a ``torch.device`` or ``None``.
        ValueError: if the requested kind is unknown or not available on this machine.
    """
    if device is not None and not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a string such as 'cpu' or 'cuda:0', a torch.device or None, got {type(device).__name__}")
    source = "argument"
    if device is None:
        device = os.environ.get(DEVICE_ENV_VAR) or None
        source = f"${DEVICE_ENV_VAR}"
    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"unknown device {device!r} (from {source}); use one of {', '.join(DEVICE_KINDS)}, e.g. 'cuda:0'"
        ) from err
    if dev.type not in DEVICE_KINDS:
        raise ValueError(f"unsupported device {device!r} (from {source}); use one of {', '.join(DEVICE_KINDS)}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} (from {source}) was requested but CUDA is not available here; use 'cpu'")
    if dev.type == "mps" and not _mps_available():
        raise ValueError(f"device {device!r} (from {source}) was requested but MPS is not available here; use 'cpu'")
    return dev


def set_threads(num_threads: int | None = None) -> int:
    """Set how many CPU threads PyTorch uses for its operators, and return the number in force.

    Args:
        num_threads: a positive count, or ``None`` to keep the current setting (PyTorch defaults to
            the number of physical cores).

    Raises:
        TypeError: if ``num_threads`` is not an integer or ``None``.
        ValueError: if ``num_threads`` is not positive.
    """
    if num_threads is not None:
        torch.set_num_threads(check_int("num_threads", num_threads, minimum=1))
    return torch.get_num_threads()


def supports_bf16(device: str | torch.device | None = None) -> bool:
    """Whether ``device`` runs bfloat16 convolutions and matrix products natively (fast, not emulated).

    On a CPU that means the AVX512-BF16 or AMX instructions that oneDNN uses (recent Intel Xeon, AMD
    Zen 4 and later); elsewhere bfloat16 autocast still works but is emulated and usually *slower*
    than float32. On CUDA it means compute capability 8.0 (Ampere) or newer. MPS: no.

    Args:
        device: as for :func:`choose_device`; ``None`` checks the device it would choose.
    """
    device = choose_device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        try:
            return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):  # an older or unusual build: assume not
            return False
    return False


def _version(module_name: str) -> str | None:
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    return getattr(module, "__version__", "unknown")


def embedded_data_offline() -> tuple[bool, str]:
    """Whether the embedded dataset's raw material is on disk (no network needed), and why not if not.

    The ``multiscale-digits`` dataset is built from scikit-learn's bundled digits and scikit-image's
    bundled photos; both ship inside the pip packages, so this only fails on a broken install.
    """
    try:
        from skimage import data as skdata
        from sklearn.datasets import load_digits

        digits = load_digits()
        photo = skdata.astronaut()
    except Exception as err:  # noqa: BLE001 - report any failure to the learner verbatim
        return False, f"{type(err).__name__}: {err}"
    return digits.images.shape == (1797, 8, 8) and photo.ndim == 3, "bundled digits and photos found"


def environment_report() -> dict[str, Any]:
    """Collect what produced a result: versions, device, threads and offline data availability.

    Returns:
        A dict with keys ``python``, ``platform``, ``torch``, ``torchvision``, ``timm``, ``numpy``,
        ``device``, ``bf16``, ``cuda``, ``threads``, ``cpu_count`` and ``embedded_data_offline``.
    """
    device = choose_device()
    cuda = None
    if torch.cuda.is_available():
        cuda = {
            "version": torch.version.cuda,
            "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        }
    ok, detail = embedded_data_offline()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "timm": _version("timm"),
        "numpy": np.__version__,
        "device": str(device),
        "bf16": supports_bf16(device),
        "cuda": cuda,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "embedded_data_offline": ok,
        "embedded_data_detail": detail,
    }


def format_report(report: dict[str, Any] | None = None) -> str:
    """Render ``environment_report()`` as aligned ``key: value`` lines."""
    report = environment_report() if report is None else report
    width = max(len(k) for k in report)
    return "\n".join(f"{k:<{width}} : {v}" for k, v in report.items())

