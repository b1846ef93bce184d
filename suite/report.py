"""Render a table's stored results as Markdown (pandas + tabulate) and CSV, with a header that says
how every figure was made: profile and recipes, seeds, device, datasets (fingerprint, canonical or
not), software versions, date and commit. Reproduced and reported figures are separate columns."""
from __future__ import annotations

import datetime as dt
import json
import math
import shutil
import statistics
from pathlib import Path
from typing import Any

import pandas as pd

from suite.data import DATASETS
from suite.profiles import PROFILES, dataset_family
from suite.store import Store
from suite.tables import Table, TableOptions, TableRow


def fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:,.{digits}f}"


def mean_std(values: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def fmt_duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def training_cost(store: Store, key: str, seen: set[str] | None = None) -> tuple[int, float]:
    """Epochs and seconds of a cell plus everything it depended on (a teacher, a baseline), each counted once."""
    seen = set() if seen is None else seen
    if key in seen:
        return 0, 0.0
    seen.add(key)
    row = store.get(key)
    metrics = (row or {}).get("metrics") or {}
    epochs, seconds = metrics.get("epochs_trained", 0), metrics.get("train_seconds", 0.0)
    for dep_key in (metrics.get("deps") or {}).values():
        e, s = training_cost(store, dep_key, seen)
        epochs, seconds = epochs + e, seconds + s
    return epochs, seconds


DEFAULT_COLUMNS = ["Params", "Size (MB)", "FLOPs (M)", "Latency b1 ms (p90)", "Throughput (img/s)", "Energy (mJ)",
                   "Top-1 % (ours)", "n", "Top-1 % (reported)", "Δ vs reported", "Train cost"]
ROBUST_LABELS = {"gaussian_noise_0.3": "Top-1 % noise σ=0.3", "salt_pepper_10pct": "Top-1 % salt & pepper 10 %"}


def summarize_row(row: TableRow, results: list[dict | None], store: Store) -> dict[str, Any]:
    """Every column a table may show: cost figures from the first finished seed, accuracies as mean ± std
    over seeds. Keys starting with "_" hold raw numbers for the CSV and for derived columns."""
    done = [r for r in results if r and r["status"] == "done"]
    failed = [r for r in results if r and r["status"] == "failed"]
    out: dict[str, Any] = dict(row.labels)
    m = done[0]["metrics"] if done else {}
    blank = "" if not m else "n/a"
    out["Params"] = f"{m['params']:,}" if m else ""
    out["Non-zero params"] = f"{m['nonzero_params']:,}" if m else ""
    out["Size (MB)"] = fmt(m["size_bytes"] / 1e6, 3) if m else ""
    out["Size (KB)"] = fmt(m["size_bytes"] / 1e3, 1) if m else ""
    out["Size format"] = m.get("size_format", "") if m else ""
    out["FLOPs (M)"] = fmt(m["flops"] / 1e6, 1) if m.get("flops") is not None else blank
    out["Latency b1 ms (p90)"] = f"{fmt(m['latency_ms'], 3)} ({fmt(m['latency_p90_ms'], 3)})" if m else ""
    out["Test-set time (s)"] = fmt(m["test_set_seconds"], 3) if m.get("test_set_seconds") is not None else blank
    out["Throughput (img/s)"] = fmt(m["throughput_img_s"], 0) if m else ""
    out["Energy (mJ)"] = fmt(m["energy_mj"], 3) if m.get("energy_mj") is not None else blank
    for key, column in ROBUST_LABELS.items():
        vals = [r["metrics"].get("robust_top1", {}).get(key) for r in done]
        vals = [v for v in vals if v is not None]
        out[column] = f"{statistics.fmean(vals):.2f}" if vals else blank
    mean = std = None
    if row.spec is None:
        out["Top-1 % (ours)"], out["n"] = row.not_run or "pending (plugin not available yet)", 0
    elif done:
        mean, std = mean_std([r["metrics"]["top1"] for r in done])
        out["Top-1 % (ours)"] = f"{mean:.2f} ± {std:.2f}" if std is not None else f"{mean:.2f}"
        out["n"] = len(done)
    elif failed:
        out["Top-1 % (ours)"], out["n"] = f"failed: {failed[0]['error']}", 0
    else:
        out["Top-1 % (ours)"], out["n"] = "pending", 0
    ref = row.reported[0] if row.reported else None
    out["Top-1 % (reported)"] = "; ".join(f"{r.value:.2f} [{r.source}]" for r in row.reported) or "—"
    out["Δ vs reported"] = f"{mean - ref.value:+.2f}" if mean is not None and ref else "—"
    if done:
        costs = [training_cost(store, r["key"]) for r in done]
        out["Train cost"] = f"{costs[0][0]} ep, {fmt_duration(statistics.fmean(c[1] for c in costs))}"
    else:
        out["Train cost"] = ""
    out["_top1_mean"], out["_top1_std"] = mean, std
    out["_reported"] = ref.value if ref else None
    out["_latency_ms"] = m.get("latency_ms")
    out["_latency_p90_ms"] = m.get("latency_p90_ms")
    out["_test_set_seconds"] = m.get("test_set_seconds")
    out["_size_bytes"] = m.get("size_bytes")
    out["_params"] = m.get("params")
    out["_nonzero_params"] = m.get("nonzero_params")
    out["_keys"] = " ".join(r["key"] for r in results if r)
    out.update(row.extra)
    return out


PIVOT_VALUES = ["Top-1 % (ours)", "n", "Top-1 % (reported)", "Δ vs reported", "Train cost"]


def pivot_wide(frame: pd.DataFrame, row_label: str, column_label: str) -> pd.DataFrame:
    """One line per `row_label`, and for each `column_label` value a group of result columns."""
    values = [c for c in PIVOT_VALUES if c in frame.columns]
    wide = frame.pivot(index=row_label, columns=column_label, values=values)
    groups = list(dict.fromkeys(frame[column_label]))
    wide = wide.reindex(index=list(dict.fromkeys(frame[row_label])))
    wide.columns = [f"{group}: {value}" for value, group in wide.columns]
    ordered = [f"{g}: {v}" for g in groups for v in values]
    return wide[ordered].fillna("").reset_index()


def header_lines(table: Table, opts: TableOptions, rows: list[TableRow], results: list[list[dict | None]]) -> list[str]:
    profile = PROFILES.get(opts.profile)
    rows = [r for r in rows if r.spec is not None]
    datasets = list(dict.fromkeys(r.spec.dataset for r in rows))
    recipes = []
    for fam in dict.fromkeys(dataset_family(DATASETS.get(d).in_chans) for d in datasets):
        protocols = dict.fromkeys(r.spec.protocol for r in rows)
        for proto in protocols:
            recipes.append(f"{fam}-like ({proto}): {profile.recipe(fam, proto).describe()}")
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
        data_lines.append(f"{d}: fingerprint {m['data_fingerprint']}, {canon}; train {m['train_size']}, test {m['test_size']} images")
    devices = sorted({e["device"] for e in envs}) or ["not run"]
    versions = sorted({f"torch {e['torch']}, timm {e['timm']}, Python {e['python']}" for e in envs})
    commits = sorted({e["commit"] for e in envs})
    numerics = sorted({e["numerics"] for e in envs})
    remeasured = sorted({f"{m['date'][:10]} (commit {m['commit']}, {m['device']})"
                         for r in done if (m := r["metrics"].get("remeasured"))})
    lines = [
        f"# {table.title} (`{table.name}`)",
        "",
        table.description,
        "",
        f"- Profile: `{opts.profile}` ({profile.description}); recipes: " + "; ".join(recipes),
        f"- Seeds: {opts.seeds} (0..{opts.seeds - 1}); Top-1 is the final-epoch test accuracy, mean ± sample std over seeds "
        "(no checkpoint is selected on the test set)",
        f"- Device: {', '.join(devices)}; numerics: {', '.join(numerics) or 'n/a'}",
        f"- Data: " + " | ".join(data_lines),
        f"- Software: {'; '.join(versions) or 'n/a'}; commit {', '.join(commits) or 'n/a'}; rendered {dt.date.today().isoformat()}",
        "- Latency: batch 1, median (p90) of 100 timed runs after 10 warm-up runs; size: bytes of the saved state dict "
        "(MB = 10^6 bytes); FLOPs: forward pass of one image (a multiply-add counts 2)",
        "- Energy: measured only with a readable meter (NVML on GPU, RAPL on CPU); n/a means no meter, never an estimate",
        "- Reported: figures printed in the papers (source in brackets, from suite/reference/paper_figures.csv), "
        "not reproduced here",
    ]
    if remeasured:
        lines.append(f"- Re-measured with `--remeasure` (accuracy, latency, size, throughput of the saved models; training "
                     f"untouched): {'; '.join(remeasured)}")
    return lines


def stored_metrics(store: Store, key: str) -> dict[str, Any]:
    return (store.get(key) or {}).get("metrics") or {}


def upstream_keys(results: list[list[dict | None]], store: Store) -> list[str]:
    """The finished cells of the rows and, recursively, every cell they depended on (first seen first)."""
    seen: dict[str, None] = {}

    def visit(key: str) -> None:
        if key not in seen:
            seen[key] = None
            for dep in (stored_metrics(store, key).get("deps") or {}).values():
                visit(dep)

    for rs in results:
        for r in rs:
            if r and r["status"] == "done":
                visit(r["key"])
    return list(seen)


def copy_figures(table: Table, results: list[list[dict | None]], store: Store, artifacts: Path, out_dir: Path) -> list[Path]:
    """Copy the figures that the rows' cells and their upstream stages drew (recorded as metrics["figures"],
    files in each cell's artifact folder) next to the table, as `<table>_<figure>.png`. A figure whose cell
    has no artifacts here (a table re-rendered from its published records) keeps its published copy."""
    copied: dict[str, Path] = {}
    for key in upstream_keys(results, store):
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


def write_records(path: Path, results: list[list[dict | None]], store: Store) -> None:
    """Publish the store rows behind a table (its cells and their dependencies: spec, metrics, environment),
    one JSON object a line, so the table can be re-rendered, and audited, without the store."""
    lines = [json.dumps(r, sort_keys=True) for r in store.records(upstream_keys(results, store))]
    path.write_text("".join(line + "\n" for line in lines))


def read_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise ValueError(f"no published cell records at {path}: render the table from a store first")
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not JSON lines (line {exc.lineno})") from None


def render(table: Table, opts: TableOptions, rows: list[TableRow], results: list[list[dict | None]], store: Store,
           out_dir: Path, artifacts: Path | None = None) -> tuple[Path, Path]:
    """Write `<out>/<table>.md` and `<out>/<table>.csv` (and copy the cells' figures from `artifacts`)."""
    lines = [summarize_row(row, rs, store) for row, rs in zip(rows, results)]
    for row, rs, line in zip(rows, results, lines):
        done = [r for r in rs if r and r["status"] == "done"]
        if done:
            line.update(table.cell_columns(row, done[0]["metrics"], lambda key: stored_metrics(store, key)))
    frame = table.finalize(pd.DataFrame(lines))
    label_columns = list(dict.fromkeys(k for row in rows for k in row.labels))
    visible = frame[label_columns + [c for c in (table.columns or DEFAULT_COLUMNS) if c in frame.columns]]
    if table.pivot:
        visible = pivot_wide(visible, *table.pivot)
    md = header_lines(table, opts, rows, results) + [f"- {line}" for line in table.summary_lines(rows, lines)]
    md += ["", visible.to_markdown(index=False, disable_numparse=True)]
    notes = table.notes(opts)
    if notes:
        md += ["", "Notes:"] + [f"- {n}" for n in notes]
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = copy_figures(table, results, store, artifacts, out_dir) if artifacts is not None else []
    if figures:
        md += ["", "Figures (drawn by the cells above or their upstream stages):"]
        md += [f"- [{f.name}]({f.name})" for f in sorted(figures)]
    md_path, csv_path = out_dir / f"{table.name}.md", out_dir / f"{table.name}.csv"
    md_path.write_text("\n".join(md) + "\n")
    frame.rename(columns=lambda c: c.lstrip("_")).to_csv(csv_path, index=False)
    write_records(records_path(out_dir, table.name), results, store)
    from suite.plots import plot_table

    plot_table(frame, label_columns, f"{table.title}, profile {opts.profile}", out_dir / table.name)
    table.plot(frame, opts, out_dir)
    write_index(out_dir.parent)
    return md_path, csv_path


def write_index(root: Path) -> Path:
    """`<root>/README.md`: every rendered table under `<root>/<profile>/`, with its profile and date."""
    entries = []
    for md in sorted(root.glob("*/*.md")):
        lines = md.read_text().splitlines()
        title = lines[0].lstrip("# ") if lines else md.stem
        rendered = next((l.split("rendered ")[-1] for l in lines if "rendered " in l), "?")
        plots = " ".join(f"[{p.stem.split('_accuracy_vs_')[-1]}]({p.relative_to(root).as_posix()})"
                         for p in sorted(md.parent.glob(f"{md.stem}_accuracy_vs_*.png")))
        entries.append(f"| [{title}]({md.relative_to(root).as_posix()}) | `{md.parent.name}` | {rendered} | {plots or '—'} |")
    index = root / "README.md"
    index.write_text("# Published results\n\nEvery table here was produced by `python run_all.py --table NAME --profile "
                     "PROFILE` (see each table's header for its settings); nothing is typed by hand.\n\n"
                     "| table | profile | rendered | plots (top-1 vs) |\n|---|---|---|---|\n" + "\n".join(entries) + "\n")
    return index
