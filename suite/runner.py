"""A run session: one planner, one store, one executing configuration (what the CLI and tests hold).

Planning is `suite.plan`, running one cell `suite.execute`, scheduling `suite.scheduler`; this class
only wires them together for one set of command-line choices.
"""
from __future__ import annotations

import copy
import dataclasses

from pathlib import Path
from typing import Callable

from torch import nn

from suite.execute import ExecConfig, dependency, remeasure_cell, resolve_device
from suite.numerics import DEFAULT_PRECISION, resolve_precision
from suite.plan import Planner, PlanOptions, ResolvedCell
from suite.scheduler import Executor, RunSummary, Scheduler
from suite.spec import CellSpec
from suite.store import Store

__all__ = ["Runner", "RunSummary", "ResolvedCell"]


class Runner:
    def __init__(self, store: Store, artifacts: Path, data_dir: Path | None = None, device: str = "auto",
                 progress: bool = True, force: bool = False, log: Callable[[str], None] = print,
                 precision: str = DEFAULT_PRECISION, epochs: int | None = None, only: str | None = None,
                 threads: int | None = None, retries: int = 1, budget: str | None = None) -> None:
        self.store, self.artifacts, self.data_dir, self.log = store, Path(artifacts), data_dir, log
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.planner = Planner(data_dir, PlanOptions(epochs=epochs, precision=self.precision, force=force, only=only,
                                                     budget=budget))
        self.config = ExecConfig(self.artifacts, data_dir, self.device.type, threads, progress)
        self.scheduler = Scheduler(store, self.config, log, retries)

    def at_budget(self, budget: str | None, keeps: tuple[str, ...] = ("teacher",)) -> "Runner":
        """This runner (same store, artifacts, device, precision) planning every cell at another training budget,
        the rows and dependencies of the roles in `keeps` at their own recipe (suite.budgets.kept_roles)."""
        other = copy.copy(self)
        other.planner = Planner(self.data_dir, dataclasses.replace(self.planner.options, budget=budget,
                                                                   budget_keeps=tuple(keeps)))
        return other

    @property
    def force(self) -> bool:
        return self.planner.options.force

    def resolve(self, spec: CellSpec) -> ResolvedCell:
        return self.planner.resolve(spec)

    def plan(self, specs: list[CellSpec]) -> list[ResolvedCell]:
        return self.planner.plan(specs)

    def run(self, cells: list[ResolvedCell], executor: Executor | None = None,
            after_each: Callable[[], None] | None = None) -> RunSummary:
        return self.scheduler.run(cells, executor, after_each)

    def load_model(self, cell: ResolvedCell) -> nn.Module:
        """A finished cell's saved model, on the CPU."""
        return dependency(cell, self.config, {}).load_model()

    def remeasure(self, cell: ResolvedCell, pass_started: str | None = None) -> str | None:
        """Evaluate and measure a finished cell's saved model again (or re-time its architecture where the model is
        not here: suite.execute.remeasure_cell), keeping its training figures; returns
        why it could not, or None. Nothing is trained. `pass_started`: when the pass this cell belongs to began."""
        row = self.store.get(cell.key)
        if not row or row["status"] != "done":
            return "not finished"
        try:
            metrics, env = remeasure_cell(cell, self.config, row, self.scheduler.dep_metrics(cell), pass_started)
        except (ValueError, RuntimeError) as exc:
            return str(exc)
        self.scheduler.store_remeasured(cell.key, metrics, env)
        return None
