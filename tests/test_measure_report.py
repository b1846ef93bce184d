import re
from pathlib import Path

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
    assert m["flops"] > 0 and m["throughput_img_s"] > 0 and m["throughput_batch"] == 32  # recorded with its figure
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


def test_report_renders_seeds_reported_failures_and_pending(tmp_path):
    from suite.reference import Reported
    from suite.report import render
    from suite.spec import CellSpec
    from suite.store import Store
    from suite.tables import Table, TableOptions, TableRow

    store = Store(tmp_path / "s.sqlite")
    base = {"params": 1000, "nonzero_params": 900, "size_bytes": 4000, "flops": 2e6, "latency_ms": 1.0,
            "latency_p90_ms": 1.5, "throughput_img_s": 100.0, "energy_mj": None, "epochs_trained": 3,
            "train_seconds": 30.0, "data_fingerprint": "f" * 16, "data_canonical": False, "train_size": 10,
            "test_size": 10, "deps": {}}
    env = {"device": "test CPU", "torch": "x", "timm": "y", "python": "z", "commit": "abc", "numerics": "fp32"}
    spec = CellSpec.make("baseline", "lenet5", "mnist", "smoke")
    for key, top1, commit in (("a0", 90.0, "abc"), ("a1", 92.0, "def")):  # two sessions, two commits
        store.claim(key, spec.as_dict())
        store.finish(key, {**base, "top1": top1}, {**env, "commit": commit})
    store.fail("b0", spec.as_dict(), "RuntimeError: boom")
    rows = [TableRow({"Model": "A"}, spec, [Reported(95.0, "encodenet", "T2", "")]),
            TableRow({"Model": "B"}, spec), TableRow({"Model": "C"}, None)]

    class T(Table):
        name, title, description = "t", "Test table", "rows A, B, C"

    from types import SimpleNamespace

    from suite.data import DATASETS
    from suite.profiles import Recipe

    def cell(key):  # what the report reads of a resolved cell
        return SimpleNamespace(key=key, spec=spec, recipe=Recipe(epochs=3, batch_size=8, lr=0.1),
                               info=DATASETS.get("mnist"), precision="fp32", deps={})

    row_cells = [[cell("a0"), cell("a1")], [cell("b0"), cell("never")], []]
    md_path, csv_path = render(T(), TableOptions(profile="cpu", seeds=2), rows, row_cells, store, tmp_path / "cpu")
    md = md_path.read_text()
    assert "91.00 ± 1.41" in md and "95.00 [encodenet T2; epoch ?, runs ?]" in md and "-4.00" in md
    assert "failed: RuntimeError: boom" in md and "pending (plugin not available yet)" in md
    assert "NOT canonical" in md and "Seeds: 2" in md and "test CPU" in md and "test CPU (" not in md  # one device
    assert "commit abc (1 cell), def (1 cell), (the cells trained across sessions: a cell keeps its key" in md
    assert "3 ep, 30 s" in md and "mnist-like (default): 3 ep, batch 8, sgd lr 0.1" in md
    assert "top1_mean" in csv_path.read_text().splitlines()[0]
    assert "[Test table (`t`)](cpu/t.md)" in (tmp_path / "README.md").read_text()
    for name in ("params", "latency"):  # plots beside the table, listed in the index
        plot = tmp_path / "cpu" / f"t_accuracy_vs_{name}.png"
        assert plot.stat().st_size > 1000 and plot.name in (tmp_path / "README.md").read_text()


