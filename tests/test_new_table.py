"""A new table is one file: a table and a method with a column of its own, defined here and nowhere else,
rendered at smoke through the suite's own entry points (README: "Add a table")."""
from dataclasses import dataclass

import pytest
import torch.nn.functional as F

import suite
import suite.columns as C
import suite.plugins as P
import suite.tables as T
from suite.columns import MetricColumn
from suite.plugins import Method, register_method
from suite.spec import CellSpec
from suite.tables import Table, TableOptions, TableRow, register_table


@dataclass(frozen=True)
class SmoothingParams:
    smoothing: float = 0.1


class LabelSmoothingWithMargin(Method):
    """Label smoothing that also records the mean logit margin of its last batch: a metric and its column."""
    name = "ls_margin"
    version = "1"
    family = "training"
    Params = SmoothingParams
    columns = (MetricColumn("Logit margin", "logit_margin", "{:.3f}"),)  # declared beside the code recording it

    def run(self, ctx):
        model = self.build_model(ctx.spec, ctx.info, ctx.params)
        margin = {}

        def losses(model, x, y, step):
            logits = model(x)
            top2 = logits.detach().float().topk(2, dim=1).values
            margin["last"] = float((top2[:, 0] - top2[:, 1]).mean())
            return logits, {"ce_ls": F.cross_entropy(logits, y, label_smoothing=ctx.params.smoothing)}

        ctx.fit(model, losses=losses)
        ctx.record(logit_margin=margin["last"])
        return model


class SmoothingTable(Table):
    """The table: its rows, the names of its columns, its notes. Nothing else."""
    name = "smoothing"
    title = "Label smoothing against the baseline"
    description = "LeNet-5 trained with and without label smoothing; the smoothed model's logit margin."
    columns = [C.PARAMS, C.TOP1, C.N, "Logit margin", C.VERDICT_DELTA, C.VERDICT]
    relative = C.verdict_columns()

    def rows(self, opts: TableOptions) -> list[TableRow]:
        dataset = opts.dataset or "synthetic_mnist"
        return [TableRow({"Method": "baseline"}, CellSpec.make("baseline", "lenet5", dataset, opts.profile),
                         role="reference"),
                TableRow({"Method": "label smoothing 0.2"},
                         CellSpec.make("ls_margin", "lenet5", dataset, opts.profile, params={"smoothing": 0.2}))]

    def notes(self, opts: TableOptions) -> list[str]:
        return ["Logit margin: top-1 minus top-2 logit over the last training batch (recorded by the method)."]


@pytest.fixture
def registered(monkeypatch):
    """The method and the table registered as a plugin package would register them; undone afterwards."""
    P.discover_methods()
    T.discover_tables()
    for registry in (P.METHODS, T.TABLES):
        monkeypatch.setattr(registry, "_items", dict(registry._items))
    monkeypatch.setattr(C, "CATALOGUE", dict(C.CATALOGUE))
    monkeypatch.setattr(C, "DECLARED", dict(C.DECLARED))
    register_method(LabelSmoothingWithMargin)
    register_table(SmoothingTable)


def test_a_table_in_one_file_renders_at_smoke_with_a_methods_own_column(tmp_path, registered):
    out = tmp_path / "results" / "smoke"
    result = suite.run_table("smoothing", profile="smoke", seeds=2, store=tmp_path / "runs" / "store.sqlite",
                             out=out, progress=False)
    table = [l for l in (out / "smoothing.md").read_text().splitlines() if l.startswith("|")]
    assert "Logit margin" in table[0] and len(table) == 4
    baseline, smoothed = ([c.strip() for c in line.split("|")] for line in table[2:])
    column = [c.strip() for c in table[0].split("|")].index("Logit margin")
    assert baseline[column] == "—"  # the baseline records no margin: the column's own "missing"
    recorded = [r["metrics"]["logit_margin"] for r in result.records if r["spec"]["method"] == "ls_margin"]
    assert len(recorded) == 2 and smoothed[column] == f"{sum(recorded) / 2:.3f}"  # the mean over its seeds
    assert result.frame.set_index("Method").loc["label smoothing 0.2", "n"] == 2
    assert smoothed[column + 2].split(" (q")[0] in {"better", "worse", "within noise"}  # a verdict against baseline
    assert "Logit margin: top-1 minus top-2" in result.markdown


def test_a_column_declared_twice_differently_fails_registration(registered):
    class Other(LabelSmoothingWithMargin):
        name = "ls_margin_other"
        columns = (MetricColumn("Logit margin", "another_metric"),)

    with pytest.raises(ValueError, match="declares column 'Logit margin', already declared differently by 'ls_margin'"):
        register_method(Other)
