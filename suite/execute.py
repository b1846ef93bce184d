"""Execute anywhere: run one resolved cell (in this process, a worker process or a Ray task) and return
(metrics, environment). Writes only the cell's artifacts; the scheduler alone writes the store.

Everything a worker needs travels with the call: the resolved cell (key, recipe, params, precision,
force flag, dependencies), an `ExecConfig` (paths, device, threads) and the direct dependencies'
stored metrics. Data is loaded by name and checked against the fingerprint the plan was made with.
"""
from __future__ import annotations

import dataclasses
import platform
import random
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from suite.context import MODEL_FILE, CellContext, Dependency
from suite.data import DataBundle, load_dataset, stratified_subset
from suite.harness import evaluate, save_atomic
from suite.measure import device_description, measure_model
from suite.numerics import describe
from suite.perturb import PERTURBATIONS, perturbation
from suite.plan import ResolvedCell


@dataclass(frozen=True)
class ExecConfig:
    """Where and how cells run (picklable: it travels to worker processes and Ray tasks)."""

    artifacts: Path
    data_dir: Path | None = None
    device: str = "cpu"  # already resolved: "cpu" or "cuda"
    threads: int | None = None  # torch threads in the executing process (None: leave as it is)
    progress: bool = True


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked, but no CUDA device is visible")
    return torch.device(name)


def git_commit(checkout: Path | None = None) -> str:
    """The checkout's short commit, "+dirty" where tracked files other than the published results differ from it
    (a table written by an earlier command of the same session changes no figure of the next one)."""
    here = checkout or Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5, cwd=here)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":(top)",
                                ":(top,exclude)results"], capture_output=True, text=True, timeout=5, cwd=here).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# The commit of the code this process imported: taken now, not when a cell finishes hours later (by
# then the checkout may have moved on, and the record would name code that did not run).
CODE_COMMIT = git_commit()


# The libraries whose version can change a figure (kernels, pruning, int8 flows, k-means, the data pipeline).
FIGURE_LIBRARIES = ("torchvision", "timm", "torch-pruning", "torchao", "scikit-learn", "numpy", "scipy")


def library_versions() -> dict[str, str]:
    import importlib.metadata

    versions = {}
    for name in FIGURE_LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def environment(device: torch.device, precision: str) -> dict[str, Any]:
    libraries = library_versions()  # from the installed metadata: no need to import them
    return {"torch": torch.__version__, "timm": libraries["timm"], "python": platform.python_version(),
            "platform": platform.platform(), "device": device_description(device), "commit": CODE_COMMIT,
            "numerics": describe(precision), "threads": torch.get_num_threads(), "libraries": libraries}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def cell_data(cell: ResolvedCell, config: ExecConfig) -> DataBundle:
    """The cell's dataset, exactly as planned (a changed file on disk is an error, not a silent mix)."""
    if cell.data_fingerprint is None:
        raise RuntimeError(cell.data_error or "data missing")
    data = load_dataset(cell.spec.dataset, config.data_dir)
    if data.fingerprint != cell.data_fingerprint:
        raise RuntimeError(f"{cell.spec.dataset} changed since planning (fingerprint {data.fingerprint}, "
                           f"planned {cell.data_fingerprint})")
    return data


def dependency(cell: ResolvedCell, config: ExecConfig, metrics: dict[str, Any]) -> Dependency:
    return Dependency(cell.spec, cell.key, cell.method, cell.params, cell.info, config.artifacts / cell.key, metrics)


def build_context(cell: ResolvedCell, config: ExecConfig, dep_metrics: dict[str, dict[str, Any]],
                  heartbeat=lambda: None) -> CellContext:
    data = cell_data(cell, config)
    deps = {role: dependency(d, config, dep_metrics.get(d.key) or {}) for role, d in cell.deps.items()}
    return CellContext(cell.spec, cell.key, cell.params, cell.recipe, data,
                       stratified_subset(data.train, cell.recipe.train_subset),
                       stratified_subset(data.test, cell.recipe.test_subset),
                       resolve_device(config.device), config.artifacts / cell.key, deps, config.progress,
                       cell.precision, heartbeat)


def inference_setting(cell: ResolvedCell, ctx: CellContext) -> tuple[torch.device, str]:
    """The device and precision the cell's model infers with (an int8 model: the CPU, fp32)."""
    device = torch.device(cell.method.inference_device) if cell.method.inference_device else ctx.device
    return device, cell.method.inference_precision or cell.precision


def cost_figures(cell: ResolvedCell, ctx: CellContext, model: nn.Module) -> dict[str, Any]:
    """Parameters, size, FLOPs, latency, throughput and energy of `model`, as the cell infers."""
    device, precision = inference_setting(cell, ctx)
    info = ctx.info
    return measure_model(model, (info.in_chans, info.image_size, info.image_size), device,
                         throughput_seconds=cell.profile.throughput_seconds,
                         throughput_batch=cell.profile.throughput_batch, latency_runs=cell.profile.latency_runs,
                         warmup=cell.profile.latency_warmup, precision=precision)