def test_rows_with_a_reference_get_the_difference_interval_and_verdict(tmp_path):
    from types import SimpleNamespace

    from suite import columns as C
    from suite.data import DATASETS
    from suite.profiles import Recipe
    from suite.report import render
    from suite.spec import CellSpec
    from suite.store import Store
    from suite.tables import Table, TableOptions, TableRow

    store = Store(tmp_path / "s.sqlite")
    spec = CellSpec.make("baseline", "lenet5", "mnist", "smoke")
    metrics = {"params": 10, "nonzero_params": 10, "size_bytes": 40, "flops": 1.0, "latency_ms": 1.0,
               "latency_p90_ms": 1.0, "throughput_img_s": 1.0, "energy_mj": None, "epochs_trained": 1,
               "train_seconds": 1.0, "data_fingerprint": "f", "data_canonical": None, "train_size": 1,
               "test_size": 1, "deps": {}}
    seeds = {"ref": [77.0, 77.4, 77.2], "win": [80.1, 80.3, 80.2], "same": [77.6, 76.9, 77.5], "one": [79.0]}
    for name, values in seeds.items():
        for i, top1 in enumerate(values):
            store.claim(f"{name}{i}", spec.as_dict())
            store.finish(f"{name}{i}", {**metrics, "top1": top1}, {"device": "d", "torch": "t", "timm": "t",
                                                                   "python": "p", "commit": "c", "numerics": "fp32"})
    rows = [TableRow({"Setup": name}, spec, role="reference" if name == "ref" else "") for name in seeds]

    def cell(key):
        return SimpleNamespace(key=key, spec=spec, recipe=Recipe(epochs=1, batch_size=8, lr=0.1),
                               info=DATASETS.get("mnist"), precision="fp32", deps={})

    class T(Table):
        name, title, description = "v", "Verdicts", "constructed seeds"
        columns = [C.TOP1, C.N, C.VERDICT_DELTA, C.VERDICT]
        relative = C.verdict_columns()

    md, _ = render(T(), TableOptions(profile="smoke", seeds=3), rows,
                   [[cell(f"{n}{i}") for i in range(len(v))] for n, v in seeds.items()], store, tmp_path / "smoke")
    lines = {line.split("|")[1].strip(): line for line in md.read_text().splitlines() if line.startswith("| ")}
    assert re.search(r"\| better \(q (< 0\.001|= [0-9.]+)\)$", lines["win"].rstrip(" |")) and "+3.00 [" in lines["win"]
    assert re.search(r"\| within noise \(q = [0-9.]+\)$", lines["same"].rstrip(" |"))
    assert "- Verdicts: Welch's t-test of each row against its reference over seeds" in md.read_text()
    assert "Benjamini-Hochberg across this table's 2 tested comparisons" in md.read_text()
    assert "n = 1: no verdict" in lines["one"] and "+1.80 " in lines["one"]
    assert "| —" in lines["ref"]  # the reference is not compared with itself


def test_a_one_architecture_table_plots_each_rows_mean_and_interval_with_the_reference_marked(tmp_path):
    """The dot-and-interval chart (issue 25 item 6): one bar per row, the t interval over its seeds, no bar for one
    seed, the reference drawn as a dashed line through its mean."""
    import matplotlib.container
    import pandas as pd
    from scipy.stats import t

    from suite.plots import interval_figure, plot_intervals

    frame = pd.DataFrame([{"Method": "student", "_role": "reference", "_top1_values": [60.0, 62.0, 64.0]},
                          {"Method": "kd", "_role": "", "_top1_values": [65.0, 66.0, 67.0], "_reported": 70.66},
                          {"Method": "one seed", "_role": "", "_top1_values": [50.0]},
                          {"Method": "pending", "_role": "", "_top1_values": []}])
    fig = interval_figure(frame, ["Method"], "t")
    ax = fig.axes[0]
    bars = [c for c in ax.containers if isinstance(c, matplotlib.container.ErrorbarContainer)]
    assert len(bars) == 3  # the pending row is left out
    assert [label.get_text() for label in ax.get_yticklabels()] == ["one seed", "kd", "student"]
    half = t.ppf(0.975, 2) * 1.0 / 3 ** 0.5  # kd: std 1 over 3 seeds
    kd_bar = bars[1]
    segment = kd_bar.lines[2][0].get_segments()[0]
    assert segment[0][0] == pytest.approx(66.0 - half) and segment[1][0] == pytest.approx(66.0 + half)
    assert not bars[0].has_xerr  # one seed: no interval
    assert any(line.get_linestyle() == "--" and line.get_xdata()[0] == pytest.approx(62.0) for line in ax.lines)
    assert plot_intervals(frame, ["Method"], "t", tmp_path / "kd")[0].name == "kd_top1_intervals.png"


@pytest.mark.parametrize("low,high,labels", [(0.45, 0.92, ["0.5", "0.6", "0.7", "0.8", "0.9"]),
                                               (1.1, 7.5, ["2", "3", "4", "5", "6", "7"]),
                                               (1.2e4, 8e6, ["100 K", "1 M"])])
