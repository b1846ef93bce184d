"""Compression plugins: stated sparsity, schedules, int8 size and accuracy, clustering, channel pruning."""
import pytest
import torch

from methods.prune import gradual_sparsity
from suite.compress import compressible_layers, prunable_layers, weight_sparsity
from suite.spec import CellSpec


def spec(method, model="lenet5", **params):
    return CellSpec.make(method, model, "synthetic_mnist", "smoke", params=params, protocol="compression",
                         recipe_overrides={"epochs": 2, "train_subset": None})


@pytest.fixture(scope="module")
def compressed(tmp_path_factory):
    """One trained baseline and every compression cell built from it, run once for this module."""
    from suite.runner import Runner
    from suite.store import Store

    root = tmp_path_factory.mktemp("compression")
    runner = Runner(Store(root / "s.sqlite"), root / "artifacts", device="cpu", progress=False, log=lambda *_: None)
    specs = {"baseline": spec("baseline"), "global50": spec("prune", sparsity=0.5),
             "layer80": spec("prune", sparsity=0.8, scope="layer"),
             "gradual": spec("prune", sparsity=0.8, schedule="gradual", initial_sparsity=0.5, finetune_fraction=1.0),
             "static": spec("quantize", mode="static"), "qat": spec("quantize", mode="qat"),
             "cluster": spec("cluster", bits=3), "channels": spec("structured_prune", ratio=0.4)}
    cells = runner.plan(list(specs.values()))
    summary = runner.run(cells)
    assert summary.failed == {}
    assert sum(c.spec.method == "baseline" for c in cells) == 1  # every method starts from the same baseline
    keys = {name: runner.resolve(s).key for name, s in specs.items()}
    return runner, keys, root / "artifacts"


def final_state(artifacts, key):
    return torch.load(artifacts / key / "model.pt", weights_only=False)


def layer_weights(state):
    return {k: v for k, v in state.items() if k.endswith("weight") and v.ndim in (2, 4)}


@pytest.mark.parametrize("name,target", [("global50", 0.5), ("layer80", 0.8), ("gradual", 0.8)])
def test_pruned_models_keep_the_stated_sparsity_after_fine_tuning(compressed, name, target):
    runner, keys, artifacts = compressed
    weights = layer_weights(final_state(artifacts, keys[name]))
    classifier = weights.pop("head.fc.weight")  # exempt, as in ShrinkBench
    assert not (classifier == 0).any()
    zeros = sum(int((w == 0).sum()) for w in weights.values())
    assert zeros / sum(w.numel() for w in weights.values()) == pytest.approx(target, abs=0.01)
    assert runner.store.get(keys[name])["metrics"]["sparsity"] == pytest.approx(target, abs=0.01)
    if name == "layer80":  # per-layer scope: every layer at the target
        for w in weights.values():
            assert float((w == 0).float().mean()) == pytest.approx(target, abs=0.01)


def test_gradual_schedule_reaches_its_final_sparsity_on_its_last_step(compressed):
    schedule = [gradual_sparsity(t, 5, 0.5, 0.8) for t in range(5)]
    assert schedule[0] == pytest.approx(0.5) and schedule[-1] == pytest.approx(0.8)
    assert all(a <= b for a, b in zip(schedule, schedule[1:]))
    runner, keys, _ = compressed
    recorded = runner.store.get(keys["gradual"])["metrics"]["sparsity_schedule"]
    assert recorded[0] == pytest.approx(0.5) and recorded[-1] == pytest.approx(0.8)


def test_fx_int8_model_holds_int8_weights_is_3x_smaller_and_classifies(compressed):
    runner, keys, artifacts = compressed
    base = runner.store.get(keys["baseline"])["metrics"]
    m = runner.store.get(keys["qat"])["metrics"]
    assert m["int8_flow"].startswith("torch.ao FX")  # QAT runs on the FX flow, and the record says so
    assert base["size_bytes"] / m["size_bytes"] >= 3
    assert m["top1"] > 50  # chance is 10 %
    assert m["params"] == base["params"]  # same weights, counted from the int8 state dict
    state = final_state(artifacts, keys["qat"])
    assert any(isinstance(v, torch.Tensor) and v.dtype == torch.qint8 for v in state.values())


