"""The GPU recipe's code path on the CPU: Imagenette read from a folder of JPEG files, decoded,
augmented, trained by two processes under torchrun in float16 with loss scaling, checkpointed and
tested, with nothing downloaded.

The test writes an Imagenette-shaped folder itself (``imagenette2-160/{train,val}/<WordNet id>/*.JPEG``,
the layout of fast.ai's archive that ``torchvision.datasets.Imagenette`` reads): ten classes, each a
colour with noise, at a few sizes and aspect ratios, so decoding, the shorter-side resize and the
centre crop all have work to do.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_distributed import torchrun  # same folder

from tutorial_lib.data import load_dataset
from tutorial_lib.train import load_checkpoint

# torchvision.datasets.Imagenette's class folders (WordNet ids), in its order.
WNIDS = ["n01440764", "n02102040", "n02979186", "n03000684", "n03028079",
         "n03394916", "n03417042", "n03425413", "n03445777", "n03888257"]
PER_CLASS = {"train": 4, "val": 2}


def write_imagenette(root: Path, seed: int = 0) -> Path:
    """Write a small Imagenette-shaped folder of JPEGs under ``root``; return ``root``."""
    rng = np.random.default_rng(seed)
    for split, count in PER_CLASS.items():
        for label, wnid in enumerate(WNIDS):
            folder = root / "imagenette2-160" / split / wnid
            folder.mkdir(parents=True)
            colour = np.array([(label * 70) % 256, (label * 130) % 256, (label * 190) % 256])
            for i in range(count):
                height, width = (48, 64) if i % 2 else (72, 48)  # landscape and portrait
                noise = rng.integers(-30, 31, size=(height, width, 3))
                pixels = np.clip(colour + noise, 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{wnid}_{i}.JPEG", quality=90)
    return root


@pytest.fixture(scope="module")
def imagenette(tmp_path_factory) -> Path:
    return write_imagenette(tmp_path_factory.mktemp("imagenette"))


def test_the_folder_loads_as_imagenette_decoded_resized_and_centre_cropped(imagenette):
    train = load_dataset("imagenette", "train", root=imagenette, image_size=32)
    test = load_dataset("imagenette", "test", root=imagenette, image_size=32)
    assert (len(train), len(test)) == (40, 20)
    assert train.classes[0] == "tench" and train.classes[-1] == "parachute"
    image, label = train[5]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32 and 0 <= image.min() <= image.max() <= 1
    assert label == 1
    # A class is a colour: the decoded centre crop keeps it (JPEG and resizing blur only the noise).
    expected = torch.tensor([(1 * 70) % 256, (1 * 130) % 256, (1 * 190) % 256]) / 255
    assert torch.allclose(image.mean(dim=(1, 2)), expected, atol=0.03)


def test_gpu_recipe_runs_under_torchrun_in_fp16_from_jpeg_files(imagenette, tmp_path):
    """The gpu-imagenette-resnet101 recipe, narrowed and shrunk by flags, on 2 CPU processes."""
    out = tmp_path / "run"
    flags = ["-m", "tutorial_lib", "train", "--dataset", "imagenette", "--recipe", "gpu-imagenette-resnet101",
             "--out", str(out), "--width", "8", "--image-size", "40", "--train-sizes", "32", "--test-sizes", "32",
             "--epochs", "2", "--batch-size", "8", "--precision", "fp16", "--workers", "1", "--device", "cpu",
             "--no-progress"]
    result = torchrun(flags, env={"TUTORIAL_DATA_DIR": str(imagenette)}, cwd=tmp_path)
    assert result.returncode == 0, f"torchrun failed:\n{result.stderr[-4000:]}"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["world_size"] == 2
    assert metrics["config"]["model"]["arch"] == "resnet101"
    assert metrics["test"]["test"]["count"] == 20
    history = metrics["history"]
    assert history["precision"] == "fp16" and len(history["epochs"]) == 2
    assert len(history["step_loss"]) == 2 * (40 // 8) and all(np.isfinite(history["step_loss"]))
    state = load_checkpoint(out)
    assert "scaler" in state and float(state["scaler"]["scale"]) > 0
    assert state["config"]["world_size"] == 2 and state["config"]["augment"]["flip"] is True
