"""Datasets held as uint8 tensors, read from the standard on-disk layouts, augmented per batch.

Layouts (the ones torchvision's downloaders write, and ../shared/datasets/prepare.py too):
    DATA/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
    DATA/FashionMNIST/raw/...
    DATA/cifar-10-batches-py/{data_batch_1..5,test_batch}
    DATA/cifar-100-python/{train,test}
Canonical copies are recognised by the official MD5 of each file (decompressed for idx files), so a
re-encoded copy (the JPEG CIFAR-10) is used but labelled non-canonical.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import pickle
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from suite.registry import Registry


class DataError(RuntimeError):
    """A dataset is missing or unreadable; the message names the file and how to get it."""


def default_data_dir() -> Path:
    return Path(os.environ.get("SUITE_DATA", Path.home() / ".cache" / "suite-data")).expanduser()


@dataclass
class Split:
    images: torch.Tensor  # uint8, N x C x H x W
    labels: torch.Tensor  # int64, N

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray | torch.Tensor) -> "Split":
        index = torch.as_tensor(index, dtype=torch.long)
        return Split(self.images[index], self.labels[index])

    def to(self, device: torch.device | str) -> "Split":
        return Split(self.images.to(device), self.labels.to(device))


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    in_chans: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: str  # "cifar" (4-px zero-pad crop + flip) or "none"
    load: Callable[[Path], tuple[Split, Split, bool | None, str]] = field(repr=False, compare=False)
    synthetic: bool = False
    class_names: tuple[str, ...] = ()  # label order; empty: figures say "class N"

    def class_name(self, label: int) -> str:
        """What a figure calls class `label`: its dataset's name for it where known."""
        return self.class_names[label] if label < len(self.class_names) else f"class {label}"


@dataclass
class DataBundle:
    info: DatasetInfo
    train: Split
    test: Split
    fingerprint: str  # sha256 prefix of the arrays: identifies the exact data a result came from
    canonical: bool | None  # True: official checksums match; False: a different copy; None: synthetic
    source: str  # where it was read from, or "synthetic"


class DatasetRegistry(Registry[DatasetInfo]):
    """Datasets by name; `folder:PATH` names an image folder (see `image_folder`), registered on first use."""

    def get(self, name: str) -> DatasetInfo:
        if name.startswith(FOLDER_PREFIX) and name not in self._items:
            self.register(name, image_folder(name, name[len(FOLDER_PREFIX):]))
        return super().get(name)


def _discover_datasets() -> None:
    """Datasets of installed packages: each `suite.datasets` entry point is a DatasetInfo, or a callable returning
    one or a list of them (e.g. `image_folder(...)` over the package's data)."""
    import importlib.metadata

    for ep in importlib.metadata.entry_points(group="suite.datasets"):
        obj = ep.load()
        if callable(obj) and not isinstance(obj, DatasetInfo):
            obj = obj()
        for info in ([obj] if isinstance(obj, DatasetInfo) else list(obj)):
            if not isinstance(info, DatasetInfo):
                raise DataError(f"entry point {ep.name!r} ({ep.value}) gave {type(info).__name__}, not a DatasetInfo")
            if info.name not in DATASETS._items:
                DATASETS.register(info.name, info)


FOLDER_PREFIX = "folder:"
DATASETS: Registry[DatasetInfo] = DatasetRegistry("dataset", discover=_discover_datasets)


# ----------------------------------------------------------------------------- file formats
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
# Official MD5s of the *decompressed* idx files (re-compressing changes the .gz checksum, not these).
IDX_MD5 = {
    "MNIST": {"train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
              "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
              "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
              "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637"},
    "FashionMNIST": {"train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                     "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
                     "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
                     "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965"},
}
CIFAR_FILES = {
    "cifar-10-batches-py": {"train": ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"],
                            "test": ["test_batch"], "label_key": "labels"},
    "cifar-100-python": {"train": ["train"], "test": ["test"], "label_key": "fine_labels"},
}
CIFAR_MD5 = {"data_batch_1": "c99cafc152244af753f735de768cd75f", "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
             "data_batch_3": "54ebc095f3ab1f0389bbae665268c751", "data_batch_4": "634d18415352ddfa80567beed471001a",
             "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb", "test_batch": "40351d587109b95175f43aff81a1287e",
             "train": "16019d7e3df5f24257cddd939b257f8d", "test": "f0ef6b0ae62326f3e7ffdfab6717acfc"}
HOW_TO_GET = ("put the files there, run `python ../shared/datasets/prepare.py {root}` for the offline copies, "
              "or go online and the suite downloads them through torchvision")


