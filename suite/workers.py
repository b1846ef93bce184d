"""A worker process of `--jobs N`: it trains the cells its pipe sends, one at a time, and answers each with
its result or its exception. Kept free of torch imports at module level so a worker pins its GPU before
CUDA is initialised.

A worker holds no multiprocessing lock, queue or shared value, so nothing of it is registered with the
resource tracker: a killed tracker (or a killed worker) leaves no tracker tracebacks behind.
"""
from __future__ import annotations

import os
import signal
import threading
import time
import traceback


def pin_gpu(index: int, n_gpus: int) -> None:
    """Give each worker process its own GPU (round robin) by restricting what CUDA sees in it."""
    if n_gpus > 0:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(index % n_gpus)


def exit_with_parent(parent_pid: int, every: float = 1.0) -> None:
    """End this process once the driver is gone (killed with -9, say): an orphan would go on training a
    cell that nobody records, holding its cores."""
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(every)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def serve(conn, index: int, n_gpus: int, parent_pid: int) -> None:
    """The worker's loop: receive (cell, config, dep_metrics), send ("ok", result) or ("error", exc, trace);
    None ends it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle: it stops its workers
    pin_gpu(index, n_gpus)
    exit_with_parent(parent_pid)
    from suite.execute import execute_cell

    while True:
        try:
            job = conn.recv()
        except EOFError:  # the driver closed the pipe
            return
        if job is None:
            return
        try:
            conn.send(("ok", execute_cell(*job)))
        except Exception as exc:  # the cell's failure travels back; the worker lives on
            trace = traceback.format_exc()
            try:
                conn.send(("error", exc, trace))
            except Exception:  # an exception that does not pickle: its one line does
                from suite.scheduler import one_line

                conn.send(("error", RuntimeError(one_line(exc)), trace))
