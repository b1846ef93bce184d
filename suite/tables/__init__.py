"""Tables are declared in code: which cells fill which rows, and which reported figures sit beside them.

A table module defines a `Table` subclass and registers it; every module in this package is imported
by `discover_tables`, so adding a file is enough to add a table.
"""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points
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
    methods: str | None = None  # --methods: rows added, removed or chosen (see select_methods)

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
    family: ClassVar[str | None] = None  # a family table shows every registered method of this family
    methods_are_rows: ClassVar[bool] = False  # True: --methods is the table's row list (compare), not a change
    relative: ClassVar[list["Relative"]] = []  # columns computed against each group's reference row
    # rows share one architecture (a parameter axis says nothing): a dot-and-interval chart of top-1 instead
    one_architecture: ClassVar[bool] = False
    flags: ClassVar[dict[str, str]] = {}  # its own command-line flags: "slo-ms" -> help; --slo-ms V is --opt slo_ms=V
    # under --budgets, the roles (of rows and of dependencies) that keep their own recipe: the models a row starts
    # from, trained once. kd: its teacher. pruning: the baseline it prunes (a budget is then a fine-tuning budget)
    budget_keeps: ClassVar[tuple[str, ...]] = ("teacher",)
    training_curves: ClassVar[bool] = False  # draw <table>_training_curves.png: train loss / accuracy per epoch, mean ± std over seeds

    def finalize(self, frame: "pd.DataFrame") -> "pd.DataFrame":
        """Add derived columns beyond the declared `relative` ones (e.g. whether a latency target is met)."""
        return frame

    def rows(self, opts: TableOptions) -> list[TableRow]:
        raise NotImplementedError

    def method_rows(self, opts: TableOptions, method: str, params: dict[str, Any]) -> list[TableRow]:
        """The row(s) `method` with `params` gets in this table (family tables; `--methods +NAME`)."""
        raise ValueError(f"table {self.name!r} has a fixed set of rows: use --table compare --methods ... to put "
                         f"{method!r} beside others")

    def family_rows(self, opts: TableOptions, shown: set[str], first: tuple[str, ...] = ()) -> list[TableRow]:
        """A row (default params) for every registered member of the table's family not in `shown`."""
        from suite.plugins import family_members

        return [row for name in family_members(self.family, first) if name not in shown
                for row in self.method_rows(opts, name, {})] if self.family else []

    def check_options(self, opts: TableOptions) -> None:
        unknown = set(opts.extra) - self.options
        if unknown:
            raise ValueError(f"table {self.name!r} has no option {', '.join(sorted(unknown))}; "
                             f"valid: {', '.join(sorted(self.options)) or 'none'}")

    def notes(self, opts: TableOptions) -> list[str]:
        return []

    def cell_notes(self, rows: list[TableRow], row_cells: list[list[Any]]) -> list[str]:
        """Notes read from the rows' resolved cells (suite.plan.ResolvedCell, one per seed): their recipes and
        profiles as planned, never looked up again."""
        return []

    def cell_columns(self, row: TableRow, metrics: dict[str, Any], lookup: Callable[..., dict[str, Any]]) -> dict[str, str]:
        """Columns read from a row's stored metrics (its first finished seed); `lookup(*roles)` returns the metrics
        of the dependency the plan reaches by those roles (e.g. `lookup("autoencoder", "targets")`: an upstream
        stage's chosen k), {} where there is none."""
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
        for ep in entry_points(group="suite.tables"):  # tables shipped by other packages
            cls = ep.load()
            if cls.name not in TABLES:
                register_table(cls)
        _discovered = True
    return TABLES


def get_table(name: str) -> Table:
    return discover_tables().get(name)()


def seed_specs(rows: list[TableRow], seeds: int) -> list[CellSpec]:
    return [row.spec.with_(seed=s) for row in rows if row.spec is not None
            for s in range(1 if row.single_seed else seeds)]


def method_label(name: str, params: dict[str, Any] | None = None) -> str:
    """A method's row label: its display name, and the params set on the command line."""
    from suite.plugins import display_name

    return display_name(name) + (f" [{'; '.join(f'{k}={v}' for k, v in params.items())}]" if params else "")


