"""Where cells run: worker processes on this machine (`--jobs N`) or Ray tasks (`--executor ray`).

The runner submits a cell only when its dependencies are finished, and writes every result to the
store itself; workers only train and write artifacts (a path all workers must share).
"""
from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import Future, ProcessPoolExecutor

import torch

from suite.execute import ExecConfig, execute_cell
from suite.plan import ResolvedCell
from suite.workers import pin_worker_gpu


class LocalPoolExecutor:
    """`jobs` worker processes (spawned, so no CUDA state is inherited); one GPU each when several are visible."""

    def __init__(self, jobs: int) -> None:
        if jobs < 1:
            raise ValueError(f"--jobs must be at least 1, got {jobs}")
        ctx = mp.get_context("spawn")
        n_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        self.pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=pin_worker_gpu,
                                        initargs=(ctx.Value("i", 0), n_gpus if n_gpus > 1 else 0))

    def submit(self, cell: ResolvedCell, config: ExecConfig, dep_metrics: dict) -> Future:
        return self.pool.submit(execute_cell, cell, config, dep_metrics)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor:
    """Each cell is a Ray task (1 GPU when training on CUDA). Starts a local Ray unless `address` names a
    cluster; every node needs this package installed and the artifacts/store paths shared."""

    def __init__(self, address: str | None, jobs: int, threads: int) -> None:
        try:
            import ray
        except ImportError:
            raise ValueError("--executor ray needs Ray: pip install -e '.[ray]'") from None
        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started:
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=jobs * threads, include_dashboard=False, log_to_driver=False)
        self.threads = threads

    def submit(self, cell: ResolvedCell, config: ExecConfig, dep_metrics: dict) -> Future:
        gpus = 1 if config.device == "cuda" else 0
        task = self.ray.remote(num_cpus=self.threads, num_gpus=gpus, max_retries=0)(execute_cell)
        return task.remote(cell, config, dep_metrics).future()

    def shutdown(self) -> None:
        if self.started:
            self.ray.shutdown()


def make_executor(kind: str, jobs: int, address: str | None, threads: int):
    """None means: run cells in this process."""
    if kind == "ray":
        return RayExecutor(address, jobs, threads)
    if kind != "local":
        raise ValueError(f"unknown executor {kind!r}; valid: local, ray")
    return LocalPoolExecutor(jobs) if jobs > 1 else None