def parse_idx(raw: bytes, path: Path) -> np.ndarray:
    """Decode one idx file (the MNIST format): magic, dims, then unsigned bytes."""
    if len(raw) < 8 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path}: not an idx file of unsigned bytes (bad magic)")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims))
    if len(raw) - offset != expected:
        raise DataError(f"{path}: truncated or corrupt idx file ({len(raw) - offset} bytes of data, expected {expected})")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)


def read_idx(folder: Path, name: str) -> tuple[np.ndarray, str]:
    """Read `name` or `name.gz` from `folder`; returns the array and the MD5 of the decompressed bytes."""
    for path in (folder / name, folder / f"{name}.gz"):
        if path.exists():
            try:
                raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            except (OSError, EOFError) as exc:
                raise DataError(f"{path}: corrupt or truncated gzip file ({exc})") from None
            return parse_idx(raw, path), hashlib.md5(raw).hexdigest()
    raise FileNotFoundError(folder / name)


def load_idx_dataset(folder: Path, official: dict[str, str]) -> tuple[Split, Split, bool, str]:
    splits, canonical = [], True
    for images_name, labels_name in IDX_FILES.values():
        images, md5_i = read_idx(folder, images_name)
        labels, md5_l = read_idx(folder, labels_name)
        if len(images) != len(labels):
            raise DataError(f"{folder}: {images_name} has {len(images)} images but {labels_name} {len(labels)} labels")
        canonical &= official.get(images_name) == md5_i and official.get(labels_name) == md5_l
        splits.append(Split(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))))
    return splits[0], splits[1], canonical, str(folder)


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="latin1")
    except Exception as exc:  # truncated pickles raise EOFError, UnpicklingError, ValueError...
        raise DataError(f"{path}: unreadable CIFAR batch ({type(exc).__name__}: {exc})") from None
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}  # str or bytes keys


def load_cifar_dataset(folder: Path, layout: dict) -> tuple[Split, Split, bool, str]:
    splits, canonical = [], not (folder / "NOT-CANONICAL.txt").exists()
    for part in ("train", "test"):
        xs, ys = [], []
        for name in layout[part]:
            path = folder / name
            if not path.exists():
                raise FileNotFoundError(path)
            d = _unpickle(path)
            try:
                x = np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
                y = np.asarray(d[layout["label_key"]], dtype=np.int64)
            except (KeyError, ValueError) as exc:
                raise DataError(f"{path}: not a CIFAR batch ({exc})") from None
            if len(x) != len(y):
                raise DataError(f"{path}: {len(x)} images but {len(y)} labels")
            xs.append(x)
            ys.append(y)
            canonical = canonical and hashlib.md5(path.read_bytes()).hexdigest() == CIFAR_MD5.get(name)
        splits.append(Split(torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))))
    return splits[0], splits[1], canonical, str(folder)


def _download(torchvision_class: str, root: Path) -> None:
    import torchvision.datasets as tvd

    cls = getattr(tvd, torchvision_class)
    for train in (True, False):
        cls(str(root), train=train, download=True)


def _disk_loader(subdir: str, read: Callable[[Path], tuple[Split, Split, bool, str]], torchvision_class: str,
                 offline_hint: str = ""):
    """A loader that reads `root/subdir`, downloading through torchvision when the files are missing."""

    def load(root: Path) -> tuple[Split, Split, bool, str]:
        folder = root / subdir
        try:
            return read(folder)
        except FileNotFoundError as missing:
            try:
                _download(torchvision_class, root)
            except Exception as exc:  # offline: say where files go and how to get them, in one line
                raise DataError(f"{missing.args[0] if missing.args else folder} not found and download failed "
                                f"({type(exc).__name__}); {HOW_TO_GET.format(root=root)}{offline_hint}") from None
            return read(folder)

    return load


