"""Render a table's stored results as Markdown (pandas + tabulate) and CSV, with a header that says
how every figure was made: profile and recipes, seeds, device, datasets (fingerprint, canonical or
not), software versions, date and commit. Reproduced and reported figures are separate columns."""
from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from suite.columns import DECLARED, DEFAULT, VERDICT, RowCells, pivot_wide, summarize
from suite.numerics import describe
from suite.plan import ResolvedCell, cell_and_upstream
from suite.records import merge_records, published_records
from suite.profiles import PROFILES, dataset_family
from suite.store import Store
from suite.tables import Table, TableOptions, TableRow


def training_cost(store: Store, cell: ResolvedCell) -> tuple[int, float]:
    """Epochs and seconds of a cell plus everything it depended on (a teacher, a baseline), each counted once; the
    dependencies are the resolved cell's, the figures the store's."""
    epochs, seconds = 0, 0.0
    for key in cell_and_upstream(cell):
        metrics = stored_metrics(store, key)
        epochs, seconds = epochs + metrics.get("epochs_trained", 0), seconds + metrics.get("train_seconds", 0.0)
    return epochs, seconds


def dependency_metrics(store: Store, cell: ResolvedCell, roles: tuple[str, ...]) -> dict[str, Any]:
    """The stored metrics of the cell's dependency reached by `roles` (e.g. ("autoencoder", "targets")), as
    planned; {} where the plan has no such dependency or it has not finished."""
    for role in roles:
        if role not in cell.deps:
            return {}
        cell = cell.deps[role]
    return stored_metrics(store, cell.key)


def recipe_lines(row_cells: list[list[ResolvedCell]]) -> list[str]:
    """The recipes the table's cells actually run (after --epochs and every other override), by kind of data
    and protocol."""
    found: dict[str, list[str]] = {}
    for cell in (c for cells in row_cells for c in cells):
        group = f"{dataset_family(cell.info.in_chans)}-like ({cell.spec.protocol})"
        described = cell.recipe.describe()
        if described not in found.setdefault(group, []):
            found[group].append(described)
    return [f"{group}: {' | '.join(recipes)}" for group, recipes in found.items()]


LIBRARY_LABELS = {"torchvision": "torchvision", "timm": "timm", "torch-pruning": "Torch-Pruning", "torchao": "torchao",
                  "scikit-learn": "scikit-learn", "numpy": "numpy", "scipy": "scipy"}


def software_line(env: dict) -> str:
    """torch, every library that changes a figure (as the cell recorded them), Python."""
    libraries = env.get("libraries") or {"timm": env["timm"]}  # cells trained before libraries were recorded
    named = ", ".join(f"{LIBRARY_LABELS.get(k, k)} {v}" for k, v in libraries.items())
    return f"torch {env['torch']}, {named}, Python {env['python']}"


def counted(values: list[str]) -> list[str]:
    """Distinct values, each with how many cells had it when there is more than one ("a (3 cells)")."""
    counts = {v: values.count(v) for v in sorted(set(values))}
    return list(counts) if len(counts) < 2 else [f"{v} ({n} cell{'s' * (n > 1)})" for v, n in counts.items()]


def verdict_line(verdicts: pd.Series) -> str:
    tested = int(verdicts.astype(str).str.contains(r"\(q [=<] ").sum())
    if tested == 0:
        return "- Verdicts: none yet: no row has two seeds or more on both sides of its comparison (one run cannot show its own noise)"
    return (f"- Verdicts: Welch's t-test of each row against its reference over seeds; \"better\" / \"worse\" only "
            f"where the p-value adjusted by Benjamini-Hochberg across this table's {tested} tested comparisons (q) is "
            f"below 0.05 (false discovery rate 5 %), else \"within noise\"; the Δ column's interval is the unadjusted "
            f"95 % Welch interval; fewer than two seeds on either side give no verdict")


