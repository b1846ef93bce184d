"""EncodeNet: clustering, representatives, the derived decoder, the autoencoder stage and the frozen transfer."""
import numpy as np
import pytest
import torch

from baselines import create_model, model_names
from suite.autoencoder import ConvertingAutoencoder
from suite.cli import main
from suite.representatives import choose_targets, elbow_k, kmeans_inertias
from suite.spec import CellSpec


def blobs(n_per: int, centers: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([c + 0.3 * rng.standard_normal((n_per, centers.shape[1])) for c in centers])


def test_elbow_picks_three_clusters_on_three_separated_blobs():
    centers = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = blobs(100, centers, seed=0)
    ks = list(range(1, 9))
    assert elbow_k(ks, kmeans_inertias(x, range(1, 9))) == 3
    # through the per-class path too: two classes, each made of three blobs
    feats = np.concatenate([x, blobs(100, centers + 50, seed=1)])
    labels = np.repeat([0, 1], 300)
    targets = choose_targets(feats, labels, np.random.default_rng(0).random(600), "kmeans", k=0, max_k=8)
    assert targets.elbow["k"] == 3 and targets.clusters_per_class == [3, 3]


@pytest.mark.parametrize("method", ["kmeans", "cosine", "hdbscan", "none"])
def test_representatives_are_the_lowest_entropy_member_of_each_class_and_cluster(method):
    rng = np.random.default_rng(0)
    feats = np.concatenate([blobs(40, np.array([[5.0, 5.0], [-5.0, 5.0]]), seed=s) for s in range(3)])
    labels = np.repeat([0, 1, 2], 80)
    entropy = rng.random(len(labels))
    t = choose_targets(feats, labels, entropy, method, k=2)
    rep, cluster = t.representative.numpy(), t.cluster.numpy()
    groups = {(c, j) for c, j in zip(labels, cluster)}
    assert len(groups) == sum(t.clusters_per_class)
    for c, j in groups:
        members = np.flatnonzero((labels == c) & (cluster == j))
        assert set(rep[members]) == {members[np.argmin(entropy[members])]}
    if method == "none":
        assert t.clusters_per_class == [1, 1, 1]


@pytest.mark.parametrize("name", model_names())
def test_derived_decoder_maps_every_models_encoder_output_back_to_the_input_shape(name):
    image = (1, 28, 28) if name.startswith("lenet") else (3, 32, 32)
    model = create_model(name, num_classes=10, in_chans=image[0])
    for at in (None, 1):
        encoder, _ = model.split(at)
        out = ConvertingAutoencoder(encoder, image).eval()(torch.randn(2, *image))
        assert out.shape == (2, *image) and 0 <= out.min() and out.max() <= 1


def encodenet_spec(method="encodenet", **params):
    return CellSpec.make(method, "lenet5", "synthetic_mnist", "smoke", params=params,
                         recipe_overrides={"epochs": 3, "train_subset": 600})


def test_autoencoder_loss_falls_while_training_on_synthetic_data(make_runner):
    runner = make_runner()
    cells = runner.plan([encodenet_spec("encodenet_ae", encoder_init="scratch")])
    assert [c.spec.method for c in cells] == ["baseline", "encodenet_targets", "encodenet_ae"]
    assert runner.run(cells).failed == {}
    losses = runner.store.get(cells[-1].key)["metrics"]["stages"][0]["history"]
    losses = [h["loss"] for h in losses]  # the per-epoch history (suite/tracking.py)
    assert len(losses) == 3 and losses[0] > losses[1] > losses[2] and losses[2] < 0.95 * losses[0]


def test_transfer_keeps_the_encoder_bit_identical_and_the_baselines_parameter_count(make_runner):
    runner = make_runner()
    cell = runner.resolve(encodenet_spec())
    assert runner.run(runner.plan([cell.spec])).failed == {}
    ae_cell, base_cell = cell.deps["autoencoder"], cell.deps["baseline"]

    def load(c):
        return runner.load_model(c)

    autoencoder, baseline, final = load(ae_cell), load(base_cell), load(cell)
    encoder, classifier = final.split()
    before, after = autoencoder.encoder.state_dict(), encoder.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert sum(p.numel() for p in final.parameters()) == sum(p.numel() for p in baseline.parameters())
    assert not torch.equal(classifier[-1].fc.weight, baseline.head.fc.weight)  # only the head was trained
    metrics = runner.store.get(cell.key)["metrics"]
    assert metrics["params_equal_baseline"] and metrics["top1"] > 20  # 10 classes: chance is 10 %


def test_frozen_batchnorm_statistics_do_not_move_during_transfer(make_runner):
    runner = make_runner()
    spec = CellSpec.make("encodenet", "resnet8", "synthetic_cifar10", "smoke", recipe_overrides={"epochs": 1})
    cell = runner.resolve(spec)
    assert runner.run(runner.plan([spec])).failed == {}

    ae = cell.deps["autoencoder"]
    autoencoder = runner.load_model(ae)
    final = runner.load_model(cell)
    before, after = autoencoder.encoder.state_dict(), final.split()[0].state_dict()
    assert any(k.endswith("running_mean") for k in before)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_bad_encodenet_option_fails_in_one_line(make_runner):
    with pytest.raises(ValueError, match="clustering='kmedoids' is not one of kmeans, none, hdbscan, cosine"):
        make_runner().resolve(encodenet_spec(clustering="kmedoids"))


def test_encodenet_and_ablation_tables_complete_at_smoke_profile(run_dir, capsys):
    base = ["--out", str(run_dir["out"]), "--store", str(run_dir["store"]), "--quiet", "--profile", "smoke"]
    assert main(base + ["--table", "encodenet,ablation", "--dataset", "synthetic_mnist"]) == 0
    out = capsys.readouterr().out
    assert "encodenet: trained" in out and "ablation: trained" in out and "failed 0" in out
    md = (run_dir["out"] / "encodenet.md").read_text()
    assert "| EncodeNet " in md and "equal epochs" in md and "(elbow)" in md
    assert list(run_dir["out"].glob("encodenet_conversions_*.png")) and list(run_dir["out"].glob("encodenet_elbow_*.png"))
    assert "Recon MSE (reported)" in (run_dir["out"] / "ablation.md").read_text()


@pytest.mark.parametrize("dataset, first, last", [("cifar10", "airplane", "truck"),
                                                  ("fashion_mnist", "T-shirt/top", "Ankle boot"),
                                                  ("synthetic_cifar10", "class 0", "class 9")])
def test_the_representatives_figure_labels_each_row_with_the_datasets_class_name(monkeypatch, tmp_path, dataset,
                                                                                first, last):
    from types import SimpleNamespace

    import methods.encodenet as encodenet
    from suite.data import DATASETS, Split

    labels = torch.arange(40) % 10
    targets = choose_targets(np.random.default_rng(0).random((40, 2)), labels.numpy(), np.random.default_rng(1).random(40),
                             "none")
    drawn = {}
    monkeypatch.setattr(encodenet, "image_grid", lambda rows, title, path: drawn.setdefault("rows", rows))
    ctx = SimpleNamespace(train=Split(torch.zeros(40, 3, 4, 4, dtype=torch.uint8), labels), info=DATASETS.get(dataset),
                          artifact_dir=tmp_path, spec=CellSpec.make("encodenet_targets", "resnet20", dataset, "smoke"),
                          params=SimpleNamespace(clustering="none"))
    encodenet.EncodeNetTargets.draw_representatives(ctx, targets)
    names = [label for label, _ in drawn["rows"]]
    assert len(names) == 10 and names[0] == first and names[-1] == last
