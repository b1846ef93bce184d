"""Published cell records (`<table>.cells.jsonl`: store rows, one JSON object a line) that travel between
machines: read them, and import into a store only the finished cells whose key the current code and data
recompute exactly (a record made by other code, recipe or data is stale and never imported; a cell the
store already holds is never overwritten)."""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from suite.plan import Planner, PlanOptions, ResolvedCell
from suite.spec import CellSpec
from suite.store import Store

PRECISION_OF_NUMERICS = {"fp32": "fp32", "bf16 autocast + channels_last": "bf16"}


def read_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise ValueError(f"no published cell records at {path}: render the table from a store first")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not JSON lines: line {number}: {exc.msg} (column {exc.colno})") from None
        if not isinstance(record, dict) or "key" not in record:
            raise ValueError(f"{path}: line {number} is JSON but not a cell record (no \"key\")")
        records.append(record)
    return records


def published_records(path: Path) -> list[dict[str, Any]]:
    """The records published at `path`, or none where nothing is published yet."""
    return read_records(path) if path.exists() else []


def spec_of(record: dict[str, Any]) -> CellSpec:
    s = record["spec"]
    return CellSpec.make(s["method"], s["model"], s["dataset"], s["profile"], s.get("seed", 0), params=s.get("params"),
                         model_kwargs=s.get("model_kwargs"), protocol=s.get("protocol", "default"),
                         recipe_overrides=s.get("recipe_overrides"))


def precision_of(record: dict[str, Any]) -> str:
    """The precision a record's cell trained in (older records say it only in their environment)."""
    metrics, env = record.get("metrics") or {}, record.get("env") or {}
    return metrics.get("precision") or PRECISION_OF_NUMERICS.get(env.get("numerics", "fp32"), "fp32")


def records_precision(records: list[dict[str, Any]], asked: str, table: str) -> str | None:
    """The precision to plan a render from `records` with: theirs, whatever this machine would pick for new
    training (`asked` = "auto"); None when there is no finished record to go by. An explicit `asked` that none
    of them carries is one line naming the ones they do."""
    counts: dict[str, int] = {}
    for r in records:
        if r.get("status") == "done":
            counts[precision_of(r)] = counts.get(precision_of(r), 0) + 1
    if not counts:
        return None if asked == "auto" else asked
    if asked != "auto":
        if asked not in counts:
            raise ValueError(f"{table}: its published records were made in {' and '.join(sorted(counts))}, none in "
                             f"{asked}: leave --precision out (--from-records plans with the records' precision)")
        return asked
    return max(sorted(counts), key=counts.get)  # one precision per table; the most common if ever mixed


def records_seeds(records: list[dict[str, Any]]) -> int:
    """How many seeds the finished records hold (highest seed + 1)."""
    return 1 + max([(r.get("spec") or {}).get("seed", 0) for r in records if r.get("status") == "done"] or [0])


