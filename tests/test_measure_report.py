import pytest
import torch

from baselines import create_model
from suite.measure import count_parameters, latency_stats, measure_model
from suite.reference import load, reported


def test_measure_reports_latency_from_at_least_100_runs():
    m = measure_model(create_model("lenet5", 10, 1), (1, 28, 28), latency_runs=100, warmup=5, throughput_batch=32,
                      throughput_seconds=0.1)
    assert m["latency_runs"] >= 100 and 0 < m["latency_ms"] <= m["latency_p90_ms"]
    assert m["params"] == 61_706 and m["size_bytes"] > 61_706 * 4
    assert m["flops"] > 0 and m["throughput_img_s"] > 0
    assert m["energy_mj"] is None and "no meter" in m["energy_meter"]  # never an estimate


def test_latency_stats_median_and_p90():
    s = latency_stats([float(i) for i in range(1, 101)])
    assert s["latency_ms"] == pytest.approx(50.5) and s["latency_p90_ms"] == 90.0


def test_nonzero_parameters_count_zeros():
    model = create_model("lenet5", 10, 1)
    with torch.no_grad():
        model.head.fc.weight.zero_()
    c = count_parameters(model)
    assert c["nonzero_params"] == c["params"] - model.head.fc.weight.numel() - int((model.head.fc.bias == 0).sum())


def test_reference_file_holds_the_papers_figures():
    assert reported("encodenet", "T2", "resnet20", "cifar10_baseline").value == 92.56
    assert reported("encodenet", "T5", "resnet50_gam", "params_m").value == 149.47
    assert "likely 0.007" in reported("encodenet", "T1", "vgg16", "recon_clustering").note
    assert len(load()) > 200
