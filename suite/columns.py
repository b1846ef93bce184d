"""The catalogue of result columns: each column's name, how it is computed from a row's stored cells, and
how it is formatted. Tables select columns by these names (constants below, so no name is spelled twice)
and declare "relative to the reference row" columns (a speed-up, a difference of means) as data: the
reference is the row whose `role` says so, never a row found by parsing its label.

A row's summary also holds raw numbers under names starting with "_" (for the CSV, plots and derived
columns); `raw_values` names them.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Callable

import pandas as pd

from suite.measure import input_dependent, latency_figure
from suite.stats import Comparison, adjusted_verdicts, compare

# --- column names ---------------------------------------------------------------------------------------
PARAMS, NONZERO, SIZE_MB, SIZE_KB, SIZE_FORMAT = "Params", "Non-zero params", "Size (MB)", "Size (KB)", "Size format"
FLOPS, LATENCY, TEST_TIME = "FLOPs (M)", "Latency b1 ms (p90)", "Test-set time (s)"
FLOPS_NONZERO = "FLOPs after removal (M)"  # non-zero weights only (suite.measure.count_nonzero_flops)
THROUGHPUT, ENERGY = "Throughput (img/s)", "Energy (mJ)"
TOP1, N, REPORTED, DELTA_REPORTED, TRAIN_COST = "Top-1 % (ours)", "n", "Top-1 % (reported)", "Δ vs reported", "Train cost"
NOISE, SALT_PEPPER = "Top-1 % noise σ=0.3", "Top-1 % salt & pepper 10 %"
ROBUST = {"gaussian_noise_0.3": NOISE, "salt_pepper_10pct": SALT_PEPPER}  # suite.perturb name -> column

DEFAULT = [PARAMS, SIZE_MB, FLOPS, LATENCY, THROUGHPUT, ENERGY, TOP1, N, REPORTED, DELTA_REPORTED, TRAIN_COST]
VERDICT_DELTA, VERDICT = "Δ top-1 vs ref [95 % CI]", "Verdict"
PIVOT_VALUES = [TOP1, N, VERDICT_DELTA, VERDICT, REPORTED, DELTA_REPORTED, TRAIN_COST]  # per column group of a wide table


def fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:,.{digits}f}"


def latency_text(metrics: dict[str, Any]) -> str:
    """One timing run: "median (p90)", or for an input-dependent model "mean (median m, p90 q)"."""
    if input_dependent(metrics):
        return (f"{fmt(metrics['latency_mean_ms'], 3)} mean (median {fmt(metrics['latency_ms'], 3)}, "
                f"p90 {fmt(metrics.get('latency_p90_ms'), 3)})")
    return f"{fmt(metrics.get('latency_ms'), 3)} ({fmt(metrics.get('latency_p90_ms'), 3)})"


def timed_runs(rc: "RowCells") -> list[dict[str, Any]]:
    """The metrics of a row's seeds that carry a latency (`latency_figure`): each seed's model is timed in a run of
    its own, so the seeds are repeated timing runs of the same work."""
    return [r["metrics"] for r in rc.done if latency_figure(r["metrics"]) is not None]


def row_latency(rc: "RowCells") -> float | None:
    """A row's latency: the median over its timing runs (on a shared machine the spread between runs exceeds the
    one within a run, and one run's figure is not the row's)."""
    runs = timed_runs(rc)
    return statistics.median(map(latency_figure, runs)) if runs else None


def row_latency_text(rc: "RowCells") -> str:
    """The latency column: one run as `latency_text`; several: the median over the runs (seeds) with the median p90
    (or the input-dependent figures) and the range over the runs, "0.452 (0.790; 3 runs 0.410–0.803)"."""
    if not rc.done:
        return ""
    runs = timed_runs(rc)
    if len(runs) < 2:
        return latency_text(rc.metrics)
    figures = [latency_figure(m) for m in runs]
    median = statistics.median(figures)
    p90 = statistics.median(m["latency_p90_ms"] for m in runs if m.get("latency_p90_ms") is not None) \
        if any(m.get("latency_p90_ms") is not None for m in runs) else None
    spread = f"{len(figures)} runs {fmt(min(figures), 3)}–{fmt(max(figures), 3)}"
    if all(input_dependent(m) for m in runs):
        return (f"{fmt(median, 3)} mean (median {fmt(statistics.median(m['latency_ms'] for m in runs), 3)}, "
                f"p90 {fmt(p90, 3)}; {spread})")
    return f"{fmt(median, 3)} ({fmt(p90, 3)}; {spread})"


def fmt_duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def mean_std(values: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


@dataclass
class RowCells:
    """A table row's stored records, one per seed (None where a seed never ran)."""

    row: Any  # suite.tables.TableRow
    records: list[dict | None]
    training_cost: Callable[[str], tuple[int, float]]  # key -> (epochs, seconds) including dependencies

    @property
    def done(self) -> list[dict]:
        return [r for r in self.records if r and r["status"] == "done"]

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.records if r and r["status"] == "failed"]

    @property
    def metrics(self) -> dict[str, Any]:
        """Cost figures come from the first finished seed (they do not vary with the seed)."""
        return self.done[0]["metrics"] if self.done else {}

    def top1_values(self) -> list[float]:
        return [r["metrics"]["top1"] for r in self.done]


