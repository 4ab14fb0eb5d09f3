"""Tests for tutorial_lib.data: the embedded multiscale-digits dataset and the torchvision loaders."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
import time
import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

from tutorial_lib import data
from tutorial_lib.data import (
    DIGIT_SPLITS,
    DatasetNotFoundError,
    MultiScaleDigits,
    TorchvisionDataset,
    generate_multiscale_digits,
    load_dataset,
    object_size_range,
    source_digit_indices,
)

matplotlib.use("Agg")

N = 600  # images per split in most tests: every object size appears many times


@pytest.fixture(scope="module")
def splits() -> dict[str, MultiScaleDigits]:
    return {split: load_dataset("multiscale-digits", split, num_samples=N, cache=False) for split in DIGIT_SPLITS}


def _digest(arrays) -> str:
    digest = hashlib.sha256()
    for key in ("images", "labels", "object_sizes", "digit_indices", "boxes"):
        digest.update(np.ascontiguousarray(np.asarray(arrays[key])).tobytes())
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------------
# multiscale-digits: content
# ------------------------------------------------------------------------------------------------


def test_shapes_dtypes_and_ranges(splits):
    for split, dataset in splits.items():
        assert isinstance(dataset, torch.utils.data.Dataset)
        assert len(dataset) == N
        assert dataset.split == split and dataset.image_size == 64
        assert dataset.images.shape == (N, 3, 64, 64) and dataset.images.dtype == torch.uint8
        assert dataset.labels.shape == (N,) and dataset.labels.dtype == torch.int64
        assert dataset.object_sizes.shape == (N,) and dataset.object_sizes.dtype == torch.int64
        assert dataset.classes == ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
        assert set(dataset.labels.tolist()) == set(range(10))
        image, label = dataset[7]
        assert image.shape == (3, 64, 64) and image.dtype == torch.float32
        assert 0.0 <= image.min() and image.max() <= 1.0
        assert torch.equal(image, dataset.images[7].float() / 255.0)
        assert isinstance(label, int) and label == int(dataset.labels[7])
        # Images are not blank: real backgrounds with digits on them.
        assert dataset.images.float().std() > 20


def test_labels_match_source_digits(splits):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images, labels = data._digits()  # read from scikit-learn's file without importing it
    assert np.array_equal(images, (bunch.images / 16.0).astype(np.float32))
    assert np.array_equal(labels, bunch.target) and labels.dtype == np.int64
    targets = torch.from_numpy(bunch.target)
    for dataset in splits.values():
        assert torch.equal(dataset.labels, targets[dataset.digit_indices])


def test_object_size_ranges_per_split(splits):
    expected = {"train": (20, 35), "test": (20, 35), "test-small": (9, 14), "test-large": (45, 60)}
    for split, (low, high) in expected.items():
        assert object_size_range(split, 64) == (low, high)
        sizes = splits[split].object_sizes
        assert set(sizes.tolist()) == set(range(low, high + 1)), split
        assert splits[split].manifest["object_size_pixels"] == [low, high]
    # Scale-shifted splits are disjoint from training, on either side.
    assert splits["test-small"].object_sizes.max() < splits["train"].object_sizes.min()
    assert splits["train"].object_sizes.max() < splits["test-large"].object_sizes.min()
    # Fractions scale with the image: at 128 px every range doubles (within rounding).
    assert object_size_range("train", 128) == (39, 70)
    assert object_size_range("test-small", 128) == (18, 28)
    assert object_size_range("test-large", 128) == (90, 121)


def test_boxes_lie_inside_the_image_and_match_sizes(splits):
    for dataset in splits.values():
        x0, y0, x1, y1 = dataset.boxes.unbind(1)
        assert torch.equal(x1 - x0, dataset.object_sizes) and torch.equal(y1 - y0, dataset.object_sizes)
        assert x0.min() >= 0 and y0.min() >= 0 and x1.max() <= 64 and y1.max() <= 64


def test_digit_is_painted_in_one_colour_where_it_is_opaque(splits):
    # Re-derive each digit's opacity map from its source digit and box: wherever it is fully opaque
    # the image must hold one single colour (the digit's), and that colour must not be the
    # background's typical colour around the box.
    dataset = splits["train"]
    digits, _ = data._digits()
    for i in range(40):
        x0, y0, x1, y1 = dataset.boxes[i].tolist()
        upsampled = data._upsample_digits(digits[int(dataset.digit_indices[i])][None], x1 - x0)[0]
        opaque = torch.from_numpy(upsampled >= data._ALPHA_HIGH)
        assert opaque.sum() >= 4
        patch = dataset.images[i, :, y0:y1, x0:x1].reshape(3, -1)[:, opaque.flatten()]
        assert torch.equal(patch, patch[:, :1].expand_as(patch)), f"item {i}"


def test_source_digits_are_disjoint_between_train_and_test(splits):
    train_pool = set(source_digit_indices("train").tolist())
    test_pool = set(source_digit_indices("test").tolist())
    assert len(train_pool) == 1437 and len(test_pool) == 360
    assert train_pool.isdisjoint(test_pool) and train_pool | test_pool == set(range(1797))
    for split in ("test-small", "test-large"):
        assert set(source_digit_indices(split).tolist()) == test_pool
    train_used = set(splits["train"].digit_indices.tolist())
    assert train_used <= train_pool
    for split in ("test", "test-small", "test-large"):
        used = set(splits[split].digit_indices.tolist())
        assert used <= test_pool and used.isdisjoint(train_used)


def test_backgrounds_come_from_separate_regions():
    train_bank, _ = data._background_bank(64, "train")
    test_bank, _ = data._background_bank(64, "test")
    assert len(train_bank) == len(test_bank) == 24
    for train_part, test_part in zip(train_bank, test_bank):
        # The two regions of each resized background tile it side by side, test on the right.
        assert train_part.shape[1] == test_part.shape[1]
        assert test_part.shape[2] >= 64 + 2 * data._halo_radius(64)
        assert train_part.shape[2] >= 64 + 2 * data._halo_radius(64)


# ------------------------------------------------------------------------------------------------
# multiscale-digits: determinism
# ------------------------------------------------------------------------------------------------

_HASH_SCRIPT = """
import hashlib, sys
import numpy as np, torch
torch.set_num_threads(1)
from tutorial_lib.data import generate_multiscale_digits
digest = hashlib.sha256()
for split in ("train", "test-large"):
    arrays = generate_multiscale_digits(split, seed=3, num_samples=300)
    for key in ("images", "labels", "object_sizes", "digit_indices", "boxes"):
        digest.update(np.ascontiguousarray(arrays[key]).tobytes())
