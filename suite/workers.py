"""Process-pool worker start-up, kept free of torch imports so it runs before CUDA is initialised."""
from __future__ import annotations

import os


def pin_worker_gpu(counter, n_gpus: int) -> None:
    """Give each worker process its own GPU (round robin) by restricting what CUDA sees in it."""
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    if n_gpus > 0:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(index % n_gpus)
