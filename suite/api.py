"""The suite from Python (a notebook, a script): run a table or a comparison, or read a published table, and get
its rows as a pandas DataFrame with numbers as numbers, its Markdown, its cells and their records.

    import suite
    result = suite.run_table("kd", profile="smoke", seeds=3, dataset="synthetic_cifar10")
    result.frame[["Method", "top1_mean", "top1_std", "n", "delta", "delta_low", "delta_high", "q_value", "verdict"]]
    suite.compare(methods=["baseline", "kd"], model="resnet20", teacher="resnet56", profile="smoke")
    suite.read_table("baselines")            # the published results/cpu/baselines, from its records: trains nothing

The command line (`run_all.py`) goes through the same functions: the same store, cache, keys (one default precision,
`suite.numerics.DEFAULT_PRECISION`) and errors. Every bad input raises `SuiteError`, whose message is the CLI's one line.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from suite.numerics import DEFAULT_PRECISION
from suite.plan import ResolvedCell
from suite.tables import Table, TableOptions, TableRow, get_table, seed_specs, select_methods


class SuiteError(ValueError):
    """Bad input or a refused action, with the one-line message the command line prints."""


@dataclass
class BudgetResult:
    """A table at several budgets: `display` (a row per table row: top-1, Δ and verdict at each budget, and whether
    the verdict holds), `frame` (numbers, one row per table row and budget), the Markdown, each budget's table."""
    name: str
    display: pd.DataFrame
    frame: pd.DataFrame
    markdown: str
    per_budget: dict[str, "TableResult"] = field(repr=False)

    def _repr_markdown_(self) -> str:
        return self.markdown


@dataclass
class TablePlan:
    table: Table
    rows: list[TableRow]
    row_cells: list[list[ResolvedCell]]  # per row, its resolved cell per seed (what the report reads)
    cells: list[ResolvedCell]  # what this run trains or re-measures (dependency-ordered, --only applied)


@dataclass
class TableResult:
    """A table as numbers and as Markdown. `frame`: one row per table row, its labels, `n`, the raw figures
    (`top1_mean`, `top1_std`, `top1_values`, `latency_ms`, `params`, ...: numbers, NaN where missing), and for a
    table with verdicts `delta`, `delta_low`, `delta_high` (the Welch 95 % interval), `p_value`, `q_value` (after
    Benjamini-Hochberg) and `verdict`; `display`: the same rows with the Markdown's columns (strings; one line per
    row even where the Markdown pivots them into column groups)."""
    name: str
    profile: str
    frame: pd.DataFrame
    display: pd.DataFrame
    markdown: str
    cells: list[ResolvedCell] = field(repr=False)
    records: list[dict] = field(repr=False)
    labels: list[str] = field(default_factory=list)  # the label columns (e.g. Method, Pair)
    failed: dict[str, str] = field(default_factory=dict)  # key -> one-line reason, for cells that failed in this run

    def _repr_markdown_(self) -> str:  # Jupyter shows the table as the Markdown file reads
        return self.markdown


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Every error a user can cause, as `SuiteError` with its one-line message."""
    from suite.data import DataError
    from suite.plugins import PluginError
    from suite.registry import UnknownNameError

    try:
        yield
    except SuiteError:
        raise
    except (UnknownNameError, ValueError, DataError, PluginError) as exc:
        raise SuiteError(str(exc)) from None


def table_options(profile: str = "cpu", seeds: int = 1, dataset: str | None = None, methods: str | list[str] | None = None,
                  model: str | None = None, teacher: str | None = None, options: dict[str, Any] | None = None) -> TableOptions:
    """A table's options, each checked (unknown profile or dataset, a malformed option)."""
    from suite.data import DATASETS
    from suite.profiles import PROFILES

    PROFILES.get(profile)
    if dataset:
        DATASETS.get(dataset)
    if isinstance(methods, (list, tuple)):
        methods = ",".join(methods)
    extra = {str(k): str(v) for k, v in (options or {}).items()}
    extra.update({k: v for k, v in (("model", model), ("teacher", teacher)) if v})  # the compare table's options
    return TableOptions(profile=profile, seeds=seeds, dataset=dataset, methods=methods, extra=extra)


