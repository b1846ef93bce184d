"""Tables are declared in code: which cells fill which rows, and which reported figures sit beside them.

A table module defines a `Table` subclass and registers it; every module in this package is imported
by `discover_tables`, so adding a file is enough to add a table.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

if TYPE_CHECKING:
    import pandas as pd

from suite.columns import Relative
from suite.reference import Reported
from suite.registry import Registry
from suite.spec import CellSpec


@dataclass(frozen=True)
class TableOptions:
    profile: str = "cpu"
    seeds: int = 1
    dataset: str | None = None  # run the table on another dataset of the same kind (e.g. cifar10 for cifar100)
    extra: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.seeds < 1:
            raise ValueError(f"--seeds must be at least 1, got {self.seeds}")


@dataclass
class TableRow:
    labels: dict[str, str]  # the row's leading columns, e.g. {"Dataset": "MNIST", "Model": "LeNet-5"}
    spec: CellSpec | None  # seed 0; the runner repeats it for every seed; None = pending (plugin not available yet)
    reported: list[Reported] = field(default_factory=list)  # reported top-1 figures, first one is compared
    extra: dict[str, str] = field(default_factory=dict)  # further pre-formatted columns (e.g. other reported figures)
    not_run: str = ""  # with spec None: why this row is never run here (e.g. another system, reported figures only)
    single_seed: bool = False  # run at seed 0 only (a teacher shared by every seed of its students)
    role: str = ""  # what the row is to the others: "reference" (what relative columns compare with), "teacher", ...


class Table:
    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    description: ClassVar[str] = ""
    # Wide layout: (row label, column label) -> one line per row label, one column group per column label.
    pivot: ClassVar[tuple[str, str] | None] = None
    options: ClassVar[frozenset[str]] = frozenset()  # the `--opt KEY=VALUE` keys this table understands
    options_help: ClassVar[str] = ""
    columns: ClassVar[list[str] | None] = None  # result columns to show, in order (None: suite.columns.DEFAULT)
    relative: ClassVar[list["Relative"]] = []  # columns computed against each group's reference row

    def finalize(self, frame: "pd.DataFrame") -> "pd.DataFrame":
        """Add derived columns beyond the declared `relative` ones (e.g. whether a latency target is met)."""
        return frame

    def rows(self, opts: TableOptions) -> list[TableRow]:
        raise NotImplementedError

    def check_options(self, opts: TableOptions) -> None:
        unknown = set(opts.extra) - self.options
        if unknown:
            raise ValueError(f"table {self.name!r} has no option {', '.join(sorted(unknown))}; "
                             f"valid: {', '.join(sorted(self.options)) or 'none'}")

    def notes(self, opts: TableOptions) -> list[str]:
        return []

    def cell_columns(self, row: TableRow, metrics: dict[str, Any], lookup: Callable[[str], dict[str, Any]]) -> dict[str, str]:
        """Columns read from a row's stored metrics (its first finished seed); `lookup(key)` returns another
        cell's metrics (e.g. an upstream stage's chosen k)."""
        return {}

    def plot(self, frame: "pd.DataFrame", opts: TableOptions, out_dir: Path) -> list[Path]:
        """Table-specific figures written beside the table (beyond the standard accuracy plots)."""
        return []

    def summary_lines(self, rows: list[TableRow], lines: list[dict[str, Any]]) -> list[str]:
        """Extra header lines computed from the rendered rows (e.g. a KD table's teacher accuracies)."""
        return []


TABLES: Registry[type[Table]] = Registry("table")


def register_table(cls: type[Table]) -> type[Table]:
    return TABLES.register(cls.name, cls)


_discovered = False


def discover_tables() -> Registry[type[Table]]:
    global _discovered
    if not _discovered:
        for info in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{info.name}")
        _discovered = True
    return TABLES


def get_table(name: str) -> Table:
    return discover_tables().get(name)()


def seed_specs(rows: list[TableRow], seeds: int) -> list[CellSpec]:
    return [row.spec.with_(seed=s) for row in rows if row.spec is not None
            for s in range(1 if row.single_seed else seeds)]