def test_a_log_axis_is_labelled_in_plain_numbers_with_ticks_across_a_narrow_span(low, high, labels):
    """Issue 25 item 6: a latency axis spanning less than a decade had one tick, labelled 5×10^-1, or none."""
    from suite.plots import _pyplot, readable_log_axis

    fig, ax = _pyplot().subplots()
    ax.scatter([low, high], [1, 2])
    ax.set_xlim(low, high)
    readable_log_axis(ax)
    fig.canvas.draw()
    shown = [t.get_text() for t in ax.get_xticklabels() if low <= t.get_position()[0] <= high]
    _pyplot().close(fig)
    assert shown == labels


def test_the_scatter_plots_draw_each_rows_interval_over_its_seeds(tmp_path):
    import matplotlib.container
    import pandas as pd

    from suite.plots import _pyplot, plot_table

    frame = pd.DataFrame([{"Method": "a", "_top1_mean": 70.0, "_top1_values": [69.0, 70.0, 71.0],
                           "_latency_ms": 0.5, "_nonzero_params": 1e5},
                          {"Method": "one seed", "_top1_mean": 60.0, "_top1_values": [60.0],
                           "_latency_ms": 0.7, "_nonzero_params": 2e5}])
    figures = []
    plt = _pyplot()
    original, plt.close = plt.close, figures.append  # keep the figures to look at them
    try:
        paths = plot_table(frame, ["Method"], "t", tmp_path / "x")
    finally:
        plt.close = original
    assert [p.name for p in paths] == ["x_accuracy_vs_params.png", "x_accuracy_vs_latency.png"]
    for fig in figures:
        bars = [c for c in fig.axes[0].containers if isinstance(c, matplotlib.container.ErrorbarContainer)]
        assert [b.has_yerr for b in bars] == [True, False]  # one seed: no interval
        plt.close(fig)


def test_the_results_index_leaves_out_smoke_tables(tmp_path):
    """Smoke tables are for tests and trying the suite, never published: rendering one must not rewrite the index
    of the published tables with an entry for it."""
    from suite.report import write_index

    for profile in ("cpu", "smoke"):
        (tmp_path / profile).mkdir()
        (tmp_path / profile / "t.md").write_text(f"# T {profile}\n\n- rendered 2026-12-02\n")
    index = write_index(tmp_path).read_text()
    assert "(cpu/t.md)" in index and "smoke" not in index


def test_rapl_sums_every_package_and_survives_a_counter_wrap(tmp_path):
    """The meter's arithmetic on fake counter files: two packages (their sub-zones ignored), one wrapping."""
    import torch

    from suite.measure import EnergyMeter, RaplCounter

    def zone(name, value, max_range=1_000_000):
        (tmp_path / name).mkdir()
        (tmp_path / name / "energy_uj").write_text(f"{value}\n")
        (tmp_path / name / "max_energy_range_uj").write_text(f"{max_range}\n")

    zone("intel-rapl:0", 999_000)
    zone("intel-rapl:1", 10_000)
    zone("intel-rapl:0:0", 5)  # a sub-zone (core) of package 0: already counted in it
    counter = RaplCounter(tmp_path)
    assert len(counter.zones) == 2 and counter.read_mj() == 0
    (tmp_path / "intel-rapl:0" / "energy_uj").write_text("4000\n")  # wrapped: 1,000 uJ to the top, then 4,000
    (tmp_path / "intel-rapl:1" / "energy_uj").write_text("12000\n")
    assert counter.read_mj() == (1_000 + 4_000 + 2_000) / 1000
    meter = EnergyMeter(torch.device("cpu"), rapl_root=tmp_path)
    assert meter.available and meter.name == "RAPL (2 packages)"


def test_energy_is_read_over_a_window_longer_than_the_meters_update_period():
    """A counter that only moves every 0.1 s (NVML-like) still gives the energy per call over a long window."""
    import time

    import torch

    from suite.measure import EnergyMeter

    meter = EnergyMeter(torch.device("cpu"), rapl_root=Path("/nonexistent"))
    assert not meter.available and "no meter" in meter.missing_reason
    t0 = time.perf_counter()
    meter._read = lambda: 1000.0 * int((time.perf_counter() - t0) / 0.1)  # 1 J per 0.1 s step: 10 W
    calls = []

    def call():
        time.sleep(0.01)
        calls.append(1)

    per_call = meter.per_call_mj(call, min_seconds=0.5)
    assert sum(calls) >= 40
    assert per_call == pytest.approx(10_000 * 0.5 / sum(calls), rel=0.35)  # 10 W over the window / calls