def header_lines(table: Table, opts: TableOptions, rows: list[TableRow], results: list[list[dict | None]],
                 row_cells: list[list[ResolvedCell]]) -> list[str]:
    planned = next((p for cells in row_cells for c in cells if (p := getattr(c, "profile", None)) is not None), None)
    profile = planned or PROFILES.get(opts.profile)  # a table with no planned cell at all: its name is all there is
    rows = [r for r in rows if r.spec is not None]
    datasets = list(dict.fromkeys(r.spec.dataset for r in rows))
    recipes = recipe_lines(row_cells)
    precisions = sorted({describe(c.precision) for cells in row_cells for c in cells})
    done = [r for rs in results for r in rs if r and r["status"] == "done"]
    envs = [r["env"] for r in done if r.get("env")]
    data_lines = []
    for d in datasets:
        m = next((r["metrics"] for r in done if r["spec"]["dataset"] == d), None)
        if m is None:
            data_lines.append(f"{d}: not run")
            continue
        canon = {True: "canonical (official checksums match)", None: "synthetic",
                 False: "NOT canonical (files differ from the official ones, e.g. the JPEG re-encoded CIFAR-10)"}[m["data_canonical"]]
        if m["data_canonical"] is None and m.get("data_source", "synthetic") != "synthetic":
            canon = f"your own images from {m['data_source']} (no official copy to check against)"
        trains = " / ".join(str(n) for n in sorted({r["metrics"]["train_size"] for r in done
                                                     if r["spec"]["dataset"] == d}, reverse=True))
        data_lines.append(f"{d}: fingerprint {m['data_fingerprint']}, {canon}; train {trains}, test {m['test_size']} images"
                          + (" (by recipe, see above)" if "/" in trains else ""))
    devices = counted([e.get("trained_on") or e["device"] for e in envs]) or ["not run"]  # a remeasure names its own
    versions = sorted({software_line(e) for e in envs})
    commits = counted([e["commit"] for e in envs])
    if len(commits) > 1:  # one table, trained over several sessions: why the older cells still stand
        commits.append("(the cells trained across sessions: a cell keeps its key and record from commit to commit "
                       "until its method's version, its recipe, its data or a dependency changes)")
    if any(e["commit"].endswith("+dirty") for e in envs):
        commits.append("(+dirty: the checkout had uncommitted changes to tracked files when those cells ran)")
    numerics = sorted({e["numerics"] for e in envs}) or precisions
    timers = {r["metrics"].get("latency_timer", "a time.perf_counter loop") for r in done}
    timer = "timed with " + " and ".join(sorted(timers)) if timers else "not measured yet"
    measured = sorted({describe(r["metrics"]["measured_precision"]) for r in done
                       if r["metrics"].get("measured_precision")})
    remeasured = remeasure_passes(done)
    lines = [
        f"# {table.title} (`{table.name}`)",
        "",
        table.description,
        "",
        f"- Profile: `{opts.profile}` ({profile.description}); recipes: " + "; ".join(recipes),
        f"- Seeds: {opts.seeds} (0..{opts.seeds - 1}); Top-1 is the final-epoch test accuracy, mean ± sample std over seeds "
        "(no checkpoint is selected on the test set)",
        f"- Device{' (training; the re-measure pass names its own below)' if remeasured else ''}: {', '.join(devices)}; "
        f"numerics: {', '.join(numerics) or 'n/a'}"
        + (f"; latency and throughput timed in {', '.join(measured)}" if measured else ""),
        "- Data: " + " | ".join(data_lines),
        f"- Software: {'; '.join(versions) or 'n/a'}; commit {', '.join(commits) or 'n/a'}; rendered {dt.date.today().isoformat()}",
        f"- Latency: batch 1, median (p90) of {profile.latency_runs} timed calls after {profile.latency_warmup} warm-up "
        f"calls ({timer}); for a model whose work "
        "depends on its input (early exit) the expected latency, the mean over the real test images timed one at a time "
        "(each image's figure the median of its passes over all of them, so a stall of the machine lands in one pass; "
        "median and p90 beside it), which is also the basis of its speed-ups. Each seed's model is timed in a run of its "
        "own: a row of several seeds shows the median over those runs, the median p90, and the range over the runs "
        "(\"3 runs a–b\"; on a shared machine runs differ more than calls within a run), and its speed-ups use that "
        "median; size: bytes of the saved "
        f"state dict (MB = 10^6 bytes); FLOPs: forward pass of one image (a multiply-add counts 2); throughput: images "
        f"per second at batch {profile.throughput_batch} (torch.utils.benchmark's blocked autorange over "
        f"{profile.throughput_seconds:g} s). Each cell is timed "
        "when it finishes training, under whatever else the machine runs then (other cells with `--jobs`, other "
        "tables): latencies of rows trained at different times are comparable only after `--remeasure` of the table "
        "on a quiet machine",
        "- Energy: measured only with a readable meter (NVML on GPU, RAPL on CPU); n/a means no meter, never an estimate",
        "- Reported: figures printed in the papers and reference codebases (in brackets: source; which epoch and how "
        "many runs, as far as the source says, `?` where it does not; from suite/reference/paper_figures.csv), not "
        "reproduced here. A Δ against a best-epoch figure flatters the source: ours is always the last epoch",
    ]
    if remeasured:
        lines.append(f"- Re-measured with `--remeasure` (training untouched): {'; '.join(remeasured)}")
    return lines