def threads_per_job(jobs: int, threads: int | None = None) -> int:
    """torch threads per cell: `threads` if given, else the machine's cores shared out over `jobs`."""
    return threads or max(1, (os.cpu_count() or 1) // jobs)


def make_runner(store: str | Path = "runs/store.sqlite", artifacts: str | Path | None = None,
                data_dir: str | Path | None = None, device: str = "auto", precision: str = DEFAULT_PRECISION,
                jobs: int = 1, threads: int | None = None, progress: bool = True, force: bool = False,
                epochs: int | None = None, only: str | None = None, retries: int = 1):
    """The Runner of a run: its store, artifacts, device, precision and torch threads (cores / jobs by default)."""
    from suite.data import default_data_dir
    from suite.runner import Runner
    from suite.store import Store

    if jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {jobs}")
    resolved_threads = threads_per_job(jobs, threads)
    if threads or jobs > 1:
        import torch

        torch.set_num_threads(resolved_threads)
    store = Path(store)
    return Runner(Store(store), Path(artifacts) if artifacts else store.parent / "artifacts",
                  Path(data_dir) if data_dir else default_data_dir(), device, progress=progress, force=force,
                  precision=precision, epochs=epochs, only=only,
                  threads=resolved_threads if (threads or jobs > 1) else None, retries=retries)


def plan_table(runner, table: Table, opts: TableOptions) -> TablePlan:
    table.check_options(opts)
    rows = select_methods(table, opts, table.rows(opts))
    options = runner.planner.options
    if options.budget is not None:  # a kept row (kd's teacher) is the model the other rows started from
        rows = [replace(r, spec=r.spec.with_(recipe_overrides={**r.spec.recipe_overrides_dict, "budget": None}))
                if options.kept(r.role) and r.spec is not None else r for r in rows]
    specs_by_row = [seed_specs([row], opts.seeds) for row in rows]
    return TablePlan(table, rows, runner.planner.rows(specs_by_row), runner.plan([s for ss in specs_by_row for s in ss]))


def numeric_frame(table: Table, frame: pd.DataFrame, label_columns: list[str]) -> pd.DataFrame:
    """The rendered frame's rows as numbers: labels, n, every raw figure (underscored there), Welch's figures."""
    from suite.stats import fdr_q

    raw = [c for c in frame.columns if c.startswith("_") and c != "_role"]
    out = frame[label_columns].copy()
    out["role"] = frame["_role"] if "_role" in frame.columns else ""
    out["n"] = pd.to_numeric(frame["n"], errors="coerce").fillna(0).astype(int) if "n" in frame.columns else 0
    for c in raw:
        values = frame[c]
        out[c.lstrip("_")] = values if c == "_top1_values" else pd.to_numeric(values, errors="coerce")
    for relative in table.relative:
        if relative.kind != "welch" or not relative.numbers:
            continue
        comparisons = relative.comparisons(frame) if len(frame) else []
        prefix = relative.numbers
        out[prefix] = [c.difference if c else float("nan") for c in comparisons]
        out[f"{prefix}_low"] = [c.low if c and c.low is not None else float("nan") for c in comparisons]
        out[f"{prefix}_high"] = [c.high if c and c.high is not None else float("nan") for c in comparisons]
        if prefix == "delta":
            out["p_value"] = [c.p_value if c and c.p_value is not None else float("nan") for c in comparisons]
            out["q_value"] = [q if q is not None else float("nan") for q in fdr_q(comparisons)]
    from suite.columns import VERDICT

    if VERDICT in frame.columns:
        out["verdict"] = frame[VERDICT]
    return out


def result_of(plan: TablePlan, opts: TableOptions, store, out: Path | None, artifacts: Path | None, force: bool,
              failed: dict[str, str] | None = None) -> tuple[TableResult, Path | None]:
    """Compute the table from the store; write it under `out` when given (refusing to lose published results)."""
    from suite.report import compute_table, write_rendering

    rendering = compute_table(plan.table, opts, plan.rows, plan.row_cells, store)
    md_path = None
    if out is not None:
        md_path, _ = write_rendering(plan.table, opts, rendering, store, out, artifacts, force)
    result = TableResult(plan.table.name, opts.profile, numeric_frame(plan.table, rendering.frame, rendering.label_columns),
                         rendering.visible, "\n".join(rendering.markdown) + "\n", plan.cells, rendering.records,
                         rendering.label_columns, dict(failed or {}))
    return result, md_path


def progress_saver(runner, plan: TablePlan, records_file: Path | None):
    """What `--progress-dir` calls after every finished cell: `--save-progress` of the plan into `records_file`
    (records that only grow, and the saved models unfinished cells need), so a machine lost mid-campaign loses
    only the cells in flight. A failure to save is one line; training goes on."""
    if records_file is None:
        return None
    from suite.records import save_progress

    def save() -> None:
        try:
            save_progress(records_file, plan.cells, runner.store, runner.artifacts, plan.table.budget_keeps)
        except (OSError, ValueError) as exc:
            runner.log(f"progress not saved to {records_file}: {type(exc).__name__}: {exc}")

    return save


def train_and_render(runner, plan: TablePlan, opts: TableOptions, out: Path | None, executor=None,
                     force: bool = False, tensorboard: Path | None = None,
                     save_to: Path | None = None) -> tuple[TableResult, Path | None, Any]:
    """Train what the plan still needs (through `executor`, or in this process), then compute and write the table
    (and, with `tensorboard`, one TensorBoard run per finished cell: suite/tracking.py). `save_to`: a records file
    the campaign's progress is merged into after every finished cell (`progress_saver`)."""
    if tensorboard is not None:
        from suite.tracking import summary_writer

        summary_writer()  # its one line before anything trains
    summary = runner.run(plan.cells, executor, progress_saver(runner, plan, save_to))
    if tensorboard is not None:
        from suite.tracking import write_tensorboard

        write_tensorboard(Path(tensorboard), plan.cells, runner.store)
    result, md = result_of(plan, opts, runner.store, out, runner.artifacts, force, summary.failed)
    return result, md, summary


def run_table(name: str, *, profile: str = "cpu", seeds: int = 1, dataset: str | None = None,
              methods: str | list[str] | None = None, model: str | None = None, teacher: str | None = None,
              options: dict[str, Any] | None = None, precision: str = DEFAULT_PRECISION, device: str = "auto",
              store: str | Path = "runs/store.sqlite", artifacts: str | Path | None = None,
              data_dir: str | Path | None = None, out: str | Path | None = None, epochs: int | None = None,
              jobs: int = 1, executor: str = "local", retries: int = 1, progress: bool = True,
              force: bool = False, tensorboard: str | Path | None = None) -> TableResult:
    """Train what the table still needs (cached cells are reused, as on the command line) and return it.
    The files (.md, .csv, records, plots) are written only under `out` (e.g. "results/cpu"), refused in one line
    (SuiteError) where they would replace a published table by one with fewer rows or seeds. `tensorboard`: a folder
    for one TensorBoard run per cell (per-epoch train loss, accuracy, lr, seconds, images/s)."""
    from suite.executors import make_executor

    with one_line_errors():
        table = get_table(name)
        opts = table_options(profile, seeds, dataset, methods, model, teacher, options)
        runner = make_runner(store, artifacts, data_dir, device, precision, jobs, progress=progress, force=force,
                             epochs=epochs, retries=retries)
        plan = plan_table(runner, table, opts)
        pool = make_executor(executor, jobs, None, threads_per_job(jobs))
        try:
            result, _, _ = train_and_render(runner, plan, opts, Path(out) if out else None, pool, force,
                                            Path(tensorboard) if tensorboard else None)
        finally:
            if pool is not None:
                pool.shutdown()
        return result


def budget_label(plan: TablePlan, budget: str, kept: tuple[str, ...] = ()) -> str:
    """A budget as the reader sees it: what was asked and the epochs it gives the rows it trains (those not of a kept
    role); where those rows differ in epochs (one recipe per dataset), the header's budget line gives each recipe."""
    trained = [cells for row, cells in zip(plan.rows, plan.row_cells) if row.role not in kept and cells]
    epochs = {c.recipe.epochs for cells in trained or [cells for cells in plan.row_cells if cells] for c in cells}
    asked = budget.replace("x", "×")
    if len(epochs) != 1:
        return asked
    ep = f"{epochs.pop()} ep"
    return ep if budget == ep.split()[0] else f"{asked} ({ep})"


def run_budgets(name: str, budgets: list[str] | str, *, out: str | Path | None = None, budget_teacher: bool = False,
                render_only: bool = False, progress_dir: str | Path | None = None, **kwargs: Any) -> BudgetResult:
    """`run_table` at each budget ("N" epochs or "xK"; "x1" is the profile's own), then one table across them
    (suite/budgets.py), written as `<out>/budget_<name>.md` (+ .csv, .cells.jsonl, _delta_vs_budget.png) when
    `out` is given. Each budget's cells are cached like any others; `render_only` trains nothing and shows what the
    store holds (a campaign's progress; cells not yet trained are pending); `only` (a label substring) trains just the
    matching cells of every budget and what they need, the others shown as they are; `progress_dir`: after every
    finished cell, the campaign's progress saved as `progress_dir/budget_<name>.cells.jsonl` (`--progress-dir`)."""
    from suite.budgets import (budget_command, budget_costs, budget_header, budget_table, kept_roles, parse_budgets,
                               plot_budgets, table_header)
    from suite.executors import make_executor
    from suite.records import merge_records, published_records
    from suite.report import records_path, write_index, write_records

    with one_line_errors():
        budgets = parse_budgets(budgets)
        table = get_table(name)
        run_args = {k: kwargs.pop(k) for k in ("profile", "seeds", "dataset", "methods", "model", "teacher", "options")
                    if k in kwargs}
        opts = table_options(**run_args)
        jobs, threads = kwargs.get("jobs", 1), kwargs.get("threads")
        base = make_runner(kwargs.get("store", "runs/store.sqlite"), kwargs.get("artifacts"), kwargs.get("data_dir"),
                           kwargs.get("device", "auto"), kwargs.get("precision", DEFAULT_PRECISION), jobs, threads,
                           progress=kwargs.get("progress", True), force=kwargs.get("force", False),
                           only=kwargs.get("only"), retries=kwargs.get("retries", 1))
        kept = kept_roles(table.budget_keeps, budget_teacher)
        pool = None if render_only else make_executor(kwargs.get("executor", "local"), jobs, None,
                                                      threads_per_job(jobs, threads))
        per_budget, shown, labels = {}, {}, []
        progress_file = records_path(Path(progress_dir), f"budget_{name}") if progress_dir is not None else None
        try:
            for budget in budgets:
                runner = base.at_budget(budget, kept)
                plan = plan_table(runner, table, opts)
                if render_only:
                    result, _ = result_of(plan, opts, runner.store, None, runner.artifacts, False)
                else:
                    result, _, _ = train_and_render(runner, plan, opts, None, pool, save_to=progress_file)
                label = budget_label(plan, budget, kept)
                per_budget[label] = result
                shown[label] = (result.display, result.frame)
                labels = result.labels
        finally:
            if pool is not None:
                pool.shutdown()
        display, numbers = budget_table(shown, labels)
        header = budget_header({b: table_header(r.markdown) for b, r in per_budget.items()})
        header[0] = f"# {table.title} at several training budgets (`budget_{name}`)"
        extra = {k: v for k, v in opts.extra.items() if k not in ("model", "teacher")}
        command = budget_command(name, budgets, [
            ("methods", opts.methods), ("dataset", opts.dataset), ("model", opts.extra.get("model")),
            ("teacher", opts.extra.get("teacher")), *[("opt", f"{k}={v}") for k, v in extra.items()],
            ("seeds", opts.seeds), ("precision", kwargs.get("precision", DEFAULT_PRECISION))])
        command += " --budget-teacher" if budget_teacher else ""
        bullets = next(i for i, line in enumerate(header) if line.startswith("- "))
        header[bullets:bullets] = [
            f"- Command: `{command}` (add `--render-only` to re-render it from the store, `--save-progress` to publish "
            "its finished cells)",
            "- Cost (training, the cells' own clocks): " + budget_costs({b: r.records for b, r in per_budget.items()})]
        notes = ["Budgets: every stage of every row trained at each budget, a multistep schedule's milestones "
                 "stretched with its epochs" + (f", except what the rows start from (the rows and upstream models "
                                                f"of role {', '.join(kept)}): each keeps its own recipe, the same "
                                                "model at every budget; a row that fine-tunes it for a fraction "
                                                "of the recipe's epochs keeps that fraction of the "
                                                "budget's" if kept else "")
                 + ("; the teacher retrained at each budget (--budget-teacher)." if budget_teacher else "."),
                 f"{'Verdict holds across budgets'}: yes = the same better / worse at every budget; changes at B = "
                 "the first budget whose verdict differs; within noise everywhere; no verdict where a budget has "
                 "one seed (verdicts as in each budget's own table: Welch over seeds, Benjamini-Hochberg within it). A verdict "
                 "that changes while Δ stays inside the other budget's interval is the seeds' spread changing, not the "
                 "effect: read the Δ columns beside it."]
        markdown = "\n".join(header + ["", display.to_markdown(index=False, disable_numparse=True), "", "Notes:"]
                             + [f"- {n}" for n in notes]) + "\n"
        if out is not None:
            out = Path(out)
            out.mkdir(parents=True, exist_ok=True)
            stem = f"budget_{name}"
            (out / f"{stem}.md").write_text(markdown)
            numbers.drop(columns=["top1_values"], errors="ignore").to_csv(out / f"{stem}.csv", index=False)
            path = records_path(out, stem)
            write_records(path, merge_records(published_records(path),
                                              [r for res in per_budget.values() for r in res.records]))
            plot_budgets(numbers, labels, f"{table.title}: Δ to the reference against the budget",
                         out / f"{stem}_delta_vs_budget.png")
            write_index(out.parent)
        return BudgetResult(name, display, numbers, markdown, per_budget)


def compare(methods: str | list[str], model: str, *, teacher: str | None = None, dataset: str | None = None,
            **kwargs: Any) -> TableResult:
    """Methods side by side on one model (the `compare` table): the first method is the reference row."""
    return run_table("compare", methods=methods, model=model, teacher=teacher, dataset=dataset, **kwargs)


def plan_of_records(runner, table: Table, opts: TableOptions,
                    records: list[dict]) -> tuple[TablePlan, TableOptions]:
    """The table planned so that its cells are the published records' cells: with no dataset asked for and no
    planned cell among the records, the records' single dataset (e.g. the CIFAR-100 kd table published on
    CIFAR-10)."""
    plan = plan_table(runner, table, opts)
    keys = {r["key"] for r in records}
    datasets = {(r.get("spec") or {}).get("dataset") for r in records if r.get("status") == "done"} - {None}
    if not opts.dataset and len(datasets) == 1 and not any(c.key in keys for cs in plan.row_cells for c in cs):
        opts = replace(opts, dataset=datasets.pop())
        plan = plan_table(runner, table, opts)
    return plan, opts


def read_table(name: str, *, profile: str = "cpu", results: str | Path = "results", seeds: int | None = None,
               dataset: str | None = None, data_dir: str | Path | None = None, **options: Any) -> TableResult:
    """A published table (`results/<profile>/<name>.cells.jsonl`) read back into a TableResult without training:
    planned with the precision, seeds and dataset its records were made with, as `--render-only --from-records`
    does; nothing is written anywhere."""
    from suite.records import published_records, records_precision, records_seeds
    from suite.report import records_path
    from suite.store import Store

    with one_line_errors():
        table = get_table(name)
        path = records_path(Path(results) / profile, name)
        records = published_records(path)
        if not records:
            raise SuiteError(f"no published records at {path}")
        opts = table_options(profile, seeds or records_seeds(records), dataset, options=options or None)
        precision = records_precision(records, DEFAULT_PRECISION, name) or DEFAULT_PRECISION
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(Path(tmp) / "store.sqlite")
            store.add_records(records)
            runner = make_runner(Path(tmp) / "store.sqlite", data_dir=data_dir, precision=precision, progress=False)
            plan, opts = plan_of_records(runner, table, opts, records)
            result, _ = result_of(plan, opts, store, None, None, False)
        return result
