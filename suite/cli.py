"""Command line: `python run_all.py --table kd` (also the `suite` console script)."""
from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from tqdm.auto import tqdm

from suite.budgets import kept_roles, parse_budgets
from suite.columns import fmt_duration
from suite.data import DATASETS, DataError, default_data_dir
from suite.estimate import estimate_seconds
from suite.executors import make_executor
from suite.execute import resolve_device
from suite.numerics import DEFAULT_PRECISION, PRECISIONS, emulated_bf16_warning
from suite.plan import ResolvedCell
from suite.plugins import FAMILIES, PluginError, discover_methods
from suite.profiles import PROFILES
from suite.records import (import_records, models_path, published_records, read_records, records_precision,
                           records_seeds, restore_models, save_progress)
from suite.registry import UnknownNameError
from suite.report import records_path, render
from suite.runner import Runner
from suite.store import Store
from suite.api import TablePlan, plan_of_records, threads_per_job, make_runner as api_make_runner, plan_table, table_options as api_table_options, train_and_render
from suite.tables import Table, TableOptions, discover_tables, get_table


def table_flags() -> dict[str, str]:
    """Every discovered table's own flags (Table.flags), flag -> help."""
    flags: dict[str, str] = {}
    for name in discover_tables().names():
        flags.update(discover_tables().get(name).flags)
    return flags