def remeasure_passes(done: list[dict]) -> list[str]:
    """Each `--remeasure` pass behind a table's cells: when, where, how many of its cells, and how many of those were
    timed on a same-architecture copy because their saved models were not on that machine."""
    from suite.execute import TIMED_ON_TWIN

    passes: dict[str, list[str]] = {}
    for r in done:  # a pass is named by when it began (records before passes were named: by the day of each cell)
        if m := r["metrics"].get("remeasured"):
            when = f"pass of {m['pass'][:16]}" if m.get("pass") else m["date"][:10]
            passes.setdefault(f"{when} (commit {m['commit']}, {m['device']})", []).append(m.get("timed_on", ""))
    lines = []
    for where, timed_on in sorted(passes.items()):
        twins = timed_on.count(TIMED_ON_TWIN)
        line = f"{where}: {len(timed_on)} of {len(done)} cells"
        if twins:
            line += (f", {twins} of them timed on a same-architecture copy with fresh weights (latency, throughput and "
                     "energy only: their saved models were not on that machine, and dense kernels take the same time "
                     "whatever the weights; accuracy, size and FLOPs as recorded)")
        if twins < len(timed_on):
            line += (", the others" if twins else "") + " from their saved models (accuracy, latency, size, throughput)"
        lines.append(line)
    left = len(done) - sum(map(len, passes.values()))
    if passes and left:
        lines.append("1 cell keeps the timing of its training run" if left == 1
                     else f"{left} cells keep the timing of their training runs")
    return lines


def stored_metrics(store: Store, key: str) -> dict[str, Any]:
    return (store.get(key) or {}).get("metrics") or {}


def upstream_keys(row_cells: list[list[ResolvedCell]], results: list[list[dict | None]]) -> list[str]:
    """The finished cells of the rows and, recursively, every cell they depend on as planned (first seen first)."""
    seen: dict[str, None] = {}
    for cells, rs in zip(row_cells, results):
        for cell, r in zip(cells, rs):
            if r and r["status"] == "done":
                cell_and_upstream(cell, seen)
    return list(seen)


def copy_figures(table: Table, keys: list[str], store: Store, artifacts: Path, out_dir: Path) -> list[Path]:
    """Copy the figures that the rows' cells and their upstream stages drew (recorded as metrics["figures"],
    files in each cell's artifact folder) next to the table, as `<table>_<figure>.png`. A figure whose cell
    has no artifacts here (a table re-rendered from its published records) keeps its published copy."""
    copied: dict[str, Path] = {}
    for key in keys:
        for name in stored_metrics(store, key).get("figures") or []:
            src, dst = artifacts / key / name, out_dir / f"{table.name}_{name}"
            if name in copied:
                continue
            if src.exists():
                shutil.copyfile(src, dst)
            if dst.exists():
                copied[name] = dst
    return list(copied.values())


def records_path(out_dir: Path, table_name: str) -> Path:
    return out_dir / f"{table_name}.cells.jsonl"


def write_records(path: Path, records: list[dict]) -> None:
    """Publish the store rows behind a table (its cells and their dependencies: spec, metrics, environment),
    one JSON object a line, so the table can be re-rendered, and audited, without the store."""
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


class PublishedDataLoss(ValueError):
    """A render would replace published results by fewer (rows, seeds or records) or by another profile's."""


def finished_seeds(csv_path: Path) -> tuple[int, int]:
    """(rows with a finished cell, finished row-seeds) of a rendered table's CSV (its `n` column)."""
    try:
        n = pd.to_numeric(pd.read_csv(csv_path)["n"], errors="coerce").fillna(0)
    except (OSError, ValueError, KeyError, pd.errors.ParserError):
        return 0, 0
    return int((n > 0).sum()), int(n.sum())


