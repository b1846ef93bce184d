"""Train/eval mode restoring, in one place: code that runs a module in eval mode hands it back as it found it."""
from __future__ import annotations

import contextlib
from typing import Iterator

from torch import nn


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """`module` in eval mode inside the block; its previous mode (train or eval) restored after, even on error."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)
