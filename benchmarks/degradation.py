"""Plain and residual networks of 20 and 56 layers (He et al. 2016, Fig. 1 and Fig. 6), over seeds, on multiscale-digits.

Notebook 02 trains plain-20, plain-56, ResNet-20 and ResNet-56 (the CIFAR networks of He et al.
2016, section 4.2: 6n + 2 layers, n = 3 and 9) once, for seed 0, at a short budget that fits its
run time. This script trains the same four networks with the same protocol and, by default, the
same budget, over several seeds, so that the notebook can say which differences hold beyond one
seed's noise. At that budget the runs compare how fast each network starts to fit; He et al.'s
degradation problem (plain-56 trains, but converges to a higher training error than plain-20) needs
a budget long enough to converge. ``--lr`` and ``--networks`` run one network at another learning
rate (notebook 02 asks whether plain-56 fails to start at 0.1 because of the rate):

* the networks: a 3x3 stem, three stages of n basic blocks (``WIDTH``, 2x and 4x channels, the
  second and third stage starting with stride 2 and a projection shortcut, option B), global
  average pooling, a linear classifier. The plain twin's block skips the addition; built after the
  same seed, the two start from the same weights.
* the optimiser: SGD with momentum 0.9 and weight decay 1e-4, as in section 4.2 (``fit``'s SGD is
  Nesterov momentum and decays conv/linear weights only), one peak learning rate for all four
  networks, reached by a linear warm-up and followed by a cosine decay.
* the measurement: the mean training loss and training error of the last epoch (the mean over that
  epoch's batches, in training mode, as He et al.'s training curves), and the test error.

Writes ``benchmarks/results/degradation.json`` (or ``--results``). The stored files were made with
the defaults, which are the notebook's (its seed 0 run is this file's seed 0), and with plain-56 at
a tenth of the rate::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/degradation.py --seeds 0 1 2
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/degradation.py --seeds 0 1 2 --lr 0.01 --networks plain-56 --results benchmarks/results/degradation_lr.json

(each JSON file records its runs' seconds). A budget long enough to converge, e.g. ``--num-train 16000
--epochs 15 --width 16``, is a GPU's job.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
from torch import nn

from tutorial_lib.blocks import BasicBlock, projection
from tutorial_lib.data import load_dataset
from tutorial_lib.train import evaluate, fit

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RESULTS = ROOT / "benchmarks" / "results" / "degradation.json"
NETWORKS = ("plain-20", "plain-56", "resnet-20", "resnet-56")


class PlainBlock(BasicBlock):
    """``BasicBlock`` without its shortcut: ``y = relu(F(x))`` (notebook 02, section 4)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)

        out = self.conv2(out)
        out = self.bn2(out)
        out = self.relu(out)
        return out


class CifarNet(nn.Module):
    """He et al. 2016, section 4.2: 6n + 2 weighted layers, three stages of n blocks."""

    def __init__(self, block: type[BasicBlock], n: int, width: int, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_stage(block, width, width, n, stride=1)
        self.layer2 = self._make_stage(block, width, 2 * width, n, stride=2)
        self.layer3 = self._make_stage(block, 2 * width, 4 * width, n, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(4 * width, num_classes)
        for m in self.modules():  # torchvision's initialisation (He et al. 2015, eq. 14, fan_out)
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @staticmethod
    def _make_stage(block: type[BasicBlock], inplanes: int, planes: int, n: int, stride: int) -> nn.Sequential:
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


def build(kind: str, depth: int, width: int, seed: int) -> CifarNet:
    """``kind`` is ``"plain"`` or ``"resnet"``; ``depth`` = 6n + 2."""
    if kind not in ("plain", "resnet"):
        raise ValueError(f"kind must be 'plain' or 'resnet', got {kind!r}")
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth must be 6n + 2 with n >= 1 (20, 32, 44, 56, 110), got {depth}")
    torch.manual_seed(seed)  # the same seed gives the plain and residual twin the same weights
    return CifarNet(PlainBlock if kind == "plain" else BasicBlock, (depth - 2) // 6, width)


def train_four(
    *, seed: int, width: int, image_size: int, num_train: int, num_test: int, epochs: int, batch_size: int,
    lr: float, warmup_epochs: float, networks: tuple[str, ...] = NETWORKS, progress: bool = False,
) -> dict[str, dict]:
    """Train each of ``networks`` (``"plain-20"``, ``"resnet-56"``, ...) with the same data, batches and schedule; one seed."""
    train = load_dataset("multiscale-digits", "train", image_size=image_size, num_samples=num_train, seed=seed)
    test = load_dataset("multiscale-digits", "test", image_size=image_size, num_samples=num_test, seed=seed)
    runs = {}
    for name in networks:
        kind, depth = name.split("-")
        model = build(kind, int(depth), width, seed)
        start = time.perf_counter()
        history = fit(model, train, epochs=epochs, batch_size=batch_size, optimizer="sgd", lr=lr, momentum=0.9,
                      weight_decay=1e-4, schedule="cosine", warmup_epochs=warmup_epochs, channels_last=True,
                      seed=seed, device="cpu", progress=progress)
        runs[name] = {
            "train_loss": [round(r["train_loss"], 4) for r in history.epochs],
            "train_error": [round(1 - r["train_acc"], 4) for r in history.epochs],
            "test_error": round(1 - evaluate(model, test)["accuracy"], 4),
            "seconds": round(time.perf_counter() - start, 1),
        }
    return runs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--num-train", type=int, default=3072)
    parser.add_argument("--num-test", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--warmup-epochs", type=float, default=0.5)
    parser.add_argument("--networks", nargs="+", choices=NETWORKS, default=list(NETWORKS),
                        help="which of the four networks to train (default: all four)")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    args = parser.parse_args(argv)
    settings = {k: getattr(args, k) for k in ("width", "image_size", "num_train", "num_test", "epochs", "batch_size", "lr",
                                              "warmup_epochs")}
    record = {
        "command": "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/degradation.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "settings": settings,
        "machine": f"{platform.machine()} CPU, torch {torch.__version__}, {torch.get_num_threads()} thread(s), fp32",
        "seeds": {},
    }
    for seed in args.seeds:
        record["seeds"][str(seed)] = runs = train_four(seed=seed, networks=tuple(args.networks), **settings)
        for name, run in runs.items():
            print(f"seed {seed} {name:>10}: train loss {run['train_loss'][-1]:.4f}, train error {run['train_error'][-1]:.4f}, "
                  f"test error {run['test_error']:.4f} ({run['seconds']} s)", flush=True)
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(record, indent=1) + "\n")  # after every seed: a partial run keeps its seeds


if __name__ == "__main__":
    main()