def check_no_loss(out_dir: Path, table: str, profile: str, frame: pd.DataFrame, records: list[dict],
                  old_records: list[dict]) -> None:
    """Refuse (one line) a render that would leave fewer finished rows or seeds than the published table beside
    it, or a table of another profile in its place. Records never shrink: they are merged (`merge_records`)."""
    where = out_dir / f"{table}.md"
    profiles = {(r.get("spec") or {}).get("profile") for r in old_records if r.get("status") == "done"} - {None}
    if profiles and profile not in profiles:
        raise PublishedDataLoss(f"{where} holds a table of profile {', '.join(sorted(map(str, profiles)))}: not "
                                f"replaced by one of profile {profile} (give another --out, or --force)")
    old_rows, old_seeds = finished_seeds(out_dir / f"{table}.csv")
    n = pd.to_numeric(frame["n"], errors="coerce").fillna(0)
    rows, seeds = int((n > 0).sum()), int(n.sum())
    if rows < old_rows or seeds < old_seeds:
        done = sum(r.get("status") == "done" for r in records)
        raise PublishedDataLoss(f"{where} has {old_rows} finished rows ({old_seeds} row-seeds); this render has {rows} "
                                f"({seeds}) from {done} finished cells: not overwritten (render into another --out, "
                                "or --render-only --force to replace it)")


@dataclass
class Rendering:
    """A table computed from the store, before anything is written: the full frame (display strings and the raw
    numbers behind them, underscored), the Markdown lines, the cells' store rows and their records."""
    frame: pd.DataFrame
    label_columns: list[str]
    visible: pd.DataFrame  # the rows with the Markdown's columns, one line per row (before a pivot)
    markdown: list[str]
    rows: list[TableRow]
    results: list[list[dict | None]]  # per row, its cells' store rows (one per seed)
    records: list[dict]  # the rows' finished cells and everything they depended on
    upstream: list[str]  # those cells' keys (report.upstream_keys)


def compute_table(table: Table, opts: TableOptions, rows: list[TableRow], row_cells: list[list[ResolvedCell]],
                  store: Store) -> Rendering:
    """The table for the rows' resolved cells (one per seed) as the store holds them now; writes nothing."""
    results = [[store.get(c.key) for c in cells] for cells in row_cells]
    shown = set(table.columns or DEFAULT)
    by_key = {c.key: c for cells in row_cells for c in cells}
    lines = [{k: v for k, v in summarize(RowCells(row, rs, lambda key: training_cost(store, by_key[key]))).items()
              if k not in DECLARED or k in shown}  # a method's declared column only where a table names it
             for row, rs in zip(rows, results)]
    for row, cells, rs, line in zip(rows, row_cells, results, lines):
        done = [(c, r) for c, r in zip(cells, rs) if r and r["status"] == "done"]
        if done:
            cell, record = done[0]
            line.update(table.cell_columns(row, record["metrics"],
                                           lambda *roles, cell=cell: dependency_metrics(store, cell, roles)))
    frame = pd.DataFrame(lines)
    for relative in table.relative:
        frame = relative.apply(frame)
    frame = table.finalize(frame)
    label_columns = list(dict.fromkeys(k for row in rows for k in row.labels))
    long = frame[label_columns + [c for c in (table.columns or DEFAULT) if c in frame.columns]]
    visible = pivot_wide(long, *table.pivot) if table.pivot else long
    md = header_lines(table, opts, rows, results, row_cells) + [f"- {line}" for line in table.summary_lines(rows, lines)]
    if VERDICT in frame.columns:
        md.insert(md.index(next(l for l in md if l.startswith("- Seeds:"))) + 1, verdict_line(frame[VERDICT]))
    md += ["", visible.to_markdown(index=False, disable_numparse=True)]
    notes = table.notes(opts) + table.cell_notes(rows, row_cells)
    if notes:
        md += ["", "Notes:"] + [f"- {n}" for n in notes]
    upstream = upstream_keys(row_cells, results)
    return Rendering(frame, label_columns, long, md, rows, results, store.records(upstream), upstream)