def test_pt2e_int8_model_holds_int8_weights_reloads_and_classifies(compressed):
    from methods.quantize import QuantizeParams, resolve_flow

    if resolve_flow(QuantizeParams()) != "pt2e":
        pytest.skip("torchao's pt2e X86 quantizer is not importable with this torch")
    runner, keys, artifacts = compressed
    base = runner.store.get(keys["baseline"])["metrics"]
    m = runner.store.get(keys["static"])["metrics"]
    assert m["int8_flow"].startswith("pt2e")  # torchao is installed: static PTQ took the pt2e flow
    assert m["top1"] > 50 and m["params"] == base["params"]
    model = runner.load_model(runner.resolve(spec("quantize", mode="static")))  # rebuilt from the saved program
    weights = [v for k, v in model.graph.state_dict().items() if v.dtype == torch.int8]
    assert sum(w.numel() for w in weights) == sum(w.numel() for w in layer_weights(
        final_state(artifacts, keys["baseline"])).values())  # every conv and linear weight is int8
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)


def test_clustered_layers_hold_at_most_2_to_the_bits_values(compressed):
    runner, keys, artifacts = compressed
    for w in layer_weights(final_state(artifacts, keys["cluster"])).values():
        assert len(torch.unique(w)) <= 2 ** 3
    m = runner.store.get(keys["cluster"])["metrics"]
    assert m["size_bytes"] < runner.store.get(keys["baseline"])["metrics"]["size_bytes"] / 5


def test_structured_pruning_removes_about_the_asked_ratio(compressed):
    runner, keys, _ = compressed
    base = runner.store.get(keys["baseline"])["metrics"]["params"]
    kept = runner.store.get(keys["channels"])["metrics"]["params"] / base
    assert kept == pytest.approx((1 - 0.4) ** 2, abs=0.05)  # input and output channels both shrink by 40 %


def test_weight_sparsity_counts_zeros_of_conv_and_linear_weights():
    from baselines import create_model

    model = create_model("lenet5", 10, 1)
    with torch.no_grad():
        for _, m in compressible_layers(model):
            m.weight.zero_()
    assert weight_sparsity(model) == 1.0


@pytest.mark.parametrize("name", ["channels", "static", "qat", "cluster", "global50"])
def test_every_compressed_cell_reloads_and_remeasures(compressed, name):
    """restore() rebuilds a channel-pruned model from its weights' shapes and an int8 model by its flow, so every
    finished cell can be re-measured (and be a dependency) with the same accuracy."""
    runner, keys, _ = compressed
    cell = next(c for c in runner.planner._cells.values() if c.key == keys[name])
    before = runner.store.get(cell.key)["metrics"]
    assert runner.remeasure(cell) is None
    after = runner.store.get(cell.key)["metrics"]
    assert "remeasured" in after and after["top1"] == pytest.approx(before["top1"])
    assert after["params"] == before["params"]


@pytest.mark.parametrize("name", ["baseline", "global50", "cluster", "channels"])
def test_a_timing_model_has_the_trained_cells_architecture(compressed, name):
    """The model `--remeasure` times where a cell's saved model is not on the machine does the same work: every
    weight tensor of the trained cell's model has its shape (a channel-pruned one included: the ratio is per layer,
    so the same widths whichever channels the seed or the weights chose)."""
    runner, keys, artifacts = compressed
    cell = next(c for c in runner.planner._cells.values() if c.key == keys[name])
    twin = cell.method.timing_model(cell.spec, cell.info, cell.params)
    trained = final_state(artifacts, cell.key)
    assert {k: tuple(v.shape) for k, v in twin.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in trained.items() if not k.endswith(("_orig", "_mask"))}


