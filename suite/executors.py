"""Where cells run: worker processes on this machine (`--jobs N`) or Ray tasks (`--executor ray`).

The runner submits a cell only when its dependencies are finished, and writes every result to the
store itself; workers only train and write artifacts (a path all workers must share).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import threading
from concurrent.futures import Future
from pathlib import Path

import torch

from suite.execute import ExecConfig, execute_cell
from suite.plan import ResolvedCell
from suite.workers import serve


class WorkerDied(RuntimeError):
    """A worker process ended while it ran a cell (killed, out of memory, a crash in native code). The message
    is the one line the run prints: how it ended, the cell, and the epoch it had reached."""


def how_it_ended(exitcode: int | None) -> str:
    if exitcode is None:  # a Ray worker: Ray does not say
        return "its process crashed"
    if exitcode < 0:
        try:
            return f"signal {-exitcode} ({signal.Signals(-exitcode).name})"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


def epoch_reached(artifact_dir: Path) -> str:
    """Where a cell's training stood, from its newest epoch checkpoint: 'at epoch E' (of a stage other than
    the main one, named), or 'before its first epoch checkpoint'."""
    checkpoints = sorted(artifact_dir.glob("*.ckpt"), key=lambda p: p.stat().st_mtime) if artifact_dir.exists() else []
    if not checkpoints:
        return "before its first epoch checkpoint"
    try:
        done = torch.load(checkpoints[-1], map_location="cpu", weights_only=True)["epoch"]
    except Exception:  # a checkpoint it was writing (never half-written: save_atomic renames) or foreign
        return "at an unknown epoch"
    stage = "" if checkpoints[-1].stem == "main" else f" of stage {checkpoints[-1].stem}"
    return f"at epoch {done + 1}{stage}"


def worker_died(cell: ResolvedCell, config: ExecConfig, exitcode: int | None) -> WorkerDied:
    return WorkerDied(f"worker died: {how_it_ended(exitcode)} while training {cell.label} "
                      f"{epoch_reached(config.artifacts / cell.key)}")


class _Worker:
    """One worker process and the thread that feeds it jobs from the shared queue; a worker that dies fails
    only the cell it ran (`WorkerDied`) and is replaced by a fresh process."""

    def __init__(self, ctx, index: int, n_gpus: int, jobs: "queue.Queue") -> None:
        self.ctx, self.index, self.n_gpus, self.jobs = ctx, index, n_gpus, jobs
        self.closing = False
        self._start()
        self.thread = threading.Thread(target=self._feed, daemon=True, name=f"suite-worker-{index}")
        self.thread.start()

    def _start(self) -> None:
        self.conn, child = self.ctx.Pipe()
        self.process = self.ctx.Process(target=serve, args=(child, self.index, self.n_gpus, os.getpid()), daemon=True,
                                        name=f"suite-worker-{self.index}")
        self.process.start()
        child.close()

    def _feed(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                self.conn.send(None)
                self.process.join(timeout=10)
                return
            future, cell, config, dep_metrics = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                self.conn.send((cell, config, dep_metrics))
                answer = self.conn.recv()
            except (EOFError, OSError):  # the process is gone: this cell fails, a fresh worker takes the next
                self.process.join(timeout=10)
                future.set_exception(worker_died(cell, config, self.process.exitcode))
                if self.closing:
                    return
                self._start()
                continue
            if answer[0] == "ok":
                future.set_result(answer[1])
            else:
                exc = answer[1]
                exc.__cause__ = RemoteTraceback(answer[2])
                future.set_exception(exc)


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker (shown in the cell's error.txt)."""

    def __str__(self) -> str:
        return self.args[0]


class LocalPoolExecutor:
    """`jobs` worker processes (spawned, so no CUDA state is inherited); one GPU each when several are visible.
    A worker that dies (kill -9, the OOM killer) fails only its cell, with `WorkerDied`, and is replaced."""

    def __init__(self, jobs: int) -> None:
        if jobs < 1:
            raise ValueError(f"--jobs must be at least 1, got {jobs}")
        ctx = mp.get_context("spawn")
        n_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        self.jobs: queue.Queue = queue.Queue()
        self.workers = [_Worker(ctx, i, n_gpus if n_gpus > 1 else 0, self.jobs) for i in range(jobs)]
        self.capacity = jobs

    def submit(self, cell: ResolvedCell, config: ExecConfig, dep_metrics: dict) -> Future:
        future: Future = Future()
        self.jobs.put((future, cell, config, dep_metrics))
        return future

    def shutdown(self) -> None:
        while True:  # cells not yet taken by a worker are cancelled
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job[0].cancel()
        for worker in self.workers:
            worker.closing = True
            self.jobs.put(None)
        for worker in self.workers:  # idle workers end on the sentinel; a busy one (an interrupted run) is stopped
            worker.thread.join(timeout=5)
            if worker.process.is_alive():
                worker.process.terminate()
                worker.process.join(timeout=10)


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
        # cells at once: the cluster's CPUs over each cell's threads where it names one, else --jobs
        self.capacity = max(1, int(ray.cluster_resources().get("CPU", 0) // threads)) if address else jobs

    def submit(self, cell: ResolvedCell, config: ExecConfig, dep_metrics: dict) -> Future:
        gpus = 1 if config.device == "cuda" else 0
        # max_retries=0: a crashed Ray worker is retried by the scheduler, like a local one (the same line)
        task = self.ray.remote(num_cpus=self.threads, num_gpus=gpus, max_retries=0)(execute_cell)
        ray_future, future = task.remote(cell, config, dep_metrics).future(), Future()

        def settle(done: Future) -> None:
            exc = done.exception()
            if exc is None:
                future.set_result(done.result())
            elif isinstance(exc, self.ray.exceptions.WorkerCrashedError):
                future.set_exception(worker_died(cell, config, None))
            else:
                future.set_exception(exc)

        ray_future.add_done_callback(settle)
        return future

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
