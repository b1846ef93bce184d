"""Edge models: CAE-Net's autoencoder and composite classifier, BranchyNet early exit, latency, the `edge` table."""
import pytest
import torch
from torch import nn

from baselines import create_model
from methods.early_exit import EarlyExitNet
from suite.cli import main
from suite.measure import measure_model
from suite.spec import CellSpec


@pytest.mark.parametrize("name,image", [("caenet_lenet", (1, 28, 28)), ("caenet_alexnet", (3, 32, 32))])
def test_caenet_autoencoder_has_five_conv_and_five_deconv_layers_and_keeps_the_input_shape(name, image):
    model = create_model(name, num_classes=10, in_chans=image[0])
    encoder, _ = model.split()
    decoder = model.converting_decoder()
    assert sum(isinstance(m, nn.Conv2d) for m in encoder.modules()) == 5
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in decoder.modules()) == 5
    x = torch.randn(2, *image)
    assert decoder(encoder(x)).shape == x.shape


def test_caenet_composite_keeps_its_pretrained_encoder_frozen(make_runner):
    runner = make_runner()
    params = {"encoder_init": "scratch", "head_init": "scratch", "head_epochs_scale": 1.0, "targets_model": "lenet5"}
    spec = CellSpec.make("encodenet", "caenet_lenet", "synthetic_mnist", "smoke", params=params,
                         recipe_overrides={"epochs": 2})
    cell = runner.resolve(spec)
    assert runner.run(runner.plan([spec])).failed == {}
    ae = cell.deps["autoencoder"]
    assert ae.deps["targets"].spec.model == "lenet5"  # EncodeNet's targets stage, scored by the reference model
    load = runner.load_model
    autoencoder, composite = load(ae), load(cell)
    before, after = autoencoder.encoder.state_dict(), composite.split()[0].state_dict()
    assert any(k.endswith("running_var") for k in before)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert isinstance(autoencoder.decoder[0], nn.ConvTranspose2d)  # CAE-Net's own decoder, not the derived one


def test_early_exit_threshold_zero_uses_the_last_exit_and_a_huge_one_the_first():
    torch.manual_seed(0)
    base = create_model("resnet8", num_classes=10, in_chans=3)
    net = EarlyExitNet(base, (0, 1), (3, 32, 32)).eval()
    x = torch.randn(16, 3, 32, 32)
    with torch.no_grad():
        exits = net.forward_exits(x)
        net.threshold = 0.0
        assert torch.equal(net(x), exits[-1]) and net.exit_counts.tolist() == [0, 0, 16]
        net.exit_counts.zero_()
        net.threshold = 1e9
        assert torch.equal(net(x), exits[0]) and net.exit_counts.tolist() == [16, 0, 0]


def test_latency_is_median_and_p90_of_at_least_100_timed_runs_after_warm_up():
    class Counting(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.single = nn.Linear(8, 2), 0

        def forward(self, x):
            self.single += x.shape[0] == 1
            return self.fc(x.flatten(1))

    model = Counting()
    out = measure_model(model, (1, 2, 4), throughput_seconds=0.01)
    assert out["latency_runs"] >= 100 and out["latency_p90_ms"] >= out["latency_ms"] > 0
    assert model.single >= out["latency_runs"] + 10  # every timed run plus the warm-up ones


def test_branchynet_trains_once_for_a_threshold_sweep_and_reports_exit_fractions(make_runner):
    runner = make_runner()
    specs = [CellSpec.make("early_exit", "lenet5", "synthetic_mnist", "smoke", params={"threshold": t},
                           recipe_overrides={"epochs": 2}) for t in (0.0, 1e9)]
    cells = runner.plan(specs)
    assert [c.spec.method for c in cells] == ["baseline", "branchynet", "early_exit", "early_exit"]
    assert runner.run(cells).failed == {}
    last, first = (runner.store.get(c.key)["metrics"] for c in cells[2:])
    assert last["exit_fractions"] == [0.0, 1.0] and first["exit_fractions"] == [1.0, 0.0]
    assert last["latency_runs"] == 200 and last["epochs_trained"] == 0


def test_edge_table_completes_at_smoke_profile_with_an_slo(run_dir, capsys):
    args = ["--out", str(run_dir["out"]), "--store", str(run_dir["store"]), "--quiet", "--profile", "smoke",
            "--table", "edge", "--dataset", "synthetic_mnist", "--slo-ms", "1e-6"]
    assert main(args) == 0
    assert "failed 0" in capsys.readouterr().out
    md = (run_dir["out"] / "edge.md").read_text()
    assert "LeNet-5 (reference)" in md and "CAE-Net composite without transfer" in md and "not reproduced" in md
    assert "| no " in md and "| yes " not in md  # nothing runs in a nanosecond
    assert (run_dir["out"] / "edge_latency_slo.png").exists()


@pytest.mark.parametrize("args,needle", [
    (["--slo-ms", "-3"], "--slo-ms must be positive"),
    (["--opt", "slo_ms=fast"], "slo_ms must be a number"),
    (["--dataset", "cifar100"], "table 'edge' runs on mnist, cifar10"),
])
def test_bad_edge_options_give_one_line(run_dir, capsys, args, needle):
    code = main(["--out", str(run_dir["out"]), "--store", str(run_dir["store"]), "--table", "edge", "--profile",
                 "smoke", *args])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1