def evaluate_and_measure(cell: ResolvedCell, ctx: CellContext, model: nn.Module) -> dict[str, Any]:
    """Clean and perturbed test accuracy, whole-test-set inference time, and the cost figures."""
    device, precision = inference_setting(cell, ctx)
    batch = cell.recipe.eval_batch_size

    def accuracy(transform=None) -> dict[str, float]:
        return evaluate(model, ctx.test, ctx.info, device=device, batch_size=batch, transform=transform,
                        precision=precision)

    t0 = time.perf_counter()
    metrics: dict[str, Any] = accuracy()
    metrics["test_set_seconds"] = time.perf_counter() - t0
    metrics["test_set_batch"] = batch
    metrics["robust_top1"] = {name: accuracy(perturbation(name, ctx.info))["top1"] for name in PERTURBATIONS}
    metrics.update(cost_figures(cell, ctx, model))
    metrics["size_format"] = "torch.save(state_dict)"
    metrics.update(cell.method.measure(ctx, model, metrics))
    return metrics


def execute_cell(cell: ResolvedCell, config: ExecConfig, dep_metrics: dict[str, dict[str, Any]],
                 heartbeat=lambda: None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train, evaluate and measure one cell; returns (metrics, environment)."""
    if config.threads:
        torch.set_num_threads(config.threads)
    artifact_dir = config.artifacts / cell.key
    if cell.force and (artifact_dir / MODEL_FILE).exists():  # a finished model: start over (a checkpoint resumes)
        shutil.rmtree(artifact_dir)
    artifact_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cell.spec.seed)
    ctx = build_context(cell, config, dep_metrics, heartbeat)
    t0 = time.perf_counter()
    model = cell.method.run(ctx)
    wall = time.perf_counter() - t0
    if model is not None:
        save_atomic(model.state_dict(), artifact_dir / MODEL_FILE)
    metrics = evaluate_and_measure(cell, ctx, model) if cell.method.classifies else {}
    metrics.update({
        "stages": ctx.stages, "epochs_trained": sum(s["epochs"] for s in ctx.stages),
        "train_seconds": sum(s["seconds"] for s in ctx.stages), "cell_seconds": wall,
        "train_size": len(ctx.train), "test_size": len(ctx.test), "recipe": cell.recipe.as_dict(),
        "precision": cell.precision, "params_resolved": dataclasses.asdict(cell.params),
        "data_fingerprint": ctx.data.fingerprint, "data_canonical": ctx.data.canonical, "data_source": ctx.data.source,
        "deps": {role: d.key for role, d in cell.deps.items()}, **ctx.extra_metrics})
    for ckpt in artifact_dir.glob("*.ckpt"):  # the final model is kept; per-epoch state is no longer needed
        ckpt.unlink()
    env = environment(ctx.device, cell.precision)
    env["argv"] = " ".join(sys.argv)
    return metrics, env


TIMED_ON_TWIN = "same-architecture copy"  # remeasured["timed_on"] of a cell re-timed without its saved model
TIMING_FIELDS = ("latency_ms", "latency_p90_ms", "latency_runs", "throughput_img_s", "throughput_batch", "energy_mj",
                 "energy_meter", "threads", "device_name", "measured_precision", "latency_timer")


def retime_architecture(cell: ResolvedCell, ctx: CellContext) -> dict[str, Any]:
    """Latency, throughput and energy of the cell's architecture with fresh weights (`Method.timing_model`): the
    figures a re-timing pass needs where the saved model is not on this machine. Raises ValueError where the method
    has no such model (its work depends on training or on the input)."""
    model = cell.method.timing_model(cell.spec, ctx.info, cell.params)
    if model is None:
        raise ValueError(f"its saved model is not here ({ctx.artifact_dir / MODEL_FILE}) and {cell.spec.method}'s "
                         "inference work depends on its trained weights: it is re-timed only from that model")
    figures = cost_figures(cell, ctx, model)
    return {k: figures[k] for k in TIMING_FIELDS if k in figures}


def remeasure_cell(cell: ResolvedCell, config: ExecConfig, row: dict[str, Any],
                   dep_metrics: dict[str, dict[str, Any]],
                   pass_started: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Evaluate and measure a finished cell's saved model again (latency on a quiet machine, say), keeping
    its training figures; where the saved model is not on this machine (records imported without it), re-time
    its architecture instead (`retime_architecture`). `pass_started` names the pass (when it began) so a report
    groups the cells one pass timed, even across midnight. Raises ValueError with the reason where it cannot."""
    if not cell.method.classifies:
        raise ValueError("not a classifier")
    ctx = build_context(cell, config, dep_metrics)
    saved = dependency(cell, config, row["metrics"])
    if (saved.artifact_dir / MODEL_FILE).exists():
        try:
            model = saved.load_model(ctx.device)
        except Exception as exc:
            raise ValueError(f"its saved model cannot be reloaded ({type(exc).__name__}: {exc})".splitlines()[0]) from None
        fresh, timed_on = evaluate_and_measure(cell, ctx, model), "saved model"
    else:  # the records travelled without the model: re-time its architecture, keep every other figure
        fresh, timed_on = retime_architecture(cell, ctx), TIMED_ON_TWIN
    env = environment(ctx.device, cell.precision)
    date = time.strftime("%Y-%m-%d %H:%M:%S")
    metrics = {**row["metrics"], **fresh,
               "remeasured": {"commit": env["commit"], "device": env["device"], "threads": env["threads"],
                              "date": date, "pass": pass_started or date, "timed_on": timed_on}}
    trained = row.get("env") or {}
    return metrics, {**trained, "device": env["device"], "threads": env["threads"],
                     "trained_on": trained.get("trained_on") or trained.get("device")}