@pytest.mark.parametrize("name", ["static", "qat"])
def test_an_int8_cell_has_no_timing_model(compressed, name):
    runner, keys, _ = compressed
    cell = next(c for c in runner.planner._cells.values() if c.key == keys[name])
    assert cell.method.timing_model(cell.spec, cell.info, cell.params) is None


def test_remeasure_without_the_saved_model_retimes_the_architecture_and_keeps_the_recorded_figures(compressed):
    """Records imported without their models (another machine): `--remeasure` still re-times a channel-pruned cell
    on its architecture (latency and throughput new, accuracy and size as recorded, the record says how it was
    timed), and refuses an int8 cell in one line, leaving its record as it was."""
    from suite.execute import TIMED_ON_TWIN

    runner, keys, artifacts = compressed
    moved = []
    try:
        for name in ("channels", "static"):
            model = artifacts / keys[name] / "model.pt"
            model.rename(model.with_suffix(".away"))
            moved.append(model)
        channels = next(c for c in runner.planner._cells.values() if c.key == keys["channels"])
        before = runner.store.get(channels.key)["metrics"]
        assert runner.remeasure(channels) is None
        after = runner.store.get(channels.key)["metrics"]
        assert after["remeasured"]["timed_on"] == TIMED_ON_TWIN
        assert after["latency_ms"] > 0 and after["throughput_img_s"] > 0
        for kept in ("top1", "robust_top1", "size_bytes", "params", "flops", "stages"):
            assert after[kept] == before[kept], kept
        static = next(c for c in runner.planner._cells.values() if c.key == keys["static"])
        before = runner.store.get(static.key)["metrics"]
        reason = runner.remeasure(static)
        assert "re-timed only from that model" in reason and "\n" not in reason
        assert runner.store.get(static.key)["metrics"] == before
    finally:
        for model in moved:
            model.with_suffix(".away").rename(model)


def test_clustered_resnet8_keeps_its_accuracy_under_the_cpu_sgd_recipe(make_runner):
    """Centroid fine-tuning at the `cpu` profile's SGD learning rate (0.1): with the summed centroid
    gradient this collapsed to chance (10 %); the averaged one keeps most of the baseline's accuracy."""
    def cifar(method, **params):
        return CellSpec.make(method, "resnet8", "synthetic_cifar10", "cpu", params=params, protocol="compression",
                             recipe_overrides={"epochs": 4, "train_subset": None})

    runner = make_runner()
    cells = runner.plan([cifar("cluster", bits=4)])
    assert cells[1].recipe.optimizer == "sgd" and cells[1].recipe.lr >= 0.05
    assert runner.run(cells).failed == {}
    baseline, clustered = (runner.store.get(c.key)["metrics"]["top1"] for c in cells)
    assert baseline > 50 and clustered > 0.8 * baseline, (baseline, clustered)


@pytest.mark.parametrize("scope", ["global", "layer"])
@pytest.mark.parametrize("criterion", ["magnitude", "random"])
def test_pruning_reaches_every_asked_ratio_of_the_pruning_table(scope, criterion):
    """The table asks for a whole-model compression ratio (ShrinkBench's: all parameters over non-zero ones,
    the classifier exempt); every operating point reaches it within 1 %."""
    from baselines import create_model
    from methods.prune import bake_masks, prune_to
    from suite.compress import prunable_layers, sparsity_for_compression
    from suite.tables.pruning import RATIOS

    for ratio in RATIOS:
        model = create_model("lenet5", num_classes=10, in_chans=1)
        sparsity = sparsity_for_compression(model, ratio)
        prune_to(model, sparsity, scope, criterion, seed=0)
        assert weight_sparsity(model, prunable_layers(model)) == pytest.approx(sparsity, abs=0.01)
        bake_masks(model)
        nonzero = sum(int((p != 0).sum()) for p in model.parameters())
        assert sum(p.numel() for p in model.parameters()) / nonzero == pytest.approx(ratio, rel=0.01), (ratio, scope)
        assert not (model.head.fc.weight == 0).any()