@dataclass(frozen=True)
class Column:
    name: str
    compute: Callable[[RowCells], str]


def _metric(key: str, show: Callable[[Any], str]) -> Callable[[RowCells], str]:
    """A cost figure of the first finished seed: "" while nothing finished, "n/a" where it was not measured."""
    def compute(rc: RowCells) -> str:
        m = rc.metrics
        if not m:
            return ""
        return "n/a" if m.get(key) is None else show(m[key])
    return compute


def _robust(name: str) -> Callable[[RowCells], str]:
    def compute(rc: RowCells) -> str:
        values = [v for r in rc.done if (v := r["metrics"].get("robust_top1", {}).get(name)) is not None]
        return f"{statistics.fmean(values):.2f}" if values else ("n/a" if rc.done else "")
    return compute


def _top1(rc: RowCells) -> str:
    if rc.row.spec is None:
        return rc.row.not_run or "pending (plugin not available yet)"
    if rc.done:
        mean, std = mean_std(rc.top1_values())
        return f"{mean:.2f} ± {std:.2f}" if std is not None else f"{mean:.2f}"
    return f"failed: {rc.failed[0]['error']}" if rc.failed else "pending"


def _delta_reported(rc: RowCells) -> str:
    if not rc.done or not rc.row.reported:
        return "—"
    return f"{statistics.fmean(rc.top1_values()) - rc.row.reported[0].value:+.2f}"


def _train_cost(rc: RowCells) -> str:
    if not rc.done:
        return ""
    costs = [rc.training_cost(r["key"]) for r in rc.done]
    return f"{costs[0][0]} ep, {fmt_duration(statistics.fmean(c[1] for c in costs))}"


CATALOGUE: dict[str, Column] = {c.name: c for c in [
    Column(PARAMS, _metric("params", lambda v: f"{v:,}")),
    Column(NONZERO, _metric("nonzero_params", lambda v: f"{v:,}")),
    Column(SIZE_MB, _metric("size_bytes", lambda v: fmt(v / 1e6, 3))),
    Column(SIZE_KB, _metric("size_bytes", lambda v: fmt(v / 1e3, 1))),
    Column(SIZE_FORMAT, _metric("size_format", str)),
    Column(FLOPS, _metric("flops", lambda v: fmt(v / 1e6, 1))),
    Column(FLOPS_NONZERO, _metric("flops_nonzero", lambda v: fmt(v / 1e6, 2))),
    Column(LATENCY, row_latency_text),
    Column(TEST_TIME, _metric("test_set_seconds", lambda v: fmt(v, 3))),
    Column(THROUGHPUT, _metric("throughput_img_s", lambda v: fmt(v, 0))),
    Column(ENERGY, _metric("energy_mj", lambda v: fmt(v, 3))),
    *[Column(column, _robust(perturbation)) for perturbation, column in ROBUST.items()],
    Column(TOP1, _top1),
    Column(N, lambda rc: str(len(rc.done)) if rc.row.spec is not None else "0"),
    Column(REPORTED, lambda rc: "; ".join(f"{r.value:.2f} [{r.source}; {r.protocol}]" for r in rc.row.reported) or "—"),
    Column(DELTA_REPORTED, _delta_reported),
    Column(TRAIN_COST, _train_cost),
]}


