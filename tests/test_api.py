"""The Python API as a notebook drives it: a table and a comparison, numbers as numbers, records read back."""
import pandas as pd
import pytest

import suite
from suite.runner import Runner


def common(tmp_path):
    return {"profile": "smoke", "dataset": "synthetic_mnist", "store": tmp_path / "runs" / "store.sqlite",
            "progress": False}


def test_a_table_from_python_gives_numbers_that_match_its_markdown(tmp_path):
    result = suite.run_table("baselines", seeds=2, **common(tmp_path))
    frame = result.frame
    assert len(frame) == 1 and frame.loc[0, "n"] == 2
    for column in ("top1_mean", "top1_std", "latency_ms", "params", "size_bytes"):
        assert pd.api.types.is_numeric_dtype(frame[column]), column
    assert len(frame.loc[0, "top1_values"]) == 2
    row = next(line for line in result.markdown.splitlines() if line.startswith("| ") and "LeNet-5" in line)
    assert f"{frame.loc[0, 'top1_mean']:.2f} ± {frame.loc[0, 'top1_std']:.2f}" in row
    assert f"{int(frame.loc[0, 'params']):,}" in row
    assert result.records and all(r["status"] == "done" for r in result.records)
    assert {c.spec.method for c in result.cells} == {"baseline"}
    assert not (tmp_path / "results").exists()  # nothing is published unless `out` is given


def test_a_comparison_gives_its_interval_q_and_verdict_as_numbers(tmp_path):
    result = suite.compare(["baseline", "kd"], model="lenet5_half", teacher="lenet5", seeds=2, **common(tmp_path))
    frame = result.frame.set_index("Method")
    kd = frame.loc[next(m for m in frame.index if m.startswith("KD"))]
    assert kd["delta_low"] <= kd["delta"] <= kd["delta_high"]
    assert 0 <= kd["p_value"] <= kd["q_value"] <= 1  # one comparison: q = p
    assert kd["delta"] == pytest.approx(kd["top1_mean"] - frame.iloc[0]["top1_mean"])
    assert f"{kd['delta']:+.2f} [{kd['delta_low']:+.2f}, {kd['delta_high']:+.2f}]" in result.markdown
    assert kd["verdict"].split(" (q")[0] in {"better", "worse", "within noise"}


def test_a_published_table_reads_back_without_training(tmp_path, monkeypatch):
    out = tmp_path / "results" / "smoke"
    trained = suite.run_table("baselines", seeds=2, out=out, **common(tmp_path))
    assert (out / "baselines.md").exists() and (out / "baselines.cells.jsonl").exists()
    monkeypatch.setattr(Runner, "run", lambda *a, **k: pytest.fail("read_table must not train"))
    read = suite.read_table("baselines", profile="smoke", results=tmp_path / "results", dataset="synthetic_mnist")
    assert read.frame.loc[0, "n"] == 2
    assert read.frame.loc[0, "top1_mean"] == pytest.approx(trained.frame.loc[0, "top1_mean"])
    assert [l for l in read.markdown.splitlines() if l.startswith("|")] == \
        [l for l in trained.markdown.splitlines() if l.startswith("|")]


def test_bad_input_is_one_suite_error(tmp_path):
    with pytest.raises(suite.SuiteError, match="unknown table") as info:
        suite.run_table("nope", **common(tmp_path))
    assert "\n" not in str(info.value)
    with pytest.raises(suite.SuiteError, match="seeds"):
        suite.run_table("baselines", seeds=0, **common(tmp_path))
    with pytest.raises(suite.SuiteError, match="no published records"):
        suite.read_table("baselines", profile="smoke", results=tmp_path / "none")