def test_random_pruning_is_seeded_and_differs_from_magnitude_pruning():
    from baselines import create_model
    from methods.prune import prune_to

    torch.manual_seed(0)
    base = create_model("lenet5", num_classes=10, in_chans=1).state_dict()

    def mask(criterion, seed):
        model = create_model("lenet5", num_classes=10, in_chans=1)
        model.load_state_dict(base)
        prune_to(model, 0.75, "global", criterion, seed)
        return torch.cat([m.weight_mask.flatten() for _, m in prunable_layers(model)])

    assert torch.equal(mask("random", 0), mask("random", 0))
    assert not torch.equal(mask("random", 0), mask("random", 1))
    assert (mask("random", 0) != mask("magnitude", 0)).float().mean() > 0.2


def test_flops_after_removal_count_only_non_zero_weights():
    from suite.measure import count_flops, count_nonzero_flops

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(8 * 16, 10))
    x = torch.zeros(1, 3, 4, 4)
    assert count_nonzero_flops(model, x) == count_flops(model, x)  # dense: the FLOP counter's conv + linear figure
    with torch.no_grad():
        model[0].weight[:4] = 0  # half the conv's output channels
        model[2].weight[:, ::2] = 0  # half the linear weights
    assert count_nonzero_flops(model, x) == count_flops(model, x) // 2


def test_gradual_pruning_works_on_channels_last_weights():
    """Under bf16 the harness trains in channels_last, and the gradual schedule prunes between epochs;
    torch's own pruning functions fail on such weights (`.view` of a non-contiguous tensor)."""
    from baselines import create_model
    from methods.prune import prune_to
    from suite.numerics import to_memory_format

    model = to_memory_format(create_model("resnet8"), "bf16")
    for step, target in enumerate((0.5, 0.75, 0.875)):
        prune_to(model, target, "global", "magnitude", step)
        assert weight_sparsity(model) == pytest.approx(target, abs=0.01)


def test_baking_masks_keeps_the_zeros_and_passes_over_layers_never_pruned():
    """Sparsity 0 (the pruning table's control, or CAE-Net's pruning without connection pruning) attaches no
    mask; baking must still succeed (torch's `prune.remove` raises on such a layer)."""
    from torch.nn.utils import prune

    from baselines import create_model
    from methods.prune import bake_masks, prune_to

    dense, sparse = create_model("lenet5"), create_model("lenet5")
    prune_to(dense, 0.0, "global")
    prune_to(sparse, 0.5, "global")
    for model in (dense, sparse):
        bake_masks(model)
        assert not any(prune.is_pruned(m) for _, m in compressible_layers(model))
    assert weight_sparsity(dense) == 0 and weight_sparsity(sparse) == pytest.approx(0.5, abs=0.01)


