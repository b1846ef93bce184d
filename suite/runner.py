"""Plan cells into a dependency-ordered list and run them through the harness, storing every result.

A cell's key hashes everything that changes its result: the spec, the method's version and resolved
hyperparameters, the resolved recipe, the dataset's fingerprint and the keys of its dependencies.
"""
from __future__ import annotations

import dataclasses
import platform
import random
import shutil
import subprocess
import sys
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from baselines import MODELS
from suite.context import MODEL_FILE, CellContext, Dependency
from suite.data import DATASETS, DataBundle, DataError, load_dataset, stratified_subset
from suite.harness import save_atomic
from suite.measure import measure_model
from suite.numerics import describe, resolve_precision
from suite.plugins import Method, get_method
from suite.profiles import PROFILES, Recipe, dataset_family
from suite.spec import CellSpec, stable_hash
from suite.store import Store


@dataclass
class Cell:
    spec: CellSpec
    key: str
    method: Method
    params: Any
    recipe: Recipe
    deps: dict[str, "Cell"]
    data: DataBundle | None
    data_error: str | None = None

    @property
    def label(self) -> str:
        return self.spec.label()


@dataclass
class RunSummary:
    done: list[str] = field(default_factory=list)  # trained in this run
    skipped: list[str] = field(default_factory=list)  # already in the store
    failed: dict[str, str] = field(default_factory=dict)  # key -> reason


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker process needs to run a cell exactly as the driver would (picklable)."""

    store: str
    artifacts: str
    data_dir: str | None
    device: str
    force: bool
    threads: int
    precision: str = "fp32"


class Executor(Protocol):
    def submit(self, spec: CellSpec, config: WorkerConfig):  # -> concurrent.futures.Future of (metrics, env)
        ...

    def shutdown(self) -> None:
        ...


def execute_spec(spec: CellSpec, config: WorkerConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Worker entry point: resolve `spec` as the driver did and execute it (the driver writes the store)."""
    torch.set_num_threads(config.threads)
    runner = Runner(Store(config.store), Path(config.artifacts), Path(config.data_dir) if config.data_dir else None,
                    config.device, progress=False, force=config.force, log=lambda *_: None, precision=config.precision)
    return runner.execute(runner.resolve(spec))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked, but no CUDA device is visible")
    return torch.device(name)


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True,
                               timeout=5, cwd=Path(__file__).resolve().parent).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# The commit of the code this process imported: taken now, not when a cell finishes hours later (by
# then the checkout may have moved on, and the record would name code that did not run).
CODE_COMMIT = git_commit()


