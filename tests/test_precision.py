"""The numerics policy: precision is part of the key, fp32 keys are those of before, bf16 trains and every
measurement of a bf16 cell (latency, throughput, perturbed inputs, int8 conversion) runs without dtype errors."""
import pytest
import torch

from baselines import create_model
from suite.data import load_dataset
from suite.harness import evaluate, fit
from suite.numerics import native_bf16_cpu, resolve_precision
from suite.profiles import Recipe
from suite.spec import CellSpec

# Keys computed by the suite at commit c074fae, before precision was a choice: fp32 cells must keep them,
# so published records (and stores) stay valid under `--precision fp32`.
KEYS_BEFORE_PRECISION = {
    CellSpec.make("baseline", "lenet5", "synthetic_mnist", "smoke"): "d15e51597f7993c4697b",
    CellSpec.make("kd", "lenet5_half", "synthetic_mnist", "smoke", params={"teacher": "lenet5"},
                  protocol="compression"): "40b3bbbe8f450b66e9b8",
    CellSpec.make("encodenet", "resnet8", "synthetic_cifar10", "smoke"): "61d1a2f180dee38765ee",
}


@pytest.mark.parametrize("spec", list(KEYS_BEFORE_PRECISION), ids=lambda s: s.method)
def test_fp32_reproduces_the_keys_of_before_and_bf16_has_its_own(make_runner, spec):
    fp32 = make_runner(precision="fp32").resolve(spec)
    bf16 = make_runner(precision="bf16").resolve(spec)
    assert fp32.key == KEYS_BEFORE_PRECISION[spec]
    assert bf16.key != fp32.key and bf16.precision == "bf16"
    assert all(d.key != fp32.deps[role].key for role, d in bf16.deps.items())  # dependencies too


def test_auto_resolves_by_device_and_native_support():
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"
    assert resolve_precision("auto", torch.device("cpu")) == ("bf16" if native_bf16_cpu() else "fp32")
    assert resolve_precision("fp32", torch.device("cuda")) == "fp32"
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        resolve_precision("fp16", torch.device("cpu"))


def test_bf16_training_learns_well_above_chance_on_synthetic_data():
    data = load_dataset("synthetic_mnist")
    torch.manual_seed(0)
    model = create_model("lenet5", num_classes=10, in_chans=1)
    fit(model, data.train, data.info, Recipe(epochs=3, batch_size=64, lr=0.02), progress=False, precision="bf16")
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast: the weights stay fp32
    assert evaluate(model, data.test, data.info, precision="bf16")["top1"] > 60  # chance is 10 %


def test_every_measurement_of_bf16_cells_runs(make_runner):
    """A bf16-trained baseline and what is built on it: int8 (static, dynamic, QAT), pruning, clustering,
    early exit, each evaluated clean and perturbed, timed at batch 1 and batched."""
    runner = make_runner(precision="bf16")

    def spec(method, **params):
        return CellSpec.make(method, "lenet5", "synthetic_mnist", "smoke", params=params)

    specs = [spec("baseline"), spec("quantize", mode="static", flow="fx"), spec("quantize", mode="dynamic"),
             spec("quantize", mode="qat"), spec("prune", sparsity=0.5), spec("cluster", bits=4),
             spec("early_exit", threshold=0.5)]
    cells = runner.plan(specs)
    summary = runner.run(cells)
    assert summary.failed == {}
    for s in specs:
        m = runner.store.get(runner.resolve(s).key)["metrics"]
        assert m["precision"] == "bf16" and m["top1"] > 0 and m["latency_ms"] > 0
        assert set(m["robust_top1"]) == {"gaussian_noise_0.3", "salt_pepper_10pct"}
        expected = "fp32" if s.method == "quantize" else "bf16"  # int8 kernels are timed as deployed
        assert m.get("measured_precision", expected) == expected
    qat = runner.load_model(runner.resolve(specs[3]))
    assert any("quantized" in type(m).__module__ for m in qat.modules())  # the int8 model reloads as int8