def test_pruned_rows_are_judged_against_the_dense_fine_tuned_control_not_the_untouched_baseline():
    """Constructed seeds: a pruned row 1 point above the untouched baseline, level with the control that had the
    same fine-tuning epochs, is "within noise" (its gain was the epochs), with its +1.00 to the baseline beside it."""
    import pandas as pd

    from suite import columns as C
    from suite.tables import get_table

    frame = pd.DataFrame([
        {"Pair": "p", "_role": "reference", "_top1_values": [80.0, 80.2, 79.8]},
        {"Pair": "p", "_role": "control", "_top1_values": [81.0, 81.2, 80.8]},
        {"Pair": "p", "_role": "", "_top1_values": [81.1, 81.0, 80.9]},
        {"Pair": "p", "_role": "", "_top1_values": [78.0, 78.1, 77.9]},
    ])
    for relative in get_table("pruning").relative:
        if relative.name in (C.VERDICT_DELTA, C.VERDICT, C.DELTA_UNTOUCHED):
            frame = relative.apply(frame)
    level, worse = frame.iloc[2], frame.iloc[3]
    assert level[C.VERDICT].startswith("within noise (q") and level[C.VERDICT_DELTA].startswith("+0.00 [")
    assert level[C.DELTA_UNTOUCHED].startswith("+1.00 [")
    assert worse[C.VERDICT].startswith("worse (q") and worse[C.VERDICT_DELTA].startswith("-3.00 [")
    assert frame.iloc[1][C.VERDICT] == "—"  # the control is not compared with itself
    assert frame.iloc[0][C.VERDICT].startswith("worse (q")  # the untouched baseline: below the control


def test_compression_table_has_a_dense_fine_tuned_control_for_its_fine_tuned_rows():
    from suite.tables import TableOptions, get_table

    rows = get_table("compression").rows(TableOptions(profile="smoke", dataset="synthetic_mnist"))
    by_label = {r.labels["Model"]: r for r in rows}
    control = by_label["Dense + the same fine-tuning (control)"]
    assert control.role == "control" and control.spec.method == "prune" and control.spec.params_dict == {"sparsity": 0.0}
    for label, versus in [("Pruning, constant 50 % (global)", "control"), ("Weight clustering, 4 bit", "control"),
                          ("Structured pruning, 40 % of channels", "control"), ("QAT int8", "QAT's control"),
                          ("PTQ dynamic int8 (linear layers)", "baseline"), ("KD → half-width, T = 4", "student alone")]:
        assert by_label[label].extra["Verdict against"] == versus, label
    # QAT's control fine-tunes the dense model for QAT's epochs at QAT's lr, read from quantize's defaults
    qat = by_label["QAT int8"].spec
    qat_params = __import__("suite.plugins", fromlist=["get_method"]).get_method("quantize").make_params(qat.params_dict)
    qat_control = by_label["Dense + QAT's fine-tuning (QAT's control)"]
    assert qat_control.role == "qat_control" and qat_control.spec.method == "prune"
    assert qat_control.spec.params_dict == {"sparsity": 0.0, "finetune_fraction": qat_params.qat_fraction,
                                            "finetune_lr_scale": qat_params.qat_lr_scale}


def test_a_fine_tuning_lr_scale_is_the_qat_controls_lr_and_leaves_published_prune_keys_alone(make_runner):
    """`finetune_lr_scale` came after prune cells were published: at its default the key is the old one (the
    field is `added_later`), set it makes a new cell, and the fine-tuning stage trains at that lr."""
    import dataclasses

    from suite.compress import finetune_recipe
    from suite.plugins import get_method
    from suite.spec import CellSpec

    runner = make_runner()

    def key(**params) -> str:
        return runner.resolve(CellSpec.make("prune", "lenet5", "synthetic_mnist", "smoke", params=params)).key

    method = get_method("prune")
    params = method.make_params({"sparsity": 0.0})
    assert "finetune_lr_scale" not in method.key_params(params)
    assert method.key_params(params) == {k: v for k, v in dataclasses.asdict(params).items() if k != "finetune_lr_scale"}
    assert key(sparsity=0.0) != key(sparsity=0.0, finetune_lr_scale=0.1)
    tuned = CellSpec.make("prune", "lenet5", "synthetic_mnist", "smoke", params={"sparsity": 0.0, "finetune_lr_scale": 0.1})
    cell = runner.resolve(tuned)
    runner.run(runner.plan([tuned]))
    stage, = [s for s in runner.store.get(cell.key)["metrics"]["stages"] if s["stage"] == "finetune"]
    assert stage["history"][0]["lr"] == pytest.approx(finetune_recipe(cell.recipe, 0.5).lr * 0.1)