def render(table: Table, opts: TableOptions, rows: list[TableRow], row_cells: list[list[ResolvedCell]], store: Store,
           out_dir: Path, artifacts: Path | None = None, force: bool = False) -> tuple[Path, Path]:
    """Write `<out>/<table>.md` and `<out>/<table>.csv` for the rows' resolved cells (one per seed) as the
    store holds them now (and copy the cells' figures from `artifacts`), and merge their records into
    `<table>.cells.jsonl`. Nothing is written when that would lose published results (`check_no_loss`)
    unless `force`, which also replaces the records instead of merging them."""
    return write_rendering(table, opts, compute_table(table, opts, rows, row_cells, store), store, out_dir,
                           artifacts, force)


def write_rendering(table: Table, opts: TableOptions, rendering: Rendering, store: Store, out_dir: Path,
                    artifacts: Path | None = None, force: bool = False) -> tuple[Path, Path]:
    """Write a computed table (Markdown, CSV, records, plots) under `out_dir`; see `render`."""
    frame, md, records = rendering.frame, list(rendering.markdown), rendering.records
    published = records_path(out_dir, table.name)
    old_records = published_records(published)
    if not force:
        check_no_loss(out_dir, table.name, opts.profile, frame, records, old_records)
        records = merge_records(old_records, records)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = copy_figures(table, rendering.upstream, store, artifacts, out_dir) if artifacts is not None else []
    if figures:
        md += ["", "Figures (drawn by the cells above or their upstream stages):"]
        md += [f"- [{f.name}]({f.name})" for f in sorted(figures)]
    md_path, csv_path = out_dir / f"{table.name}.md", out_dir / f"{table.name}.csv"
    md_path.write_text("\n".join(md) + "\n")
    frame.drop(columns=["_top1_values"]).rename(columns=lambda c: c.lstrip("_")).to_csv(csv_path, index=False)
    write_records(published, records)
    from suite.plots import plot_table

    title = f"{table.title}, profile {opts.profile}"
    label_columns = rendering.label_columns
    plot_table(frame, label_columns, title, out_dir / table.name, params_plot=not table.one_architecture)
    if table.one_architecture:
        from suite.plots import plot_intervals

        plot_intervals(frame, label_columns, title, out_dir / table.name)
    if table.training_curves:
        from suite.plots import plot_training_curves
        from suite.tracking import main_history

        curves = {" / ".join(str(v) for v in row.labels.values()):
                  [main_history(r["metrics"]) for r in rs if r and r["status"] == "done"]
                  for row, rs in zip(rendering.rows, rendering.results)}
        plot_training_curves(curves, title, out_dir / f"{table.name}_training_curves.png")
    table.plot(frame, opts, out_dir)
    write_index(out_dir.parent)
    return md_path, csv_path


def chart_name(stem: str) -> str:
    """What the index calls a table's chart: `latency` / `params` (top-1 against them), `intervals`, `budget`."""
    if "_accuracy_vs_" in stem:
        return stem.split("_accuracy_vs_")[-1]
    return "Δ vs budget" if stem.endswith("_delta_vs_budget") else "intervals"


def write_index(root: Path) -> Path:
    """`<root>/README.md`: every rendered table under `<root>/<profile>/`, with its profile and date."""
    entries = []
    for md in sorted(p for p in root.glob("*/*.md") if p.parent.name != "smoke"):  # smoke tables are never published
        lines = md.read_text().splitlines()
        title = lines[0].lstrip("# ") if lines else md.stem
        rendered = next((l.split("rendered ")[-1] for l in lines if "rendered " in l), "?")
        charts = (sorted(md.parent.glob(f"{md.stem}_accuracy_vs_*.png")) + sorted(md.parent.glob(f"{md.stem}_top1_intervals.png"))
                  + sorted(md.parent.glob(f"{md.stem}_delta_vs_budget.png")))
        plots = " ".join(f"[{chart_name(p.stem)}]({p.relative_to(root).as_posix()})" for p in charts)
        entries.append(f"| [{title}]({md.relative_to(root).as_posix()}) | `{md.parent.name}` | {rendered} | {plots or '—'} |")
    index = root / "README.md"
    index.write_text("# Published results\n\nEvery table here was produced by `python run_all.py --table NAME --profile "
                     "PROFILE` (see each table's header for its settings); nothing is typed by hand.\n\n"
                     "| table | profile | rendered | plots (top-1 vs) |\n|---|---|---|---|\n" + "\n".join(entries) + "\n")
    return index