@dataclass(frozen=True)
class MetricColumn:
    """A column declared by the method that records its metric (`ctx.record(metric=...)`), beside that code:
    `Method.columns = (MetricColumn("Int8 flow", "int8_flow"),)`. Registration adds it to the catalogue, so any
    table names it in its `columns`; a row whose cells do not record it shows `missing`. Numbers are the mean over
    the row's finished seeds, formatted by `template`; anything else is the first seed's value. `show`, where a
    figure reads more than one metric, formats the first finished seed's metrics that record `metric`."""
    name: str
    metric: str
    template: str = "{}"
    missing: str = "—"
    show: Callable[[dict[str, Any]], str] | None = None

    def compute(self, rc: RowCells) -> str:
        if not rc.done:
            return ""
        recorded = [r["metrics"] for r in rc.done if r["metrics"].get(self.metric) is not None]
        if not recorded:
            return self.missing
        if self.show is not None:
            return self.show(recorded[0])
        values = [m[self.metric] for m in recorded]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        return self.template.format(statistics.fmean(values) if numeric else values[0])


DECLARED: dict[str, tuple[MetricColumn, str]] = {}  # column name -> (its declaration, the method declaring it)


def declare_columns(columns: tuple[MetricColumn, ...] | list[MetricColumn], owner: str) -> None:
    """Add a method's columns to the catalogue; one name means one column (a clash with another declaration or a
    built-in column fails registration, naming both)."""
    for column in columns:
        if not isinstance(column, MetricColumn):
            raise ValueError(f"method {owner!r}: columns must be MetricColumn, got {type(column).__name__}")
        seen = DECLARED.get(column.name)
        if seen is not None and seen[0] != column:
            raise ValueError(f"method {owner!r} declares column {column.name!r}, already declared differently by "
                             f"{seen[1]!r}")
        if seen is None and column.name in CATALOGUE:
            raise ValueError(f"method {owner!r} declares column {column.name!r}, a built-in column")
        DECLARED[column.name] = (column, seen[1] if seen else owner)
        CATALOGUE[column.name] = Column(column.name, column.compute)


def raw_values(rc: RowCells) -> dict[str, Any]:
    m, values = rc.metrics, rc.top1_values()
    mean, std = mean_std(values) if values else (None, None)
    return {"_top1_mean": mean, "_top1_std": std, "_top1_values": values,
            "_reported": rc.row.reported[0].value if rc.row.reported else None,
            "_latency_ms": row_latency(rc), "_latency_p90_ms": m.get("latency_p90_ms"),
            "_test_set_seconds": m.get("test_set_seconds"), "_size_bytes": m.get("size_bytes"),
            "_params": m.get("params"), "_nonzero_params": m.get("nonzero_params"), "_role": rc.row.role,
            "_keys": " ".join(r["key"] for r in rc.records if r),
            "_train_epochs": rc.training_cost(rc.done[0]["key"])[0] if rc.done else None}


def summarize(rc: RowCells) -> dict[str, Any]:
    """Every catalogue column of one row, its labels, its raw numbers and its table-specific extras."""
    return {**rc.row.labels, **{name: c.compute(rc) for name, c in CATALOGUE.items()}, **raw_values(rc),
            **rc.row.extra}


