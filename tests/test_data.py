import gzip
import hashlib
import pickle

import numpy as np
import pytest
import torch

from suite import data as D


def write_idx(path, array, compress=False):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)
    return hashlib.md5(raw).hexdigest()


def make_mnist_dir(root, n_train=50, n_test=20, compress=False, sub="MNIST/raw"):
    folder = root / sub
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    md5 = {}
    for split, n in (("train", n_train), ("test", n_test)):
        img_name, lbl_name = D.IDX_FILES[split]
        md5[img_name] = write_idx(folder / img_name, rng.integers(0, 256, (n, 28, 28)), compress)
        md5[lbl_name] = write_idx(folder / lbl_name, rng.integers(0, 10, n), compress)
    return folder, md5


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_idx_files_load_raw_or_gz(tmp_path, compress):
    folder, md5 = make_mnist_dir(tmp_path, compress=compress)
    train, test, canonical, _ = D.load_idx_dataset(folder, D.IDX_MD5["MNIST"])
    assert train.images.shape == (50, 1, 28, 28) and train.images.dtype == torch.uint8
    assert test.labels.shape == (20,) and test.labels.dtype == torch.int64
    assert canonical is False  # random files are not the official ones
    _, _, canonical, _ = D.load_idx_dataset(folder, md5)  # ...and files matching the checksums are
    assert canonical is True


def test_truncated_idx_file_is_named(tmp_path):
    folder, _ = make_mnist_dir(tmp_path)
    path = folder / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(D.DataError, match="train-images-idx3-ubyte.*truncated"):
        D.load_idx_dataset(folder, {})


def write_cifar(root, folder_name, label_key, n_classes, bytes_keys):
    folder = root / folder_name
    folder.mkdir(parents=True)
    layout = D.CIFAR_FILES[folder_name]
    rng = np.random.default_rng(1)
    for name in layout["train"] + layout["test"]:
        d = {"data": rng.integers(0, 256, (30, 3072), dtype=np.uint8), label_key: rng.integers(0, n_classes, 30).tolist(),
             "batch_label": "synthetic"}
        if bytes_keys:
            d = {k.encode(): v for k, v in d.items()}
        with open(folder / name, "wb") as f:
            pickle.dump(d, f)
    return folder


@pytest.mark.parametrize("bytes_keys", [False, True])
def test_cifar10_pickles_with_str_or_bytes_keys(tmp_path, bytes_keys):
    write_cifar(tmp_path, "cifar-10-batches-py", "labels", 10, bytes_keys)
    train, test, canonical, _ = D.DATASETS.get("cifar10").load(tmp_path)
    assert train.images.shape == (150, 3, 32, 32) and len(test) == 30
    assert canonical is False


def test_cifar100_in_its_official_format(tmp_path):
    write_cifar(tmp_path, "cifar-100-python", "fine_labels", 100, bytes_keys=True)
    b = D.load_dataset("cifar100", tmp_path)
    assert b.info.num_classes == 100 and len(b.train) == 30 and b.canonical is False
    assert len(b.fingerprint) == 16


def test_missing_files_offline_give_one_line_with_the_place(tmp_path, monkeypatch):
    def offline(*a, **k):
        raise OSError("no network")

    monkeypatch.setattr(D, "_download", offline)
    with pytest.raises(D.DataError) as err:
        D.DATASETS.get("mnist").load(tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path / "MNIST" / "raw") in msg and "prepare.py" in msg


def test_synthetic_data_is_deterministic_and_has_the_right_shape():
    a, b = D.load_dataset("synthetic_cifar100"), D.load_dataset("synthetic_cifar100")
    assert a is b
    assert a.train.images.shape[1:] == (3, 32, 32) and a.info.num_classes == 100
    assert set(a.train.labels.tolist()) == set(range(100))
    assert a.canonical is None


def test_stratified_subset_keeps_class_proportions():
    labels = torch.tensor([0] * 800 + [1] * 200)
    split = D.Split(torch.zeros(1000, 1, 2, 2, dtype=torch.uint8), labels)
    sub = D.stratified_subset(split, 100)
    assert len(sub) == 100 and int((sub.labels == 1).sum()) == 20
    assert D.stratified_subset(split, None) is split


def test_random_crop_pads_with_black_and_flips():
    g = torch.Generator().manual_seed(0)
    x = torch.full((256, 3, 8, 8), 255, dtype=torch.uint8)
    out = D.random_crop_flip(x, 4, g)
    assert out.shape == x.shape and out.dtype == torch.uint8
    assert (out == 0).any() and (out == 255).any()  # zero padding shows up in shifted crops
    ramp = torch.arange(8, dtype=torch.uint8).repeat(64, 3, 8, 1)
    flipped = D.random_crop_flip(ramp, 0, g)  # no padding: only flips remain
    is_flipped = (flipped[:, 0, 0, 0] == 7)
    assert 0 < int(is_flipped.sum()) < 64
    assert torch.equal(flipped[is_flipped], ramp[is_flipped].flip(3))


def test_batches_are_normalized_floats():
    b = D.load_dataset("synthetic_mnist")
    x, y = next(D.iterate_batches(b.train, b.info, 100, shuffle=False, augment=False))
    assert x.dtype == torch.float32 and x.shape == (100, 1, 28, 28) and y.shape == (100,)
    assert -3 < float(x.mean()) < 3


def test_missing_cifar100_names_the_offline_alternative(tmp_path, monkeypatch):
    monkeypatch.setattr(D, "_download", lambda *a: (_ for _ in ()).throw(OSError("offline")))
    with pytest.raises(D.DataError, match="--dataset cifar10"):
        D.load_dataset("cifar100", tmp_path)