print(digest.hexdigest())
"""


def test_same_seed_gives_same_bytes_in_another_process():
    digest = hashlib.sha256()
    for split in ("train", "test-large"):
        arrays = generate_multiscale_digits(split, seed=3, num_samples=300)
        for key in ("images", "labels", "object_sizes", "digit_indices", "boxes"):
            digest.update(np.ascontiguousarray(arrays[key]).tobytes())
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONHASHSEED="123")
    result = subprocess.run(
        [sys.executable, "-c", _HASH_SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
        timeout=120,
        check=True,
    )
    assert result.stdout.strip() == digest.hexdigest()


def test_different_seeds_and_splits_differ():
    a = generate_multiscale_digits("train", seed=0, num_samples=50)
    b = generate_multiscale_digits("train", seed=1, num_samples=50)
    c = generate_multiscale_digits("test", seed=0, num_samples=50)
    again = generate_multiscale_digits("train", seed=0, num_samples=50)
    assert _digest(a) == _digest(again)
    assert not np.array_equal(a["images"], b["images"])
    assert not np.array_equal(a["digit_indices"], b["digit_indices"])
    assert not np.array_equal(a["images"], c["images"])


def test_smaller_num_samples_is_a_prefix():
    small = generate_multiscale_digits("test", seed=2, num_samples=40)
    large = generate_multiscale_digits("test", seed=2, num_samples=1100)  # crosses a chunk boundary
    for key, value in small.items():
        assert np.array_equal(value, large[key][:40]), key


def test_digit_pool_and_background_region_swap_one_factor_each():
    own = generate_multiscale_digits("test", seed=3, num_samples=60)
    # naming the split's own pool and region changes nothing, byte for byte
    same = generate_multiscale_digits("test", seed=3, num_samples=60, digit_pool="test", background_region="test")
    assert _digest(own) == _digest(same)
    # training digits on test backgrounds: every digit from the training side, same sizes and boxes
    swapped = generate_multiscale_digits("test", seed=3, num_samples=60, digit_pool="train")
    assert np.isin(swapped["digit_indices"], source_digit_indices("train")).all()
    assert np.array_equal(swapped["object_sizes"], own["object_sizes"]) and np.array_equal(swapped["boxes"], own["boxes"])
    # test digits on training backgrounds: the same digits, other pixels
    region = generate_multiscale_digits("test", seed=3, num_samples=60, background_region="train")
    assert np.array_equal(region["digit_indices"], own["digit_indices"])
    assert not np.array_equal(region["images"], own["images"])


@pytest.mark.parametrize("option", ["digit_pool", "background_region"])
def test_digit_pool_and_background_region_reject_bad_values(option):
    with pytest.raises(ValueError, match=f"unknown {option} 'val'.*Did you mean 'test'"):
        generate_multiscale_digits("test", num_samples=4, **{option: "val"})
    with pytest.raises(TypeError, match=f"{option} must be a string"):
        generate_multiscale_digits("test", num_samples=4, **{option: 1})


# ------------------------------------------------------------------------------------------------
# multiscale-digits: cache
# ------------------------------------------------------------------------------------------------


def test_cache_hit_is_fast_and_identical(tmp_path):
    first = load_dataset("multiscale-digits", "train", root=tmp_path, num_samples=2000, seed=5)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".pt")
    assert not any(name.endswith(".tmp") for name in files)
    start = time.perf_counter()
    second = load_dataset("multiscale-digits", "train", root=tmp_path, num_samples=2000, seed=5)
    elapsed = time.perf_counter() - start
    assert elapsed < 0.5, f"cached load took {elapsed:.2f} s"
    for key in ("images", "labels", "object_sizes", "digit_indices", "boxes"):
        assert torch.equal(getattr(first, key), getattr(second, key)), key
    manifest = json.loads((tmp_path / files[0]).read_text())
    assert manifest == second.manifest
    assert manifest["seed"] == 5 and manifest["image_size"] == 64 and manifest["num_samples"] == 2000
    assert manifest["split"] == "train" and manifest["generator_version"] == data.GENERATOR_VERSION
    assert manifest["object_size_fraction"] == [0.30, 0.55] and manifest["object_size_pixels"] == [20, 35]
    assert manifest["sha256"] == data._content_sha256({k: getattr(second, k) for k in data._ARRAY_KEYS})
    # Same bytes as rendering without the cache.
    assert _digest({k: getattr(second, k).numpy() for k in data._ARRAY_KEYS}) == _digest(
        generate_multiscale_digits("train", seed=5, num_samples=2000)
    )


def test_other_parameters_get_their_own_cache_file(tmp_path):
    load_dataset("multiscale-digits", "test", root=tmp_path, num_samples=20, seed=0)
    load_dataset("multiscale-digits", "test", root=tmp_path, num_samples=20, seed=1)
    load_dataset("multiscale-digits", "test", root=tmp_path, num_samples=20, image_size=32)
    load_dataset("multiscale-digits", "test", root=tmp_path, num_samples=20, object_size=(0.5, 0.5))
    assert len(list(tmp_path.glob("*.pt"))) == 4 and len(list(tmp_path.glob("*.json"))) == 4


def _cache_files(root: Path) -> tuple[Path, Path]:
    return next(root.glob("*.pt")), next(root.glob("*.json"))


@pytest.mark.parametrize("damage", ["flip-bytes", "truncate", "stale-version", "bad-hash", "no-manifest"])
def test_corrupt_or_stale_cache_is_regenerated(tmp_path, damage):
    original = load_dataset("multiscale-digits", "test-small", root=tmp_path, num_samples=300)
    data_path, manifest_path = _cache_files(tmp_path)
    if damage == "flip-bytes":
        raw = bytearray(data_path.read_bytes())
        middle = len(raw) // 2
        raw[middle : middle + 64] = bytes(255 - b for b in raw[middle : middle + 64])
        data_path.write_bytes(bytes(raw))
    elif damage == "truncate":
        data_path.write_bytes(data_path.read_bytes()[:1000])
    elif damage in ("stale-version", "bad-hash"):
        manifest = json.loads(manifest_path.read_text())
        if damage == "stale-version":
            manifest["generator_version"] = data.GENERATOR_VERSION - 1
        else:
            manifest["sha256"] = "0" * 64
        manifest_path.write_text(json.dumps(manifest))
    else:
        manifest_path.unlink()
    with pytest.warns(RuntimeWarning, match="stale or corrupt; regenerating"):
        again = load_dataset("multiscale-digits", "test-small", root=tmp_path, num_samples=300)
    assert torch.equal(again.images, original.images) and torch.equal(again.labels, original.labels)
    # The cache was rewritten: the next load is a clean hit (no warning).
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        third = load_dataset("multiscale-digits", "test-small", root=tmp_path, num_samples=300)
    assert torch.equal(third.images, original.images)
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json", ".pt"]


def test_environment_variable_sets_the_default_root(tmp_path, monkeypatch):
    monkeypatch.setenv("TUTORIAL_DATA_DIR", str(tmp_path / "cache"))
    assert data.default_data_dir() == tmp_path / "cache"
    load_dataset("multiscale-digits", "test", num_samples=10)
    assert len(list((tmp_path / "cache").glob("multiscale-digits_test_*.pt"))) == 1
    monkeypatch.delenv("TUTORIAL_DATA_DIR")
    assert data.default_data_dir() == Path(data.__file__).resolve().parents[1] / "data"


def test_cache_false_writes_nothing(tmp_path):
    dataset = load_dataset("multiscale-digits", "test", root=tmp_path, num_samples=10, cache=False)
    assert len(dataset) == 10 and list(tmp_path.iterdir()) == []


def test_options_image_size_object_size_and_transform():
    small = load_dataset("multiscale-digits", "train", image_size=32, num_samples=50, cache=False)
    assert small.images.shape == (50, 3, 32, 32)
    assert set(small.object_sizes.tolist()) <= set(range(10, 18))
    fixed = load_dataset("multiscale-digits", "test", num_samples=30, object_size=(0.5, 0.5), cache=False)
    assert set(fixed.object_sizes.tolist()) == {32}
    flipped = load_dataset(
        "multiscale-digits", "test", num_samples=5, cache=False, transform=lambda image: image.flip(-1)
    )
    assert torch.equal(flipped[0][0], flipped.images[0].flip(-1).float() / 255.0)


# ------------------------------------------------------------------------------------------------
# Name and argument checks
# ------------------------------------------------------------------------------------------------


def test_misspelt_dataset_and_split_names_list_the_valid_ones():
    with pytest.raises(ValueError, match=r"Did you mean 'multiscale-digits'\?.*multiscale-digits, imagenette, cifar10"):
        load_dataset("multiscale_digit", "train")
    with pytest.raises(ValueError, match=r"Did you mean 'cifar10'\?"):
        load_dataset("cifar-10", "train")
    with pytest.raises(ValueError, match=r"Did you mean 'test-small'\?.*train, test, test-small, test-large"):
        load_dataset("multiscale-digits", "test_small")
    with pytest.raises(ValueError, match=r"Did you mean 'test'\?.*train, test$"):
        load_dataset("cifar10", "val")
    with pytest.raises(ValueError, match="Valid datasets"):
        load_dataset("mnist", "train")
    with pytest.raises(TypeError, match="dataset must be a string"):
        load_dataset(3, "train")


def test_bad_arguments_are_rejected_with_a_hint():
    with pytest.raises(TypeError, match="unknown option.*num_sample.*valid options: num_samples"):
        load_dataset("multiscale-digits", "train", num_sample=10)
    with pytest.raises(TypeError, match="valid options: transform"):
        load_dataset("cifar10", "train", num_samples=10)
    with pytest.raises(ValueError, match="num_samples must be >= 1"):
        load_dataset("multiscale-digits", "train", num_samples=0, cache=False)
    with pytest.raises(ValueError, match="image_size must be >= 32 and <= 256"):
        load_dataset("multiscale-digits", "train", image_size=16, cache=False)
    with pytest.raises(TypeError, match="seed must be an integer"):
        load_dataset("multiscale-digits", "train", seed=1.5, cache=False)
    with pytest.raises(ValueError, match="0 < low <= high <= 1"):
        load_dataset("multiscale-digits", "train", object_size=(0.6, 0.3), cache=False)
    with pytest.raises(TypeError, match="download must be True or False"):
        load_dataset("multiscale-digits", "train", download="yes")
    with pytest.raises(TypeError, match="root must be a path"):
        load_dataset("multiscale-digits", "train", root=5)


# ------------------------------------------------------------------------------------------------
# Real datasets on tiny copies in torchvision's on-disk formats
# ------------------------------------------------------------------------------------------------

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _write_fake_cifar10(root: Path, per_batch: int = 4) -> dict[str, str]:
    """CIFAR-10's python format: pickled dicts of uint8 rows (3072 = 3 x 32 x 32, channel-major)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    md5 = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for number, name in enumerate(names):
        batch = {
            "batch_label": name,
            "labels": [(number + i) % 10 for i in range(per_batch)],
            "data": rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8),
            "filenames": [f"{name}_{i}.png" for i in range(per_batch)],
        }
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": CIFAR_CLASSES, "num_vis": 3072}))
    for path in folder.iterdir():
        md5[path.name] = hashlib.md5(path.read_bytes()).hexdigest()
    return md5


