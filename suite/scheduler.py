"""Schedule resolved cells: each runs once its dependencies are finished, in this process or through an
executor (worker processes, Ray). The scheduler is the only writer of the store: it claims each cell,
records its metrics or its one-line failure, and a failing cell never stops the others (its dependents
fail with a reason)."""
from __future__ import annotations

import dataclasses
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from suite.estimate import remaining_chain_seconds
from suite.execute import ExecConfig, execute_cell
from suite.executors import WorkerDied
from suite.plan import ResolvedCell
from suite.store import Store


@dataclass
class RunSummary:
    done: list[str] = field(default_factory=list)  # trained in this run
    skipped: list[str] = field(default_factory=list)  # already in the store
    failed: dict[str, str] = field(default_factory=dict)  # key -> reason


class Executor(Protocol):
    capacity: int  # cells it runs at once: the scheduler hands it no more (the rest stay unclaimed)

    def submit(self, cell: ResolvedCell, config: ExecConfig, dep_metrics: dict[str, dict[str, Any]]) -> Future:
        """A future of `execute_cell(cell, config, dep_metrics)`: (metrics, environment)."""

    def shutdown(self) -> None:
        ...


def one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


class Scheduler:
    def __init__(self, store: Store, config: ExecConfig, log: Callable[[str], None] = print, retries: int = 1) -> None:
        if retries < 0:
            raise ValueError(f"--retries must be at least 0, got {retries}")
        self.store, self.config, self.log, self.retries = store, config, log, retries
        self._forced: set[str] = set()  # a forced cell is redone once per run, not once per table that holds it

    def dep_metrics(self, cell: ResolvedCell) -> dict[str, dict[str, Any]]:
        """The stored metrics of the cell's direct dependencies (they travel with the cell to a worker)."""
        return {d.key: (self.store.get(d.key) or {}).get("metrics") or {} for d in cell.deps.values()}

    def _blocked(self, cell: ResolvedCell, failed: dict[str, str]) -> str | None:
        """Why a cell cannot run at all (a failed dependency, missing data), or None."""
        failed_dep = next((d for d in cell.deps.values() if d.key in failed), None)
        if failed_dep is not None:
            return f"dependency {failed_dep.label} failed: {failed[failed_dep.key]}"
        if cell.data_fingerprint is None:
            return cell.data_error or "data missing"
        return None

    def _fail(self, cell: ResolvedCell, reason: str, summary: RunSummary, trace: str | None = None) -> None:
        if trace:
            (self.config.artifacts / cell.key).mkdir(parents=True, exist_ok=True)
            (self.config.artifacts / cell.key / "error.txt").write_text(trace)
        self.store.fail(cell.key, cell.spec.as_dict(), reason)
        summary.failed[cell.key] = reason
        self.log(f"FAILED {cell.label}: {reason}")

    def _finish(self, cell: ResolvedCell, outcome: Callable[[], tuple[dict, dict]], summary: RunSummary,
                total: int, after_each: Callable[[], None] | None = None) -> None:
        try:
            metrics, env = outcome()
        except Exception as exc:
            self._fail(cell, one_line(exc), summary, traceback.format_exc())
            return
        self.store.finish(cell.key, metrics, env)
        summary.done.append(cell.key)
        # One line per finished cell: the progress of a long run (worker processes show no epoch bars).
        top1 = f"top-1 {metrics['top1']:.2f} %, " if "top1" in metrics else ""
        finished = len(summary.done) + len(summary.skipped) + len(summary.failed)
        self.log(f"done {cell.label}: {top1}{metrics.get('cell_seconds', 0.0) / 60:.1f} min [{finished}/{total}]")
        if after_each is not None:
            after_each()

    def add_records(self, records: list[dict]) -> int:
        """Finished cells made elsewhere (published records, already matched to this code's keys) into the store;
        returns how many were added. The scheduler is the store's one writer: imports go through it too."""
        return self.store.add_records(records)

    def store_remeasured(self, key: str, metrics: dict, env: dict) -> None:
        """A finished cell's figures measured again (`--remeasure`), its training figures kept by the caller."""
        self.store.finish(key, metrics, env)

    def _retry(self, cell: ResolvedCell, future: Future, attempts: dict[str, int]) -> bool:
        """Whether a cell whose worker died goes again (from its last epoch checkpoint); logs the one line."""
        exc = future.exception()
        if not isinstance(exc, WorkerDied) or attempts.get(cell.key, 0) >= self.retries:
            return False
        attempts[cell.key] = attempts.get(cell.key, 0) + 1
        start = "from its last epoch checkpoint" if list((self.config.artifacts / cell.key).glob("*.ckpt")) \
            else "from the start"
        self.log(f"{exc}; retrying {start} (retry {attempts[cell.key]} of {self.retries})")
        return True

    def _needed_models(self, cells: list[ResolvedCell]) -> set[str]:
        """Keys of the cells whose saved model a cell of this run still to train loads: the dependencies of the
        unfinished (or forced) cells only, so an imported chain that is finished end to end retrains nothing."""
        def to_train(cell: ResolvedCell) -> bool:
            row = self.store.get(cell.key)
            return cell.force or not row or row["status"] != "done"
        return {d.key for c in cells if to_train(c) for d in c.deps.values()}

    def _would_train(self, cell: ResolvedCell, needed: set[str]) -> bool:
        """Whether claiming the cell now would start training it (not finished, forced, or its model missing here)."""
        row = self.store.get(cell.key)
        if not row or row["status"] != "done" or (cell.force and cell.key not in self._forced):
            return True
        return cell.key in needed and not (self.config.artifacts / cell.key).exists()

    def _chain_first(self, cells: list[ResolvedCell], needed: set[str], executor: Executor | None):
        """The order in which ready cells take free workers: the longest estimated chain still to train first (plan
        order among equals); plan order in this process, or where every cell to train has a worker at once."""
        to_train = {c.key for c in cells if self._would_train(c, needed)}
        if executor is None or len(to_train) <= executor.capacity:
            return lambda cell: 0.0
        chain = remaining_chain_seconds(cells, to_train, self.config.device)
        return lambda cell: -chain[cell.key]

    def _ready(self, cell: ResolvedCell, summary: RunSummary) -> bool:
        settled = set(summary.done) | set(summary.skipped) | set(summary.failed)
        return all(d.key in settled for d in cell.deps.values())

    def run(self, cells: list[ResolvedCell], executor: Executor | None = None,
            after_each: Callable[[], None] | None = None) -> RunSummary:
        """Run `cells` (dependency-ordered, as planned) in this process, or through `executor`; `after_each` is
        called once each cell has finished and been stored (a campaign saving its progress as it goes)."""
        summary = RunSummary()
        pending, in_flight, attempts = list(cells), {}, {}
        quiet = dataclasses.replace(self.config, progress=False)  # workers draw no epoch bars
        needed = self._needed_models(cells)
        priority = self._chain_first(cells, needed, executor)
        while pending or in_flight:
            waiting = len(pending)
            for cell in sorted((c for c in pending if self._ready(c, summary)), key=priority):
                reason = self._blocked(cell, summary.failed)
                if reason is not None:
                    pending.remove(cell)
                    self._fail(cell, reason, summary)
                    continue
                if executor is not None and len(in_flight) >= executor.capacity and self._would_train(cell, needed):
                    continue  # every worker busy: a cell is claimed when one is free, so another run may take it
                forced = cell.force and cell.key not in self._forced
                state = self.store.claim(cell.key, cell.spec.as_dict(), force=forced)
                if state == "done" and cell.key in needed and not (self.config.artifacts / cell.key).exists():
                    # finished elsewhere (imported records carry no artifacts) but a dependent needs its model here
                    self.log(f"retraining {cell.label}: its artifacts are not in {self.config.artifacts}")
                    state = self.store.claim(cell.key, cell.spec.as_dict(), force=True)
                if state == "busy":
                    continue  # another live process is training it: look again later
                pending.remove(cell)
                if state == "done":
                    summary.skipped.append(cell.key)
                    self.log(f"cached {cell.label}")
                    continue
                self._forced.add(cell.key)
                if executor is None:
                    self.log(f"training {cell.label}")
                    self._finish(cell, lambda c=cell: execute_cell(c, self.config, self.dep_metrics(c),
                                                                   lambda: self.store.heartbeat(c.key)),
                                 summary, len(cells), after_each)
                else:  # a free worker takes it now
                    self.log(f"training {cell.label} (in a worker)")
                    in_flight[executor.submit(cell, quiet, self.dep_metrics(cell))] = cell
            if in_flight:
                done, _ = wait(list(in_flight), timeout=2, return_when=FIRST_COMPLETED)
                for future in done:
                    cell = in_flight.pop(future)
                    if self._retry(cell, future, attempts):  # the retry resumes: nothing of this run is wiped
                        retry = dataclasses.replace(cell, force=False)
                        in_flight[executor.submit(retry, quiet, self.dep_metrics(cell))] = cell
                        continue
                    self._finish(cell, future.result, summary, len(cells), after_each)
                for cell in in_flight.values():
                    self.store.heartbeat(cell.key)
            elif len(pending) == waiting:
                time.sleep(2)  # only cells held by other processes are left (a pass that settled some goes on at once)
        return summary