# ----------------------------------------------------------------------------- synthetic data
def make_synthetic(num_classes: int, in_chans: int, size: int, n_train: int, n_test: int, seed: int = 0) -> tuple[Split, Split]:
    """Learnable stand-in data: each class is a smooth random prototype; samples add noise and shifts."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(num_classes, in_chans, 4, 4, generator=g)
    protos = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)

    def sample(n: int) -> Split:
        labels = torch.arange(n) % num_classes
        labels = labels[torch.randperm(n, generator=g)]
        x = protos[labels] + 0.25 * torch.randn(n, in_chans, size, size, generator=g)
        x = torch.roll(x, shifts=int(torch.randint(-2, 3, (1,), generator=g)), dims=3)
        return Split((x.clamp(0, 1) * 255).round().to(torch.uint8), labels)

    return sample(n_train), sample(n_test)


def _synthetic_loader(num_classes: int, in_chans: int, size: int, n_train: int, n_test: int):
    def load(root: Path) -> tuple[Split, Split, bool | None, str]:
        train, test = make_synthetic(num_classes, in_chans, size, n_train, n_test)
        return train, test, None, "synthetic"

    return load


# ----------------------------------------------------------------------------- registry
MNIST_STATS = ((0.1307,), (0.3081,))
FMNIST_STATS = ((0.2860,), (0.3530,))
C10_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
C100_STATS = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
# Label order of the official files (torchvision's `classes`); CIFAR-100's 100 names are not listed: "class N".
MNIST_CLASSES = tuple(f"digit {d}" for d in range(10))
FMNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
C10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

for _info in [
    DatasetInfo("mnist", 10, 1, 28, *MNIST_STATS, "none",
                _disk_loader("MNIST/raw", lambda f: load_idx_dataset(f, IDX_MD5["MNIST"]), "MNIST"),
                class_names=MNIST_CLASSES),
    DatasetInfo("fashion_mnist", 10, 1, 28, *FMNIST_STATS, "none",
                _disk_loader("FashionMNIST/raw", lambda f: load_idx_dataset(f, IDX_MD5["FashionMNIST"]), "FashionMNIST"),
                class_names=FMNIST_CLASSES),
    DatasetInfo("cifar10", 10, 3, 32, *C10_STATS, "cifar",
                _disk_loader("cifar-10-batches-py", lambda f: load_cifar_dataset(f, CIFAR_FILES["cifar-10-batches-py"]), "CIFAR10"),
                class_names=C10_CLASSES),
    DatasetInfo("cifar100", 100, 3, 32, *C100_STATS, "cifar",
                _disk_loader("cifar-100-python", lambda f: load_cifar_dataset(f, CIFAR_FILES["cifar-100-python"]), "CIFAR100",
                             "; CIFAR-100 has no offline copy: run the table with `--dataset cifar10` instead")),
    DatasetInfo("synthetic_mnist", 10, 1, 28, (0.5,), (0.25,), "none", _synthetic_loader(10, 1, 28, 2000, 500), True),
    DatasetInfo("synthetic_cifar10", 10, 3, 32, (0.5,) * 3, (0.25,) * 3, "cifar", _synthetic_loader(10, 3, 32, 2000, 500), True),
    DatasetInfo("synthetic_cifar100", 100, 3, 32, (0.5,) * 3, (0.25,) * 3, "cifar", _synthetic_loader(100, 3, 32, 4000, 1000), True),
]:
    DATASETS.register(_info.name, _info)


# ----------------------------------------------------------------------------- your own images
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


@lru_cache(maxsize=4)
def _read_folder(root: str, image_size: int | None, test_fraction: float, seed: int) -> tuple[Split, Split, list[str]]:
    """An image folder read once into uint8 tensors: `root/train/CLASS/*` and `root/test/CLASS/*` when both exist,
    else `root/CLASS/*` with a seeded stratified `test_fraction` held out. Every image is resized to a square of
    `image_size` (default: the first image's height); grey images stay one channel, others become RGB."""
    from PIL import Image

    base = Path(root).expanduser()
    parts = {"train": base / "train", "test": base / "test"} if (base / "train").is_dir() and (base / "test").is_dir() \
        else {"all": base}
    if not base.is_dir():
        raise DataError(f"image folder {base} not found")
    classes = sorted(d.name for d in parts.get("train", base).iterdir() if d.is_dir())
    if len(classes) < 2:
        raise DataError(f"image folder {parts.get('train', base)} needs one sub-folder per class (found {len(classes)})")
    files = {part: [(f, c) for c, name in enumerate(classes) for f in sorted((folder / name).glob("*"))
                    if f.suffix.lower() in IMAGE_SUFFIXES] for part, folder in parts.items()}
    first = next((f for fs in files.values() for f, _ in fs), None)
    if first is None:
        raise DataError(f"image folder {base} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    with Image.open(first) as im:
        mode = "L" if im.mode in ("L", "1", "I;16", "I") else "RGB"
        size = image_size or im.height

    def read(pairs) -> Split:
        arrays = []
        for f, _ in pairs:
            with Image.open(f) as im:
                arrays.append(np.asarray(im.convert(mode).resize((size, size)), dtype=np.uint8))
        x = torch.from_numpy(np.stack(arrays))
        x = x[:, None] if mode == "L" else x.permute(0, 3, 1, 2)
        return Split(x.contiguous(), torch.tensor([c for _, c in pairs], dtype=torch.long))

    if "all" in files:
        everything = read(files["all"])
        from sklearn.model_selection import train_test_split

        index = np.arange(len(everything))
        train_i, test_i = train_test_split(index, test_size=test_fraction, stratify=everything.labels.numpy(),
                                           random_state=seed)
        return everything.subset(np.sort(train_i)), everything.subset(np.sort(test_i)), classes
    return read(files["train"]), read(files["test"]), classes


def image_folder(name: str, root: str | Path, image_size: int | None = None, test_fraction: float = 0.2,
                 seed: int = 0, augment: str | None = None) -> DatasetInfo:
    """A dataset of your own images, one sub-folder per class (torchvision's ImageFolder layout; see `_read_folder`),
    read once into the uint8 layout every table uses; its channel statistics are taken from its training images.
    `augment`: "cifar" (pad-4 crop + flip, the default for colour images) or "none" (the default for grey ones).
    Register it (`DATASETS.register`), ship it as a `suite.datasets` entry point, or name it `folder:PATH`."""
    root = str(Path(root).expanduser().resolve())
    train, _, classes = _read_folder(root, image_size, test_fraction, seed)
    x = train.images.double() / 255
    mean = tuple(float(v) for v in x.mean(dim=(0, 2, 3)))
    std = tuple(max(float(v), 1e-3) for v in x.std(dim=(0, 2, 3)))
    in_chans = train.images.shape[1]

    def load(_data_root: Path) -> tuple[Split, Split, bool | None, str]:
        tr, te, _ = _read_folder(root, image_size, test_fraction, seed)
        return tr, te, None, root  # no official checksums to compare with: the header names the folder

    return DatasetInfo(name, len(classes), in_chans, train.images.shape[-1], mean, std,
                       augment or ("cifar" if in_chans == 3 else "none"), load, class_names=tuple(classes))


def fingerprint(train: Split, test: Split) -> str:
    h = hashlib.sha256()
    for t in (train.images, train.labels, test.images, test.labels):
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


@lru_cache(maxsize=8)
def _load_cached(name: str, root: str) -> DataBundle:
    info = DATASETS.get(name)
    train, test, canonical, source = info.load(Path(root))
    return DataBundle(info, train, test, fingerprint(train, test), canonical, source)


def load_dataset(name: str, data_dir: str | Path | None = None) -> DataBundle:
    """Load a registered dataset once per process (uint8 tensors on the CPU)."""
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    return _load_cached(name, str(root.resolve()))


def stratified_subset(split: Split, n: int | None, seed: int = 0) -> Split:
    """`n` images with the class proportions of `split` (all of it when n is None or too large)."""
    if n is None or n >= len(split):
        return split
    from sklearn.model_selection import train_test_split

    labels = split.labels.numpy()
    index, _ = train_test_split(np.arange(len(labels)), train_size=n, stratify=labels, random_state=seed)
    return split.subset(np.sort(index))


# ----------------------------------------------------------------------------- batches on the device
def random_crop_flip(x: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Batched CIFAR augmentation on uint8 images: zero (black) padding, random crop, horizontal flip."""
    b, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dev = x.device
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device="cpu").to(dev)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device="cpu").to(dev)
    rows = (dy[:, None] + torch.arange(h, device=dev))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=dev))[:, None, None, :]
    out = padded[torch.arange(b, device=dev)[:, None, None, None], torch.arange(c, device=dev)[None, :, None, None], rows, cols]
    flip = (torch.rand(b, generator=generator) < 0.5).to(dev)
    return torch.where(flip[:, None, None, None], out.flip(3), out)


class Normalizer:
    """uint8 images -> float, scaled to [0, 1] and standardised with the dataset's channel statistics."""

    def __init__(self, info: DatasetInfo, device: torch.device | str) -> None:
        self.mean = torch.tensor(info.mean, device=device).view(1, -1, 1, 1) * 255
        self.inv_std = 1 / (torch.tensor(info.std, device=device).view(1, -1, 1, 1) * 255)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        # in place on the one float copy: fresh large temporaries per batch cost more than the arithmetic on CPU
        return x.to(torch.float32, copy=True).sub_(self.mean).mul_(self.inv_std)  # a copy even of a float input

    def to_unit(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized images back to pixels in [0, 1] (an autoencoder's target space)."""
        return x / self.inv_std / 255 + self.mean / 255


def iterate_batches(split: Split, info: DatasetInfo, batch_size: int, *, shuffle: bool, augment: bool,
                    generator: torch.Generator | None = None, drop_last: bool = False,
                    normalize: bool = True, with_index: bool = False) -> Iterator[tuple[torch.Tensor, ...]]:
    """Yield (float images, labels) batches from a split already on its device; no per-image Python.
    `with_index` adds the samples' positions in the split (a memory bank over the training set needs them)."""
    device = split.images.device
    n = len(split)
    order = torch.randperm(n, generator=generator).to(device) if shuffle else torch.arange(n, device=device)
    norm = Normalizer(info, device) if normalize else None
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        idx = order[start:start + batch_size]
        x = split.images[idx]
        if augment and info.augment == "cifar":
            x = random_crop_flip(x, 4, generator if generator is not None else torch.default_generator)
        x = norm(x) if norm is not None else x.float() / 255
        yield (x, split.labels[idx], idx) if with_index else (x, split.labels[idx])