@pytest.fixture
def fake_cifar10(tmp_path, monkeypatch):
    """A tiny CIFAR-10 whose checksums torchvision accepts.

    torchvision's CIFAR10 verifies every file against the md5 of the real release
    (``CIFAR10._check_integrity`` and ``_load_meta`` call ``check_integrity(path, md5)``), so tiny
    stand-in files can only load if the expected checksums are theirs. We patch the class's lists of
    (file, md5) pairs, in this test only, to the md5s of the files written here: the integrity check
    itself still runs, against real checksums of real files.
    """
    from torchvision.datasets import CIFAR10

    md5 = _write_fake_cifar10(tmp_path)
    monkeypatch.setattr(CIFAR10, "train_list", [[f"data_batch_{i}", md5[f"data_batch_{i}"]] for i in range(1, 6)])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setattr(CIFAR10, "meta", {"filename": "batches.meta", "key": "label_names", "md5": md5["batches.meta"]})
    return tmp_path


def test_cifar10_loads_through_torchvision(fake_cifar10):
    train = load_dataset("cifar10", "train", root=fake_cifar10, image_size=48)
    test = load_dataset("cifar10", "test", root=fake_cifar10, image_size=24)
    assert isinstance(train, TorchvisionDataset) and train.name == "cifar10"
    assert len(train) == 20 and len(test) == 4
    assert train.classes == CIFAR_CLASSES and train.split == "train" and train.image_size == 48
    image, label = train[5]
    assert image.shape == (3, 48, 48) and image.dtype == torch.float32
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert label == (1 + 1) % 10  # second batch, second row
    assert test[0][0].shape == (3, 24, 24) and test[0][1] == 5
    # At the native 32 px the default transform is lossless: ToTensor of the stored bytes.
    native = load_dataset("cifar10", "test", root=fake_cifar10, image_size=32)
    assert torch.equal(native[0][0], torch.from_numpy(native.base.data[0]).permute(2, 0, 1).float() / 255.0)