def merge_records(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`new` (in its order, each key once: a cell shared by several budgets' tables comes once), then every record
    of `old` whose key `new` lacks: a records file only grows."""
    unique, keys = [], set()
    for record in new:
        if record["key"] not in keys:
            unique.append(record)
            keys.add(record["key"])
    return unique + [r for r in old if r["key"] not in keys]


@dataclass
class ImportReport:
    imported: int = 0
    already: int = 0  # the store holds the key already: left as it is
    stale: dict[str, str] = field(default_factory=dict)  # key -> why its key does not match the current code/data
    not_finished: int = 0

    def line(self, path: Path) -> str:
        why = ""
        if self.stale:
            reasons = sorted(set(self.stale.values()))
            why = f" ({'; '.join(reasons[:3])}{'; …' if len(reasons) > 3 else ''})"
        return (f"{path}: imported {self.imported}, already in the store {self.already}, stale {len(self.stale)}"
                f"{why}, not finished {self.not_finished}")


def budget_keep_sets() -> list[tuple[str, ...]]:
    """The roles a `--budgets` campaign may have kept at their own recipe: every table's `budget_keeps`, with and
    without --budget-teacher."""
    from suite.budgets import kept_roles
    from suite.tables import discover_tables

    tables = discover_tables()
    keeps = [tables.get(name).budget_keeps for name in tables.names()]
    return sorted({kept_roles(k, teacher) for k in keeps for teacher in (False, True)})


def import_records(store: Store, records: list[dict[str, Any]], data_dir: Path | None,
                   add: Callable[[list[dict[str, Any]]], int] | None = None) -> ImportReport:
    """Add (through `add`: the run's Scheduler.add_records, the store's one writer) the finished records whose key
    this code and data recompute; count the others."""
    report = ImportReport()
    planners: dict[tuple[str, tuple[str, ...]], Planner] = {}

    def planner(precision: str, keeps: tuple[str, ...] = PlanOptions.budget_keeps) -> Planner:
        if (precision, keeps) not in planners:
            planners[precision, keeps] = Planner(data_dir, PlanOptions(precision=precision, budget_keeps=keeps))
        return planners[precision, keeps]

    matching, keep_sets = [], None
    for record in records:
        if record.get("status") != "done":
            report.not_finished += 1
            continue
        try:
            spec, precision = spec_of(record), precision_of(record)
            cell = planner(precision).resolve(spec)
            if cell.key != record["key"] and "budget" in spec.recipe_overrides_dict:
                # a --budgets cell: its dependencies' keys depend on which roles its campaign kept at their recipe
                keep_sets = keep_sets or budget_keep_sets()  # once per import, and only if a budget cell needs it
                cell = next((c for c in (planner(precision, keeps).resolve(spec) for keeps in keep_sets)
                             if c.key == record["key"]), cell)
        except (ValueError, KeyError, TypeError) as exc:  # an unknown method, model, option or parameter
            report.stale[record["key"]] = f"cannot be planned here: {exc}".splitlines()[0]
            continue
        if cell.key != record["key"]:
            reason = f"data {cell.spec.dataset} missing here" if cell.data_fingerprint is None else \
                "key differs (other code, recipe or data)"
            report.stale[record["key"]] = reason
        elif store.get(record["key"]) is not None:
            report.already += 1
        else:
            matching.append(record)
    report.imported = (add or store.add_records)(matching)
    return report


# ----------------------------------------------------------------------------- a campaign's progress between machines
def models_path(records_file: Path) -> Path:
    """`<table>.models/` beside `<table>.cells.jsonl`: the saved models an unfinished campaign still needs."""
    return records_file.with_name(records_file.name.replace(".cells.jsonl", "") + ".models")


CHECKPOINTS = (".ckpt", ".ckpt.bad")  # epoch checkpoints: nothing a finished cell's reader needs
IN_FLIGHT = shutil.ignore_patterns(*(f"*{suffix}" for suffix in CHECKPOINTS))


def complete_copy(source: Path, copy: Path) -> bool:
    """Whether `copy` holds every file of the finished cell's artifacts in `source` (its model, or what else its
    dependents read: an EncodeNet targets file), epoch checkpoints aside."""
    wanted = [p.name for p in source.iterdir() if p.is_file() and not p.name.endswith(CHECKPOINTS)] \
        if source.is_dir() else []
    return bool(wanted) and all((copy / name).exists() for name in wanted)


def needed_models(cells: list[ResolvedCell], store: Store, artifacts: Path,
                  kept_roles: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """Keys of the finished cells whose saved model another machine needs so as not to train them again: those an
    unfinished cell of `cells` (or of their dependencies) loads (a teacher under students still to distil), and
    those in `kept_roles` (`Table.budget_keeps`: what a `--budgets` campaign of the table starts from, the teacher
    or the baseline to fine-tune, at their own recipe) once their dependents are done."""
    seen: dict[str, ResolvedCell] = {}

    def visit(cell: ResolvedCell) -> None:
        if cell.key not in seen:
            seen[cell.key] = cell
            for dep in cell.deps.values():
                visit(dep)

    for cell in cells:
        visit(cell)

    def done(key: str) -> bool:
        row = store.get(key)
        return bool(row) and row["status"] == "done"

    def saved(cell: ResolvedCell) -> bool:
        return done(cell.key) and (artifacts / cell.key / cell.method.saved_file).exists()

    needed = {d.key for c in seen.values() if not done(c.key) for d in c.deps.values() if saved(d)}
    starts = {d.key for c in seen.values() for role, d in c.deps.items() if role in kept_roles and saved(d)}
    return sorted(needed), sorted(starts - needed)


def save_progress(records_file: Path, cells: list[ResolvedCell], store: Store, artifacts: Path,
                  kept_roles: tuple[str, ...] = ()) -> tuple[int, list[str], list[str]]:
    """Merge the finished cells' records (and their dependencies') into `records_file` (it only grows), and keep
    beside it, in `<table>.models/KEY/`, the saved models that unfinished cells still need and those a budget
    campaign starts from (`needed_models`; nothing else: the other models leave the folder as the campaign ends).
    Returns (records written, keys needed, keys kept for budgets). Trains and renders nothing."""
    from suite.report import upstream_keys, write_records

    results = [[store.get(c.key) for c in cells]]
    records = merge_records(published_records(records_file), store.records(upstream_keys([cells], results)))
    records_file.parent.mkdir(parents=True, exist_ok=True)
    write_records(records_file, records)
    needed, starts = needed_models(cells, store, artifacts, kept_roles)
    keep = needed + starts
    folder = models_path(records_file)
    for key in keep:
        if not complete_copy(artifacts / key, folder / key):
            shutil.copytree(artifacts / key, folder / key, ignore=IN_FLIGHT, dirs_exist_ok=True)
    if folder.exists():
        for old in folder.iterdir():
            if old.name not in keep:
                shutil.rmtree(old)
        if not any(folder.iterdir()):
            folder.rmdir()
    return len(records), needed, starts


def restore_models(records_file: Path, store: Store, artifacts: Path) -> int:
    """Copy the models published beside `records_file` into `artifacts` for the finished cells the store holds and
    whose model is not there yet; returns how many (the next run then loads them instead of training again)."""
    folder, restored = models_path(records_file), 0
    if not folder.exists():
        return 0
    for model_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        row = store.get(model_dir.name)
        if row and row["status"] == "done" and not complete_copy(model_dir, artifacts / model_dir.name):
            shutil.copytree(model_dir, artifacts / model_dir.name, dirs_exist_ok=True)
            restored += 1
    return restored