@dataclass(frozen=True)
class MethodChoice:
    op: str  # "+" add, "-" remove, "=" part of a replacement list
    name: str
    params: dict[str, Any] | None  # None: the method's rows as the table has them (or its defaults)


def _value(text: str) -> Any:
    """`key=value` values: int, float, true/false, else the string."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_methods(text: str) -> list[MethodChoice]:
    """`+NAME[,+NAME...]` adds, `-NAME` removes, `NAME,NAME` replaces; `NAME[key=value;...]` sets params."""
    import re

    items, depth, current = [], 0, ""
    for ch in text:  # split on commas outside brackets
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += ch
    items.append(current)
    choices = []
    for item in (i.strip() for i in items):
        m = re.fullmatch(r"([+-]?)([A-Za-z_][\w:.-]*)(?:\[([^\[\]]*)\])?", item)
        if not m:
            raise ValueError(f"--methods: cannot read {item!r}; use NAME, +NAME, -NAME or NAME[key=value;...]")
        params = None
        if m.group(3) is not None:
            pairs = [p.partition("=") for p in m.group(3).split(";") if p.strip()]
            if any(not sep or not k.strip() for k, sep, _ in pairs):
                raise ValueError(f"--methods: parameters of {m.group(2)!r} take key=value;key=value, got {m.group(3)!r}")
            params = {k.strip(): _value(v.strip()) for k, _, v in pairs}
        if m.group(1) == "-" and params is not None:
            raise ValueError(f"--methods: -{m.group(2)} removes rows and takes no parameters")
        choices.append(MethodChoice(m.group(1) or "=", m.group(2), params))
    if len({c.op == "=" for c in choices}) > 1:
        raise ValueError("--methods: either replace the list (NAME,NAME) or change it (+NAME,-NAME), not both")
    return choices


def check_choice(table: Table, choice: MethodChoice) -> MethodChoice:
    """One line, before anything trains: an unknown method, one of another family, or bad parameters. Returns
    the choice with its values in the types of the method's defaults (2 -> 2.0 for a float), so the same
    setting always makes the same cell key."""
    import dataclasses

    from suite.plugins import get_method

    method = get_method(choice.name)
    if table.family and method.family != table.family and choice.op != "-":
        kind = f"a {method.family} method" if method.family else "an internal stage"
        raise ValueError(f"--methods: {choice.name!r} is {kind}; table {table.name!r} shows {table.family} methods")
    if not choice.params:
        return choice
    method.make_params(choice.params)  # unknown names, wrong types and bad values fail here, in one line
    return dataclasses.replace(choice, params=method.typed_overrides(choice.params))


def select_methods(table: Table, opts: TableOptions, rows: list[TableRow]) -> list[TableRow]:
    """The table's rows after `--methods`: rows with a role (reference, teacher) always stay."""
    if not opts.methods or table.methods_are_rows:
        return rows
    from suite.plugins import get_method

    choices = [check_choice(table, c) for c in parse_methods(opts.methods)]

    def of(name: str, params: dict[str, Any] | None = None) -> list[TableRow]:
        """The table's rows of method `name` (with `params`: those whose resolved params equal them)."""
        wanted = get_method(name).make_params(params) if params is not None else None
        return [r for r in rows if r.spec is not None and r.spec.method == name and not r.role
                and (wanted is None or get_method(name).make_params(r.spec.params_dict) == wanted)]

    if choices[0].op == "=":  # keep the named rows (a table's own, e.g. pruning's 4x global magnitude) or make them
        named, made = set(), []
        for c in choices:
            own = of(c.name, c.params)
            named.update(id(r) for r in own)
            made += [] if own else table.method_rows(opts, c.name, c.params or {})
        return [r for r in rows if r.role or id(r) in named] + made  # a table's own rows in its order
    for c in choices:
        if c.op == "-":
            if not of(c.name):
                raise ValueError(f"--methods: table {table.name!r} has no {c.name!r} row to remove")
            rows = [r for r in rows if r not in of(c.name)]
        else:
            rows = rows + table.method_rows(opts, c.name, c.params or {})
    return rows