def test_cifar10_with_wrong_checksums_says_corrupted(tmp_path):
    _write_fake_cifar10(tmp_path)  # real torchvision md5s: these files do not match them
    with pytest.raises(DatasetNotFoundError, match="incomplete or corrupted.*download=True"):
        load_dataset("cifar10", "train", root=tmp_path)


def test_missing_cifar10_says_what_to_run(tmp_path):
    with pytest.raises(DatasetNotFoundError) as caught:
        load_dataset("cifar10", "test", root=tmp_path)
    message = str(caught.value)
    command = (
        f"python -c \"from tutorial_lib.data import load_dataset; "
        f"load_dataset('cifar10', 'test', root='{tmp_path}', download=True)\""
    )
    assert command in message
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert isinstance(caught.value, FileNotFoundError)
    assert list(tmp_path.iterdir()) == []  # nothing was created or downloaded


IMAGENETTE_WNIDS = [
    "n01440764", "n02102040", "n02979186", "n03000684", "n03028079",
    "n03394916", "n03417042", "n03425413", "n03445777", "n03888257",
]  # fmt: skip


def _write_fake_imagenette(root: Path, folder: str = "imagenette2-160") -> None:
    """Imagenette's layout: <root>/imagenette2-160/{train,val}/<wnid>/<name>.JPEG."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 2), ("val", 1)):
        for wnid in IMAGENETTE_WNIDS:
            directory = root / folder / split / wnid
            directory.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, size=(30, 40, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(directory / f"{wnid}_{i}.JPEG", quality=90)


def test_imagenette_loads_through_torchvision(tmp_path):
    _write_fake_imagenette(tmp_path)
    train = load_dataset("imagenette", "train", root=tmp_path, image_size=24)
    test = load_dataset("imagenette", "test", root=tmp_path, image_size=24)
    assert len(train) == 20 and len(test) == 10
    assert train.classes[:3] == ["tench", "English springer", "cassette player"] and len(train.classes) == 10
    image, label = test[9]
    assert image.shape == (3, 24, 24) and image.dtype == torch.float32 and label == 9
    assert test.base._split == "val" and test.split == "test"
    # Default transform: shorter side 30 -> 24 (so 40 -> 32), then a centred 24 x 24 crop: the
    # picture is cropped, never squashed.
    from torchvision.transforms import functional as F

    original = Image.open(test.base._samples[9][0]).convert("RGB")
    expected = F.to_tensor(F.center_crop(F.resize(original, [24, 32]), [24, 24]))
    assert torch.equal(image, expected)


def test_imagenette_other_size_and_missing_message(tmp_path):
    _write_fake_imagenette(tmp_path, "imagenette2-320")
    assert len(load_dataset("imagenette", "train", root=tmp_path, size="320px")) == 20
    with pytest.raises(DatasetNotFoundError) as caught:
        load_dataset("imagenette", "train", root=tmp_path)  # default size 160px is absent
    message = str(caught.value)
    assert "load_dataset('imagenette', 'train', root=" in message and "download=True" in message
    assert str(tmp_path / "imagenette2-160" / "train") in message
    with pytest.raises(DatasetNotFoundError, match=r"size='320px', download=True"):
        load_dataset("imagenette", "test", root=tmp_path / "empty", size="320px")
    with pytest.raises(ValueError, match="Did you mean '320px'"):
        load_dataset("imagenette", "train", root=tmp_path, size="320")


# ------------------------------------------------------------------------------------------------
# Galleries (tutorial_lib.viz)
# ------------------------------------------------------------------------------------------------


def test_gallery_titles_show_label_and_object_size(splits):
    import matplotlib.pyplot as plt

    from tutorial_lib.viz import plot_object_sizes, show_gallery, show_splits

    dataset = splits["test-large"]
    fig = show_gallery(dataset, 6, ncols=3, sort_by_size=True)
    titles = [ax.get_title() for ax in fig.axes if ax.get_images()]
    assert len(titles) == 6 and len(fig.axes) == 6
    sizes = [int(t.split("·")[1].split()[0]) for t in titles]
    assert sizes == sorted(sizes) and all(45 <= s <= 60 for s in sizes)
    fig = show_gallery(dataset, indices=[3])
    assert fig.axes[0].get_title() == f"{int(dataset.labels[3])} · {int(dataset.object_sizes[3])} px"
    plt.close("all")

    fig = show_splits(splits, n=4)
    assert len(fig.axes) == 16
    assert [fig.axes[4 * row].get_ylabel() for row in range(4)] == [
        f"{split}\n{int(splits[split].object_sizes.min())}-{int(splits[split].object_sizes.max())} px"
        for split in DIGIT_SPLITS
    ]
    fig = plot_object_sizes(splits)
    assert len(fig.axes[0].patches) == 16 + 16 + 6 + 16
    plt.close("all")
    with pytest.raises(TypeError, match="non-empty dict"):
        show_splits([])
    with pytest.raises(ValueError, match="indices must be"):
        show_gallery(dataset, indices=[N])