@dataclass(frozen=True)
class Relative:
    """A column computed against the reference row of each group (rows sharing the `group_by` labels).

    kind "ratio": reference / value (a speed-up when the raw figure is a time); "difference": value - reference;
    "welch": the difference of means with its 95 % interval (suite/stats.py), from per-seed lists; "verdict":
    better / worse / within noise (or no verdict with one seed) from the same lists.
    """

    name: str
    raw: str  # a raw field, e.g. "_latency_ms" or "_top1_mean"
    kind: str  # "ratio" | "difference"
    group_by: tuple[str, ...] = ()
    reference_role: str | tuple[str, ...] = "reference"  # the role(s) that make a row its group's reference
    template: str = "{:.2f}"
    missing: str = "—"
    on_reference: bool = True  # False: the reference row itself shows `missing`
    numbers: str = ""  # "welch": the prefix of its figures as numbers in the Python API's frame (suite.api)

    def references(self, frame: pd.DataFrame) -> list[Any]:
        """Per row, the raw figure of its group's reference row, or None where the row has no usable pair."""
        def group(r) -> tuple:
            return tuple(r[c] for c in self.group_by)

        roles = (self.reference_role,) if isinstance(self.reference_role, str) else self.reference_role
        refs = {group(r): r[self.raw] for _, r in frame.iterrows() if r["_role"] in roles}

        def usable(r) -> bool:
            ref, own = refs.get(group(r)), r[self.raw]
            return not ((r["_role"] in roles and not self.on_reference) or not _present(ref)
                        or not _present(own) or (self.kind == "ratio" and own == 0))

        return [refs[group(r)] if usable(r) else None for _, r in frame.iterrows()]

    def comparisons(self, frame: pd.DataFrame) -> list[Comparison | None]:
        """Welch's comparison of each row's per-seed figures with its reference's (None: no pair)."""
        return [None if ref is None else compare(own, ref) for own, ref in zip(frame[self.raw], self.references(frame))]

    def apply(self, frame: pd.DataFrame) -> pd.DataFrame:
        if not len(frame):
            frame[self.name] = []
            return frame
        if self.raw not in frame.columns:  # a table's own raw field (Table.cell_columns) while no row has finished
            frame[self.raw] = None
        if self.kind == "verdict":  # the table's verdicts are one family: the false discovery rate is held across it
            frame[self.name] = [v or self.missing for v in adjusted_verdicts(self.comparisons(frame))]
        elif self.kind == "welch":
            frame[self.name] = [self.missing if c is None else c.describe() for c in self.comparisons(frame)]
        else:
            frame[self.name] = [self.missing if ref is None else
                                self.template.format(ref / own if self.kind == "ratio" else own - ref)
                                for own, ref in zip(frame[self.raw], self.references(frame))]
        return frame


def _present(v: Any) -> bool:
    if isinstance(v, (list, tuple)):
        return len(v) > 0
    return v is not None and not (isinstance(v, float) and math.isnan(v))


DELTA_UNTOUCHED = "Δ top-1 vs untouched baseline [95 % CI]"
# the label of a table's dense model fine-tuned as its compressed rows are (their verdicts' reference)
CONTROL = "Dense + the same fine-tuning (control)"


def delta_to_untouched(group_by: tuple[str, ...] = ()) -> Relative:
    """The difference to the untouched (not fine-tuned) baseline, beside verdicts taken against a control."""
    return Relative(DELTA_UNTOUCHED, "_top1_values", "welch", group_by, "reference", on_reference=False,
                    numbers="delta_untouched")


def verdict_columns(group_by: tuple[str, ...] = (), reference_role: str | tuple[str, ...] = "reference") -> list[Relative]:
    """Difference of mean top-1 against the group's reference row with its Welch 95 % interval, and the verdict."""
    return [Relative(VERDICT_DELTA, "_top1_values", "welch", group_by, reference_role, on_reference=False,
                     numbers="delta"),
            Relative(VERDICT, "_top1_values", "verdict", group_by, reference_role, on_reference=False)]


def pivot_wide(frame: pd.DataFrame, row_label: str, column_label: str) -> pd.DataFrame:
    """One line per `row_label`, and for each `column_label` value a group of result columns."""
    values = [c for c in PIVOT_VALUES if c in frame.columns]
    wide = frame.pivot(index=row_label, columns=column_label, values=values)
    groups = list(dict.fromkeys(frame[column_label]))
    wide = wide.reindex(index=list(dict.fromkeys(frame[row_label])))
    wide.columns = [f"{group}: {value}" for value, group in wide.columns]
    ordered = [f"{g}: {v}" for g in groups for v in values]
    return wide[ordered].fillna("").reset_index()