def flag_dest(flag: str) -> str:
    return "table_flag_" + flag.replace("-", "_")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="run_all.py", description="Benchmark comparison suite: run paper tables end to end.")
    p.add_argument("--table", help="table name(s), comma-separated, or 'all'")
    p.add_argument("--list", action="store_true", help="list tables, methods, models, datasets, profiles")
    p.add_argument("--profile", default="cpu", help="training budget: smoke | cpu | paper (default cpu)")
    p.add_argument("--seeds", type=int, default=None,
                   help="seeds per cell (default 1; with --from-records, as many as the records hold)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--precision", default=DEFAULT_PRECISION, choices=list(PRECISIONS),
                   help="numerics of training and evaluation: auto = bf16 autocast + channels_last on CUDA and on CPUs "
                        "with native bf16, fp32 elsewhere (part of every cell's key)")
    p.add_argument("--data-dir", type=Path, default=None, help="dataset root (default $SUITE_DATA or ~/.cache/suite-data)")
    p.add_argument("--dataset", default=None, help="run the table on this dataset instead (e.g. cifar10 for cifar100)")
    p.add_argument("--out", type=Path, default=None,
                   help="where tables are written (default results/<profile>/, so a smoke run never overwrites a real table)")
    p.add_argument("--store", type=Path, default=Path("runs/store.sqlite"), help="results store (SQLite)")
    p.add_argument("--artifacts", type=Path, default=None, help="checkpoints folder (default: beside the store)")
    p.add_argument("--epochs", type=int, default=None, help="override the profile's epochs for every cell (recorded in its key)")
    p.add_argument("--executor", default="local", help="local (this machine) or ray")
    p.add_argument("--jobs", type=int, default=1, help="cells trained in parallel (worker processes or Ray tasks)")
    p.add_argument("--address", default=None, help="with --executor ray: an existing cluster (default: start a local Ray)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per cell (default: cores / jobs)")
    p.add_argument("--save-progress", action="store_true",
                   help="train and render nothing: merge the finished cells' records into the published "
                        "<table>.cells.jsonl (it only grows) and keep beside it, in <table>.models/, the saved models "
                        "unfinished cells still need, so --import-records continues the campaign on another machine")
    p.add_argument("--progress-dir", type=Path, default=None, metavar="DIR",
                   help="while training, after every finished cell, do what --save-progress does into DIR "
                        "(DIR/<table>.cells.jsonl and DIR/<table>.models/): a machine lost mid-campaign loses only "
                        "the cells in flight; commit or copy DIR, and --import-records DIR/<table>.cells.jsonl "
                        "continues elsewhere")
    p.add_argument("--retries", type=int, default=1,
                   help="times a cell whose worker process died (kill -9, out of memory) is run again, from its last "
                        "epoch checkpoint (default 1)")
    p.add_argument("--methods", default=None, metavar="LIST",
                   help="rows by method: +NAME adds, -NAME removes (write --methods=-NAME), NAME,NAME replaces; "
                        "NAME[key=value;...] sets its params; for --table compare the list of methods to put side by "
                        "side (the first is the reference)")
    p.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE",
                   help="a table option (each table's own are in --list), e.g. --opt pairs=resnet56:resnet20")
    p.add_argument("--budgets", default=None, metavar="B1,B2,...",
                   help="run the table at each training budget (N epochs, or xK times the profile's) and write "
                        "budget_<table>.md: each row's top-1 and verdict at every budget and whether the verdict holds")
    p.add_argument("--budget-teacher", action="store_true",
                   help="with --budgets: also train a distiller's teacher at each budget (default: it keeps its recipe)")
    p.add_argument("--dry-run", action="store_true", help="show cells, dependencies and estimated time; train nothing")
    p.add_argument("--force", action="store_true", help="retrain cells even if the store has them")
    p.add_argument("--render-only", action="store_true",
                   help="train nothing: write the tables from what the store holds now (unfinished rows say pending)")
    p.add_argument("--from-records", action="store_true",
                   help="with --render-only: also take finished cells from the records published beside each table "
                        "(<out>/<table>.cells.jsonl), e.g. to re-render a table on a machine without its store")
    p.add_argument("--import-records", action="append", default=[], type=Path, metavar="PATH",
                   help="add the finished cells of published records (<table>.cells.jsonl) to the store where the key "
                        "recomputed by this code and data matches; stale ones are counted, never imported")
    p.add_argument("--remeasure", action="store_true",
                   help="train nothing: evaluate and measure the finished cells again (e.g. latency on a quiet machine)")
    p.add_argument("--only", default=None, metavar="SUBSTR",
                   help="run only cells whose label contains SUBSTR (and what they need); with --force, retrain just those")
    p.add_argument("--tensorboard", type=Path, default=None, metavar="DIR",
                   help="write one TensorBoard run per finished cell under DIR (per epoch: train loss and accuracy, lr, "
                        "seconds, images/s; needs the tensorboard extra)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    for flag, help_text in table_flags().items():  # flags a table declares for itself (Table.flags)
        p.add_argument(f"--{flag}", dest=flag_dest(flag), default=None, metavar="VALUE", help=help_text)
    return p


def print_list() -> None:
    from baselines import model_names

    print("tables:   " + ", ".join(f"{n} ({discover_tables().get(n).title})" for n in discover_tables().names()))
    for n in discover_tables().names():
        if discover_tables().get(n).options_help:
            print(f"  --opt for {n}: {discover_tables().get(n).options_help}")
    methods = discover_methods()
    print("methods:  " + ", ".join(methods.names()))
    for family in FAMILIES:  # the same methods by family, and the table showing every member (Table.family)
        members = [n for n in methods.names() if methods.get(n).family == family]
        shown_by = [n for n in discover_tables().names() if discover_tables().get(n).family == family]
        print(f"  {family} ({len(members)}): {', '.join(members)}"
              + (f" [every one in table {', '.join(shown_by)}]" if shown_by else ""))
    print("  distiller: also mdistiller:NAME, mdistiller's own distillers (when mdistiller is importable)")
    print("models:   " + ", ".join(model_names()) + ", timm:<any timm model>")
    print("datasets: " + ", ".join(DATASETS.names()))
    print("profiles: " + ", ".join(f"{n} ({PROFILES.get(n).description})" for n in PROFILES.names()))


def check_writable(folder: Path, what: str = "--out") -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ValueError(f"{what} {folder} is not writable ({exc.strerror or exc})") from None


def measured_over_modelled(runner: Runner, cells: list[ResolvedCell]) -> dict[str | None, float]:
    """How far the FLOPs model is off on this machine, read from the finished ones of `cells`: the median of
    measured core-seconds over modelled ones, per method (key None: over all of them). The model knows nothing of a
    contrastive memory, extra modules or data loading; the finished cells do."""
    import statistics

    ratios: dict[str | None, list[float]] = {}
    for cell in cells:
        row = runner.store.get(cell.key)
        if not row or row["status"] != "done" or cell.force:
            continue
        metrics, threads = row["metrics"] or {}, (row["env"] or {}).get("threads") or 2
        # a cell resumed from its checkpoint ran little wall clock; its stages still say what training cost
        seconds = max(metrics.get("cell_seconds") or 0.0, metrics.get("train_seconds") or 0.0)
        if not seconds or not cell.method.estimated_epochs(cell.recipe, cell.params):
            continue  # an untrained cell (a copy, an evaluation) says nothing about training speed
        ratio = seconds * threads / (2 * estimate_seconds(cell, runner.device.type))  # the model's unit: 2 cores
        for key in (cell.spec.method, None):
            ratios.setdefault(key, []).append(ratio)
    return {key: statistics.median(values) for key, values in ratios.items()}


def dry_run(runner: Runner, plan: TablePlan, title: str | None = None,
            scale: dict[str | None, float] | None = None) -> None:
    """Each cell, cached or to train (with its estimate), and the total. `scale`: measured/modelled from other
    plans' finished cells too (a longer budget's cells calibrated by the profile's own), else from this plan's."""
    scale = measured_over_modelled(runner, plan.cells) if scale is None else scale
    total = 0.0
    print(f"== {title or plan.table.name}")
    for cell in plan.cells:
        row = runner.store.get(cell.key)
        state = "cached" if row and row["status"] == "done" and not cell.force else "to train"
        est = 0.0 if state == "cached" else \
            estimate_seconds(cell, runner.device.type) * scale.get(cell.spec.method, scale.get(None, 1.0))
        total += est
        deps = ", ".join(f"{role}={d.spec.model}" for role, d in cell.deps.items()) or "-"
        data = "" if cell.data_fingerprint else f"  [{cell.data_error}]"
        print(f"{cell.key[:10]}  {state:8s}  ~{fmt_duration(est):>8s}  {cell.label}  needs: {deps}{data}")
    basis = "rough, from FLOPs" if None not in scale else \
        (f"from FLOPs, scaled by the finished cells of this plan or its budgets (measured/modelled: "
         f"{scale[None]:.1f}× over all; per method where it has some)")
    print(f"{len(plan.cells)} cells; estimated {fmt_duration(total)} on {runner.device.type} in {runner.precision} "
          f"with every core busy ({basis})")


def remeasure(runner: Runner, plans: list[TablePlan], args, opts: TableOptions) -> int:
    """One pass over the tables asked for: each distinct cell re-timed once, however many of the tables show it, then
    every table rendered, so a cell shown in two tables shows one figure (`--table pruning,compare,baselines`)."""
    import time

    started = time.strftime("%Y-%m-%d %H:%M:%S")
    cells = list({c.key: c for plan in plans for c in plan.cells}.values())
    names = ", ".join(plan.table.name for plan in plans)
    for cell in tqdm(cells, desc=f"{names}: remeasure", disable=args.quiet, leave=False):
        reason = runner.remeasure(cell, started)
        if reason and reason != "not a classifier":
            print(f"not remeasured {cell.label}: {reason}")
    if len(plans) > 1:
        shown = sum(len(plan.cells) for plan in plans)
        print(f"remeasured {len(cells)} distinct cells for the {shown} the tables {names} show")
    for plan in plans:
        md, _ = render(plan.table, opts, plan.rows, plan.row_cells, runner.store, args.out, runner.artifacts,
                       force=args.force)
        print(f"{plan.table.name}: remeasured -> {md}")
    return 0


def render_only(runner: Runner, plan: TablePlan, args, opts: TableOptions) -> int:
    if not args.from_records:
        md, _ = render(plan.table, opts, plan.rows, plan.row_cells, runner.store, args.out, runner.artifacts,
                   force=args.force)
        print(f"{plan.table.name}: rendered from the store -> {md}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:  # the store is read, never written
        merged = Store(Path(tmp) / "store.sqlite")
        merged.add_records(runner.store.rows())  # its finished rows; the rest are skipped
        records = read_records(records_path(args.out, plan.table.name))
        added = merged.add_records(records)
        md, _ = render(plan.table, opts, plan.rows, plan.row_cells, merged, args.out, runner.artifacts, force=args.force)
        found = sum(bool(merged.get(c.key)) for cells in plan.row_cells for c in cells)
    print(f"{plan.table.name}: rendered from the store and {added} published records -> {md}")
    missing = sorted({c.spec.dataset for cells in plan.row_cells for c in cells if c.data_fingerprint is None})
    if records and missing:  # keys hash the data's fingerprint: without the files no record can match
        print(f"{plan.table.name}: {', '.join(missing)} not found under {args.data_dir or default_data_dir()}: cell keys "
              "hash the data's fingerprint, so published records cannot be matched to those rows; give --data-dir")
    elif records and not found:  # keys hash the precision too: say why nothing matched
        numerics = sorted({(r.get("env") or {}).get("numerics", "?") for r in records})
        print(f"{plan.table.name}: no published record matches this run's cells (they were made with numerics "
              f"{', '.join(numerics)}, this run plans {runner.precision}, data {args.data_dir or default_data_dir()}): "
              "check --precision, --data-dir and --profile")
    return 0


def render_from_records(args, table: Table, opts: TableOptions) -> int:
    """`--render-only --from-records` for one table, planned with the precision of its published records (so it
    renders identically on a machine whose `auto` would train in another precision)."""
    from suite.numerics import resolve_precision

    records = published_records(records_path(args.out, table.name))
    precision = records_precision(records, args.precision, table.name) or args.precision
    if args.seeds is None and records:
        opts = replace(opts, seeds=records_seeds(records))
    runner, _ = make_runner(argparse.Namespace(**{**vars(args), "precision": precision}))
    plan, opts = plan_of_records(runner, table, opts, records)
    auto = resolve_precision("auto", runner.device)
    if records:
        print(f"{table.name}: planned as its published records were made: {precision}, {opts.seeds} seed(s)"
              + (f", dataset {opts.dataset}" if opts.dataset and not args.dataset else "")
              + (f" (new training on this machine would use {auto})" if args.precision == "auto" and precision != auto
                 else ""))
    return render_only(runner, plan, args, opts)


def train(runner: Runner, plan: TablePlan, args, opts: TableOptions, executor) -> int:
    save_to = records_path(args.progress_dir, plan.table.name) if args.progress_dir else None
    _, md, summary = train_and_render(runner, plan, opts, args.out, executor, force=args.force,
                                      tensorboard=args.tensorboard, save_to=save_to)
    print(f"{plan.table.name}: trained {len(summary.done)}, cached {len(summary.skipped)}, "
          f"failed {len(summary.failed)} -> {md} (+ {md.with_suffix('.csv').name})")
    return len(summary.failed)


def planned(runner: Runner, tables: list[Table], opts: TableOptions,
            args) -> list[tuple[str, list[tuple[str | None, TablePlan]]]]:
    """Per table, the name of its records (`kd`, or `budget_kd` under --budgets) and its (budget, plan) pairs: the
    table's own (budget None), or one per budget (planned as `--budgets` trains them: suite.budgets.kept_roles)."""
    if not args.budgets:
        return [(table.name, [(None, plan_table(runner, table, opts))]) for table in tables]
    budgets = parse_budgets(args.budgets)
    return [(f"budget_{table.name}",
             [(b, plan_table(runner.at_budget(b, kept_roles(table.budget_keeps, args.budget_teacher)), table, opts))
              for b in budgets]) for table in tables]


def train_budgets(args, table: Table, opts: TableOptions) -> int:
    """`--budgets B1,B2,...`: the table at each budget and one table across them (suite/budgets.py)."""
    from suite.api import run_budgets

    result = run_budgets(table.name, args.budgets, out=args.out, budget_teacher=args.budget_teacher,
                         render_only=args.render_only, profile=opts.profile, seeds=opts.seeds, dataset=opts.dataset,
                         methods=opts.methods, options=opts.extra, precision=args.precision,
                         device=args.device, store=args.store, artifacts=args.artifacts, data_dir=args.data_dir,
                         jobs=args.jobs, threads=args.threads, executor=args.executor, retries=args.retries,
                         only=args.only, progress=not args.quiet, force=args.force,
                         progress_dir=args.progress_dir)
    failed = sum(len(r.failed) for r in result.per_budget.values())
    print(f"{table.name}: budgets {', '.join(result.per_budget)}, "
          + ("rendered from the store" if args.render_only else f"failed {failed}") + " -> "
          f"{args.out / f'budget_{table.name}.md'}")
    return 1 if failed else 0


def table_options(args) -> tuple[list[Table], TableOptions]:
    """The tables asked for and their options, every argument checked before anything is planned."""
    if not args.table:
        raise ValueError("nothing to do: give --table NAME (or --list)")
    extra = {}
    for item in args.opt:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--opt takes KEY=VALUE, got {item!r}")
        extra[key.strip()] = value.strip()
    for flag in table_flags():  # a table flag --a-b V is its option a_b=V, checked by that table
        value = getattr(args, flag_dest(flag), None)
        if value is not None:
            extra[flag.replace("-", "_")] = value
    if args.jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {args.jobs}")
    if args.from_records and not args.render_only:
        raise ValueError("--from-records only renders: use it with --render-only")
    if args.budgets and args.epochs is not None:
        raise ValueError("--epochs and --budgets both set the epochs: give the budgets in epochs (--budgets 10,40)")
    clashing = [flag for flag, value in (("--tensorboard", args.tensorboard),) if value]
    if args.budgets and clashing:
        raise ValueError(f"{', '.join(clashing)} cannot be combined with --budgets yet: run each budget's table "
                         "without --budgets (--epochs N) for that")
    opts = api_table_options(args.profile, 1 if args.seeds is None else args.seeds, args.dataset, args.methods,
                             options=extra)
    names = [n for n in discover_tables().names() if not discover_tables().get(n).methods_are_rows] \
        if args.table == "all" else [t.strip() for t in args.table.split(",") if t.strip()]  # `all`: the paper tables
    return [get_table(n) for n in names], opts


def make_runner(args) -> tuple[Runner, int]:
    threads = threads_per_job(args.jobs, args.threads)
    runner = api_make_runner(args.store, args.artifacts, args.data_dir, args.device, args.precision, args.jobs,
                             args.threads, progress=not args.quiet, force=args.force, epochs=args.epochs,
                             only=args.only, retries=args.retries)
    return runner, threads


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.list:
            print_list()
            return 0
        if args.import_records:
            runner, _ = make_runner(args)
            for path in args.import_records:
                report = import_records(runner.store, read_records(path), args.data_dir or default_data_dir(),
                                        add=runner.scheduler.add_records)
                restored = restore_models(Path(path), runner.store, runner.artifacts)
                print(report.line(path) + (f"; models restored from {models_path(Path(path))}: {restored}"
                                           if restored else ""))
            if not args.table:
                return 0
        tables, opts = table_options(args)
        args.out = args.out or Path("results") / args.profile
        if not args.dry_run:
            check_writable(args.out)
        if args.progress_dir is not None and not (args.dry_run or args.render_only or args.remeasure):
            check_writable(args.progress_dir, "--progress-dir")
        if args.budgets and (args.remeasure or args.from_records):
            raise ValueError("--remeasure and --from-records take one budget at a time: leave out --budgets (to render "
                             "a budget table from its records: --import-records results/cpu/budget_TABLE.cells.jsonl "
                             "--store SCRATCH --budgets ... --render-only)")
        if not args.render_only:
            warning = emulated_bf16_warning(args.precision, resolve_device(args.device))
            if warning:
                print(warning, file=sys.stderr)
        if args.render_only and args.from_records:  # each table in the numerics its records were made with
            return max(render_from_records(args, table, opts) for table in tables)
        if args.budgets and not (args.dry_run or args.save_progress):  # trains every budget, or --render-only shows
            return max(train_budgets(args, table, opts) for table in tables)
        runner, threads = make_runner(args)
        if args.dry_run or args.save_progress:  # plans only: one per table, or one per budget of each table
            for name, plans in planned(runner, tables, opts, args):
                cells = [c for _, plan in plans for cells in plan.row_cells for c in cells]
                if args.dry_run:
                    scale = measured_over_modelled(runner, cells)
                    for budget, plan in plans:
                        dry_run(runner, plan, f"{name} at budget {budget}" if budget else name, scale)
                    continue
                path = records_path(args.out, name)
                keeps = plans[0][1].table.budget_keeps
                # every planned cell, not only the rows': a finished stage under an unfinished row (EncodeNet's
                # targets under its autoencoder) is saved too, as --progress-dir saves it
                planned_cells = list({c.key: c for _, plan in plans for c in plan.cells}.values())
                written, needed, starts = save_progress(path, planned_cells, runner.store, runner.artifacts, keeps)
                print(f"{name}: {written} records in {path}; {len(needed)} saved model(s) unfinished cells "
                      f"need and {len(starts)} a --budgets campaign starts from ({', '.join(keeps)}) in "
                      f"{models_path(path)}")
            return 0
        plans = [plan_table(runner, table, opts) for table in tables]
        if args.remeasure:
            return remeasure(runner, plans, args, opts)
        if args.render_only:
            return max(render_only(runner, plan, args, opts) for plan in plans)
        check_writable(runner.artifacts, "the artifacts folder")
        executor = make_executor(args.executor, args.jobs, args.address, threads)
        try:  # each table is rendered as soon as its cells are done
            failed = sum(train(runner, plan, args, opts, executor) for plan in plans)
        finally:
            if executor is not None:
                executor.shutdown()
        return 1 if failed else 0
    except (UnknownNameError, ValueError, DataError, PluginError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished cells are stored; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