def environment(device: torch.device, precision: str = "fp32") -> dict[str, Any]:
    import timm

    from suite.measure import device_description

    return {"torch": torch.__version__, "timm": timm.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "device": device_description(device), "commit": CODE_COMMIT,
            "numerics": describe(precision)}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Runner:
    def __init__(self, store: Store, artifacts: Path, data_dir: Path | None = None, device: str = "auto",
                 progress: bool = True, force: bool = False, log=print, precision: str = "fp32") -> None:
        self.store, self.artifacts, self.data_dir = store, Path(artifacts), data_dir
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.progress, self.force, self.log = progress, force, log
        self._cells: dict[CellSpec, Cell] = {}
        self._forced: set[str] = set()  # with --force, each cell is redone once per run, not on every visit
        self.force_keys: set[str] | None = None  # with --force --only: just these cells are redone

    # ------------------------------------------------------------------ planning
    def _data(self, name: str) -> tuple[DataBundle | None, str | None]:
        try:
            return load_dataset(name, self.data_dir), None
        except DataError as exc:
            return None, str(exc)

    def resolve(self, spec: CellSpec) -> Cell:
        if spec in self._cells:
            return self._cells[spec]
        method = get_method(spec.method)
        params = method.make_params(spec.params_dict)
        if not spec.model.startswith("timm:"):
            MODELS.get(spec.model)  # an unknown model fails now, before anything trains
        data, error = self._data(spec.dataset)
        profile = PROFILES.get(spec.profile)
        recipe = profile.recipe(dataset_family(DATASETS.get(spec.dataset).in_chans), spec.protocol)
        if spec.recipe_overrides:
            recipe = recipe.with_(**dict(spec.recipe_overrides))
        deps = {role: self.resolve(dep) for role, dep in method.requires(spec, params).items()}
        payload = {"spec": spec.as_dict(), "method_version": method.version, "params": dataclasses.asdict(params),
                   "recipe": recipe.as_dict(), "data": data.fingerprint if data else f"missing:{spec.dataset}",
                   "deps": {role: d.key for role, d in deps.items()}}
        if self.precision != "fp32":  # fp32 cells keep the keys they had before precision was a choice
            payload["precision"] = self.precision
        cell = Cell(spec, stable_hash(payload), method, params, recipe, deps, data, error)
        self._cells[spec] = cell
        return cell

    def plan(self, specs: list[CellSpec]) -> list[Cell]:
        """Unique cells, every dependency before the cells that need it."""
        ordered: list[Cell] = []
        seen: set[str] = set()

        def visit(cell: Cell) -> None:
            if cell.key in seen:
                return
            for dep in cell.deps.values():
                visit(dep)
            seen.add(cell.key)
            ordered.append(cell)

        for spec in specs:
            visit(self.resolve(spec))
        return ordered

    # ------------------------------------------------------------------ running
    def _blocked(self, cell: Cell, failed: dict[str, str]) -> str | None:
        """Why a cell cannot run at all (a failed dependency, missing data), or None."""
        failed_dep = next((d for d in cell.deps.values() if d.key in failed), None)
        if failed_dep is not None:
            return f"dependency {failed_dep.label} failed: {failed[failed_dep.key]}"
        if cell.data is None:
            return cell.data_error or "data missing"
        return None

    def _record_failure(self, cell: Cell, reason: str, summary: "RunSummary", trace: str | None = None) -> None:
        if trace:
            (self.artifacts / cell.key).mkdir(parents=True, exist_ok=True)
            (self.artifacts / cell.key / "error.txt").write_text(trace)
        self.store.fail(cell.key, cell.spec.as_dict(), reason)
        summary.failed[cell.key] = reason
        self.log(f"FAILED {cell.label}: {reason}")

    def run(self, cells: list[Cell], executor: "Executor | None" = None) -> RunSummary:
        """Run cells in dependency order: in this process, or through `executor` (worker processes, Ray).

        Either way this process alone writes the store: it claims each cell, and records its metrics or
        its one-line failure; a failing cell never stops the others (its dependents fail with a reason).
        """
        summary = RunSummary()
        pending, in_flight = list(cells), {}
        while pending or in_flight:
            for cell in list(pending):
                if any(d.key not in summary.done + summary.skipped and d.key not in summary.failed
                       for d in cell.deps.values()):
                    continue  # a dependency is still pending or in flight
                reason = self._blocked(cell, summary.failed)
                if reason is not None:
                    pending.remove(cell)
                    self._record_failure(cell, reason, summary)
                    continue
                forced = self.force and cell.key not in self._forced and (self.force_keys is None or cell.key in self.force_keys)
                state = self.store.claim(cell.key, cell.spec.as_dict(), force=forced)
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
                    self._finish(cell, lambda c=cell: self.execute(c), summary, len(cells))
                else:  # a worker takes it when one is free: "training" now would claim more than --jobs at once
                    self.log(f"queued {cell.label}")
                    in_flight[executor.submit(cell.spec, self.worker_config())] = cell
            if in_flight:
                done, _ = wait(list(in_flight), timeout=2, return_when=FIRST_COMPLETED)
                for future in done:
                    self._finish(in_flight.pop(future), future.result, summary, len(cells))
                for cell in in_flight.values():
                    self.store.heartbeat(cell.key)
            elif pending:
                time.sleep(2)  # only cells held by other processes are left
        return summary

    def _finish(self, cell: Cell, outcome, summary: RunSummary, total: int) -> None:
        try:
            metrics, env = outcome()
        except Exception as exc:
            self._record_failure(cell, f"{type(exc).__name__}: {exc}".splitlines()[0], summary, traceback.format_exc())
            return
        self.store.finish(cell.key, metrics, env)
        summary.done.append(cell.key)
        # One line per finished cell: the progress of a long run (worker processes show no epoch bars).
        top1 = f"top-1 {metrics['top1']:.2f} %, " if "top1" in metrics else ""
        finished = len(summary.done) + len(summary.skipped) + len(summary.failed)
        self.log(f"done {cell.label}: {top1}{metrics.get('cell_seconds', 0.0) / 60:.1f} min [{finished}/{total}]")

    def worker_config(self) -> "WorkerConfig":
        return WorkerConfig(str(self.store.path), str(self.artifacts), str(self.data_dir) if self.data_dir else None,
                            self.device.type, self.force, torch.get_num_threads(), self.precision)

    def _evaluate_and_measure(self, cell: Cell, ctx: CellContext, model: torch.nn.Module) -> dict[str, Any]:
        """Clean and perturbed test accuracy, whole-test-set inference time, and the cost figures."""
        from suite.harness import evaluate
        from suite.perturb import PERTURBATIONS, perturbation

        device = torch.device(cell.method.inference_device) if cell.method.inference_device else self.device
        precision = cell.method.inference_precision or self.precision
        batch = cell.recipe.eval_batch_size
        t0 = time.perf_counter()
        metrics: dict[str, Any] = evaluate(model, ctx.test, ctx.info, device=device, batch_size=batch, precision=precision)
        metrics["test_set_seconds"] = time.perf_counter() - t0
        metrics["test_set_batch"] = batch
        metrics["robust_top1"] = {name: evaluate(model, ctx.test, ctx.info, device=device, batch_size=batch,
                                                 transform=perturbation(name, ctx.info), precision=precision)["top1"]
                                  for name in PERTURBATIONS}
        info = ctx.info
        metrics.update(measure_model(model, (info.in_chans, info.image_size, info.image_size), device,
                                     throughput_seconds=PROFILES.get(cell.spec.profile).throughput_seconds,
                                     precision=precision))
        metrics["size_format"] = "torch.save(state_dict)"
        metrics.update(cell.method.measure(ctx, model, metrics))
        return metrics

    def _context(self, cell: Cell) -> CellContext:
        assert cell.data is not None
        deps = {role: Dependency(d.spec, d.key, d.method, d.data.info, self.artifacts / d.key,
                                 (self.store.get(d.key) or {}).get("metrics") or {})
                for role, d in cell.deps.items()}
        return CellContext(cell.spec, cell.key, cell.params, cell.recipe, cell.data,
                           stratified_subset(cell.data.train, cell.recipe.train_subset),
                           stratified_subset(cell.data.test, cell.recipe.test_subset),
                           self.device, self.artifacts / cell.key, deps, self.progress, self.precision,
                           lambda: self.store.heartbeat(cell.key))

    def remeasure(self, cell: Cell) -> str | None:
        """Evaluate and measure a finished cell's saved model again (latency on a quiet machine, say),
        keeping its training figures; returns why it could not, or None. Nothing is trained."""
        row = self.store.get(cell.key)
        if not row or row["status"] != "done":
            return "not finished"
        if not cell.method.classifies or cell.data is None:
            return "not a classifier" if cell.data is not None else "data missing"
        ctx = self._context(cell)
        try:
            model = Dependency(cell.spec, cell.key, cell.method, cell.data.info, ctx.artifact_dir,
                               row["metrics"]).load_model(self.device)
        except Exception as exc:  # e.g. a channel-pruned model cannot be rebuilt from its spec
            return f"its saved model cannot be reloaded ({type(exc).__name__})"
        fresh = self._evaluate_and_measure(cell, ctx, model)
        env = environment(self.device, self.precision)
        metrics = {**row["metrics"], **fresh,
                   "remeasured": {"commit": env["commit"], "device": env["device"], "threads": torch.get_num_threads(),
                                  "date": time.strftime("%Y-%m-%d %H:%M:%S")}}
        trained = row.get("env") or {}
        self.store.finish(cell.key, metrics, {**trained, "device": env["device"], "threads": torch.get_num_threads(),
                                              "trained_on": trained.get("device")})
        return None

    def execute(self, cell: Cell) -> tuple[dict[str, Any], dict[str, Any]]:
        """Train, evaluate and measure one cell; returns (metrics, environment). Writes only artifacts."""
        assert cell.data is not None
        artifact_dir = self.artifacts / cell.key
        if self.force and (self.force_keys is None or cell.key in self.force_keys) and (artifact_dir / MODEL_FILE).exists():
            shutil.rmtree(artifact_dir)
        artifact_dir.mkdir(parents=True, exist_ok=True)
        seed_everything(cell.spec.seed)
        ctx = self._context(cell)
        t0 = time.perf_counter()
        model = cell.method.run(ctx)
        wall = time.perf_counter() - t0
        if model is not None:
            save_atomic(model.state_dict(), artifact_dir / MODEL_FILE)
        metrics = self._evaluate_and_measure(cell, ctx, model) if cell.method.classifies else {}
        metrics.update({
            "stages": ctx.stages, "epochs_trained": sum(s["epochs"] for s in ctx.stages),
            "train_seconds": sum(s["seconds"] for s in ctx.stages), "cell_seconds": wall,
            "train_size": len(ctx.train), "test_size": len(ctx.test), "recipe": cell.recipe.as_dict(),
            "params_resolved": dataclasses.asdict(cell.params), "data_fingerprint": cell.data.fingerprint,
            "data_canonical": cell.data.canonical, "data_source": cell.data.source,
            "deps": {role: d.key for role, d in cell.deps.items()}, **ctx.extra_metrics})
        for ckpt in artifact_dir.glob("*.ckpt"):  # the final model is kept; per-epoch state is no longer needed
            ckpt.unlink()
        env = environment(self.device, self.precision)
        env["argv"] = " ".join(sys.argv)
        env["threads"] = torch.get_num_threads()
        return metrics, env
