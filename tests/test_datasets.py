"""Your own data in every table: an image folder (`folder:PATH`) and a dataset shipped as a `suite.datasets`
entry point of an out-of-tree package, each trained at smoke."""
import numpy as np
import pytest
import torch
from PIL import Image

import suite
import suite.data as D


def write_folder(root, classes=3, per_class=30, size=28, split=False):
    """Grey squares whose brightness and a bar's position tell the class: learnable in one epoch."""
    rng = np.random.default_rng(0)
    for c in range(classes):
        for i in range(per_class):
            part = ("train" if i < per_class * 3 // 4 else "test") if split else ""
            folder = root / part / f"class_{c}"
            folder.mkdir(parents=True, exist_ok=True)
            image = rng.integers(0, 40, (size, size)).astype(np.uint8) + 60 * c
            image[:, 4 + 8 * c: 8 + 8 * c] = 255
            Image.fromarray(image, "L").save(folder / f"{i}.png")
    return root


@pytest.fixture
def restore_datasets(monkeypatch):
    monkeypatch.setattr(D.DATASETS, "_items", dict(D.DATASETS._items))


def test_an_image_folder_reads_once_into_the_tables_layout(tmp_path, restore_datasets):
    info = D.image_folder("mine", write_folder(tmp_path / "imgs", split=True))
    assert (info.num_classes, info.in_chans, info.image_size, info.augment) == (3, 1, 28, "none")
    D.DATASETS.register("mine", info)
    data = D.load_dataset("mine")
    assert data.train.images.dtype == torch.uint8 and tuple(data.train.images.shape[1:]) == (1, 28, 28)
    assert (len(data.train), len(data.test)) == (66, 24) and data.train.labels.unique().tolist() == [0, 1, 2]
    assert data.canonical is None and data.source == str((tmp_path / "imgs").resolve())


def test_a_folder_dataset_trains_in_a_table_and_its_header_names_it(tmp_path, restore_datasets):
    root = write_folder(tmp_path / "imgs", per_class=60)  # no train/test split on disk: 20 % held out, stratified
    result = suite.compare(["baseline"], model="lenet5", dataset=f"folder:{root}", profile="smoke", epochs=8,
                           store=tmp_path / "runs" / "store.sqlite", progress=False)
    assert result.frame.loc[0, "n"] == 1 and result.frame.loc[0, "top1_mean"] > 100 / 3  # better than chance
    assert f"your own images from {root.resolve()}" in result.markdown


def test_an_out_of_tree_dataset_plugin_is_found_by_its_entry_point(tmp_path, monkeypatch, restore_datasets):
    root = write_folder(tmp_path / "imgs", per_class=60)
    site = tmp_path / "site"
    (site / "my_data_plugin").mkdir(parents=True)
    (site / "my_data_plugin" / "__init__.py").write_text(
        "from suite.data import image_folder\n\n\n"
        f"def dataset():\n    return image_folder('my_squares', {str(root)!r})\n")
    info = site / "my_data_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-data-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[suite.datasets]\nmy_squares = my_data_plugin:dataset\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(D.DATASETS, "_discover", D._discover_datasets)  # discovery runs again, with the plugin
    assert "my_squares" in D.DATASETS.names()
    result = suite.compare(["baseline"], model="lenet5", dataset="my_squares", profile="smoke", epochs=8,
                           store=tmp_path / "runs" / "store.sqlite", progress=False)
    assert result.frame.loc[0, "n"] == 1 and result.frame.loc[0, "top1_mean"] > 100 / 3


def test_a_folder_without_classes_is_one_line(tmp_path):
    (tmp_path / "flat").mkdir()
    with pytest.raises(suite.SuiteError, match="one sub-folder per class"):
        suite.compare(["baseline"], model="lenet5", dataset=f"folder:{tmp_path / 'flat'}", profile="smoke",
                      store=tmp_path / "runs" / "store.sqlite", progress=False)