def test_the_header_says_how_many_cells_each_remeasure_pass_timed_and_on_what():
    """Constructed records: a pass that re-timed 2 cells on a same-architecture copy and 1 from its saved model, and
    a fourth cell never re-measured: the header line counts each, so a reader knows which latencies share a pass."""
    from suite.execute import TIMED_ON_TWIN
    from suite.report import remeasure_passes

    def record(timed_on=None):
        m = {"date": "2026-12-04 20:00:00", "commit": "abc1234", "device": "AMD EPYC, 1 threads"}
        return {"metrics": {"remeasured": {**m, "timed_on": timed_on}} if timed_on else {}}

    lines = remeasure_passes([record(TIMED_ON_TWIN), record(TIMED_ON_TWIN), record("saved model"), record()])
    assert lines[0].startswith("2026-12-04 (commit abc1234, AMD EPYC, 1 threads): 3 of 4 cells, 2 of them timed on a "
                               "same-architecture copy")
    assert "the others from their saved models" in lines[0]
    assert lines[1] == "1 cell keeps the timing of its training run"
    assert remeasure_passes([record("saved model")]) == [
        "2026-12-04 (commit abc1234, AMD EPYC, 1 threads): 1 of 1 cells from their saved models (accuracy, latency, "
        "size, throughput)"]


def test_a_remeasure_pass_that_crosses_midnight_reads_as_one_pass():
    from suite.report import remeasure_passes

    def record(date):
        return {"metrics": {"remeasured": {"date": date, "pass": "2026-12-04 23:58:02", "commit": "abc1234",
                                           "device": "AMD EPYC, 1 threads", "timed_on": "saved model"}}}

    (line,) = remeasure_passes([record("2026-12-04 23:59:00"), record("2026-12-05 00:20:00")])
    assert line.startswith("pass of 2026-12-04 23:58 (commit abc1234, AMD EPYC, 1 threads): 2 of 2 cells")


def test_a_commit_is_dirty_for_changed_code_not_for_a_changed_published_table(tmp_path):
    import subprocess

    from suite.execute import git_commit

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "t.md").write_text("a\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    assert not git_commit(tmp_path).endswith("+dirty")
    (tmp_path / "results" / "t.md").write_text("b\n")  # a table rendered earlier in the session
    assert not git_commit(tmp_path).endswith("+dirty")
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_commit(tmp_path).endswith("+dirty")


def test_a_rows_latency_is_the_median_over_its_seeds_timing_runs_with_their_range():
    """Three seeds of one architecture timed in three runs (0.41, 0.93, 0.45 ms on a shared machine): the row shows
    the median run, 0.45, with the median p90 and the range, and its speed-ups use 0.45, not the first seed's 0.41;
    early-exit runs keep their expected latency (the mean over the images) per run."""
    from types import SimpleNamespace

    from suite.columns import RowCells, raw_values, row_latency_text
    from suite.measure import latency_stats

    def cells(runs: list[dict]) -> RowCells:
        row = SimpleNamespace(spec=object(), role="", reported=[], not_run="")
        return RowCells(row, [{"key": f"k{i}", "status": "done", "metrics": {"top1": 50.0, **m}}
                              for i, m in enumerate(runs)], training_cost=lambda key: (10, 60.0))

    fixed = cells([{"latency_ms": 0.41, "latency_p90_ms": 0.46}, {"latency_ms": 0.93, "latency_p90_ms": 1.04},
                   {"latency_ms": 0.45, "latency_p90_ms": 0.79}])
    assert row_latency_text(fixed) == "0.450 (0.790; 3 runs 0.410–0.930)"
    assert raw_values(fixed)["_latency_ms"] == pytest.approx(0.45)
    exits = [{**latency_stats([0.3] * 8 + [5.0] * 2), "latency_mean_ms": mean, "latency_input": "10 test images"}
             for mean in (1.24, 1.30, 1.10)]
    assert row_latency_text(cells(exits)) == "1.240 mean (median 0.300, p90 5.000; 3 runs 1.100–1.300)"
    assert row_latency_text(cells(exits[:1])) == "1.240 mean (median 0.300, p90 5.000)"  # one run: as it was timed
