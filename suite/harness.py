"""The one training loop every method uses, plus evaluation.

A method changes training only through `losses` (extra loss terms computed from the model, a batch
and any extra modules) and `extra_modules` (trained alongside the model, e.g. a FitNet regressor).
The harness owns the optimizer and schedule (from the recipe), epochs, the data path on the device,
checkpoints with resume, progress display and the NaN guard.
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from suite.data import DatasetInfo, Split, iterate_batches
from suite.modes import eval_mode
from suite.numerics import autocast, batch_to_memory_format, in_precision, to_memory_format
from suite.profiles import Recipe


@dataclass(frozen=True)
class Step:
    """Where training stands when a loss is computed, for losses that depend on it: warm-ups (DKD,
    ReviewKD) read the epoch, a memory bank over the training set (CRD) reads the samples' indices."""
    epoch: int  # 1-based epoch being trained (mdistiller's `epoch`)
    epochs: int
    index: torch.Tensor  # the batch's positions in the training split

    def warmup(self, fraction: float) -> float:
        """min(1, epoch / (fraction x epochs)): a linear warm-up over `fraction` of the run (mdistiller's
        `min(epoch / warmup_epochs, 1)` with its 20 of 240 epochs scaled to this recipe's length)."""
        return min(1.0, self.epoch / max(fraction * self.epochs, 1e-12))


# losses(model, x, y, step) -> (logits, {name: loss}); the harness sums the terms and logs each.
# logits may be None for stages that do not classify (an autoencoder, a paraphraser).
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, Step], tuple[torch.Tensor, dict[str, torch.Tensor]]]


class TrainingDiverged(RuntimeError):
    """Raised when a loss becomes NaN or infinite; the cell fails with this reason."""


def cross_entropy_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                       step: Step) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    logits = model(x)
    return logits, {"ce": F.cross_entropy(logits, y)}


@dataclass
class FitResult:
    epochs_run: int  # epochs actually trained in this call (0 when restored complete)
    epochs_total: int
    train_seconds: float  # wall clock of this call's training
    total_seconds: float  # wall clock of all epochs, including those before a resume
    images_seen: int
    history: list[dict] = field(default_factory=list)  # per-epoch train loss / accuracy

    @property
    def images_per_second(self) -> float:
        return self.images_seen / self.train_seconds if self.train_seconds > 0 else float("nan")


def make_optimizer(params: Iterable[nn.Parameter], recipe: Recipe) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay, foreach=True)
    return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay, foreach=True)


def make_scheduler(opt: torch.optim.Optimizer, recipe: Recipe, steps_per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Stepped every iteration, so short profiles still anneal smoothly."""
    total = max(1, recipe.epochs * steps_per_epoch)
    if recipe.schedule == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    if recipe.schedule == "multistep":
        marks = [m * steps_per_epoch for m in recipe.milestones]
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: recipe.gamma ** sum(s >= m for m in marks))
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)


def save_atomic(obj: dict, path: Path) -> None:
    """Write to a temporary file and rename, so a kill never leaves a half-written checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train_epoch(model: nn.Module, losses: LossFn, batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LRScheduler, device: torch.device,
                precision: str, epoch: int = 1, epochs: int = 1) -> tuple[float, int, int, list[str]]:
    """One pass over (images, labels, indices) `batches`: (mean loss, correct predictions, images, loss term names)."""
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    n, terms = 0, {}
    for x, y, index in batches:
        x = batch_to_memory_format(x, precision)
        with autocast(device, precision):
            logits, terms = losses(model, x, y, Step(epoch, epochs, index))
            loss = sum(terms.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        loss_sum += loss.detach() * len(y)
        if logits is not None:
            correct += (logits.detach().argmax(1) == y).sum()
        n += len(y)
    return (loss_sum / max(n, 1)).item(), int(correct.item()), n, list(terms)  # one sync per epoch, not per step


def read_checkpoint(path: Path, device: torch.device | str) -> dict | None:
    """An epoch checkpoint to resume from, or None. One that cannot be read (cut short by a failing disk: the
    suite itself never leaves one, it writes and renames) is set aside as `NAME.bad` with one line on stderr,
    and training starts from the first epoch."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        if not (isinstance(state, dict) and {"modules", "epoch"} <= state.keys()):
            raise ValueError("not an epoch checkpoint of this harness")
        return state
    except Exception as exc:
        bad = path.with_name(path.name + ".bad")
        path.replace(bad)
        print(f"checkpoint {path} unreadable ({type(exc).__name__}); set aside as {bad.name}, training from epoch 1",
              file=sys.stderr)
        return None


def fit(model: nn.Module, train: Split, info: DatasetInfo, recipe: Recipe, *, device: torch.device | str = "cpu",
        losses: LossFn = cross_entropy_loss, extra_modules: nn.Module | None = None,
        params: Iterable[nn.Parameter] | None = None, frozen: nn.Module | None = None,
        checkpoint: Path | None = None, seed: int = 0, desc: str = "train", progress: bool = True,
        augment: bool = True, on_epoch_end: Callable[[int, nn.Module], None] | None = None,
        precision: str = "fp32") -> FitResult:
    """Train `model` (and `extra_modules`) in place by the recipe, in `precision` (see suite/numerics.py).

    `params` restricts what the optimizer updates (default: every trainable parameter of the model and
    the extra modules). `frozen` (a part of the model or of the extra modules) is never updated: its
    parameters are left out of the optimizer and it stays in eval mode, so BatchNorm statistics do not
    move either. With `checkpoint`, state is saved atomically after every epoch and a later call resumes
    from it; a checkpoint of a finished run makes this call a no-op.
    """
    device = torch.device(device)
    modules = to_memory_format(nn.ModuleList([model] + ([extra_modules] if extra_modules is not None else [])).to(device),
                               precision)
    params = list(params) if params is not None else list(modules.parameters())
    if frozen is not None:
        fixed = {id(p) for p in frozen.parameters()}
        params = [p for p in params if id(p) not in fixed]
    opt = make_optimizer(params, recipe)
    steps_per_epoch = max(1, math.ceil(len(train) / recipe.batch_size))
    sched = make_scheduler(opt, recipe, steps_per_epoch)
    generator = torch.Generator().manual_seed(seed)
    start_epoch, history = 0, []

    state = read_checkpoint(checkpoint, device) if checkpoint is not None else None
    if state is not None:
        modules.load_state_dict(state["modules"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        start_epoch, history = state["epoch"], state["history"]

    data = train.to(device)
    t0, seen = time.perf_counter(), 0
    prior_seconds = history[-1]["seconds"] if history else 0.0  # training time before a resume
    bar = tqdm(range(start_epoch, recipe.epochs), desc=desc, disable=not progress, leave=False, dynamic_ncols=True)
    for epoch in bar:
        modules.train()
        if frozen is not None:
            frozen.eval()
        batches = iterate_batches(data, info, recipe.batch_size, shuffle=True, augment=augment, generator=generator,
                                  with_index=True)
        lr, epoch_start = opt.param_groups[0]["lr"], time.perf_counter()
        mean_loss, correct, n_epoch, terms = train_epoch(model, losses, batches, opt, sched, device, precision,
                                                         epoch + 1, recipe.epochs)
        epoch_seconds = time.perf_counter() - epoch_start
        if not math.isfinite(mean_loss):
            raise TrainingDiverged(f"loss became {mean_loss} in epoch {epoch + 1} ({', '.join(terms)})")
        seen += n_epoch
        elapsed = time.perf_counter() - t0
        history.append({"epoch": epoch + 1, "loss": mean_loss, "train_acc": correct / max(n_epoch, 1), "lr": lr,
                        "epoch_seconds": epoch_seconds, "images_per_second": n_epoch / max(epoch_seconds, 1e-9),
                        "seconds": prior_seconds + elapsed})  # per epoch: train figures only, never the test set
        bar.set_postfix(loss=f"{mean_loss:.3f}", acc=f"{history[-1]['train_acc']:.3f}", img_s=f"{seen / elapsed:.0f}")
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, model)
        if checkpoint is not None:
            save_atomic({"modules": modules.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                         "generator": generator.get_state(), "epoch": epoch + 1, "history": history}, checkpoint)
    bar.close()
    to_memory_format(modules, "fp32")  # hand the model back in the default layout
    return FitResult(recipe.epochs - start_epoch, recipe.epochs, time.perf_counter() - t0,
                     history[-1]["seconds"] if history else 0.0, seen, history)


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, info: DatasetInfo, *, device: torch.device | str = "cpu",
             batch_size: int = 1000, transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
             precision: str = "fp32") -> dict[str, float]:
    """Top-1, top-5 (when there are more than 5 classes) and mean cross-entropy on a split, computed in
    `precision` (the cell's, so a model is evaluated as it was trained).

    `transform` perturbs the normalized inputs (robustness evaluation)."""
    device = torch.device(device)
    data = split.to(device)
    loss, top1, top5 = 0.0, 0, 0
    run = in_precision(model.to(device), device, precision)
    with eval_mode(model):
        for x, y in iterate_batches(data, info, batch_size, shuffle=False, augment=False):
            if transform is not None:
                x = transform(x)
            logits = run(x).float()
            loss += F.cross_entropy(logits, y, reduction="sum").item()
            top1 += (logits.argmax(1) == y).sum().item()
            if logits.shape[1] > 5:
                top5 += (logits.topk(5, dim=1).indices == y[:, None]).any(1).sum().item()
    n = len(split)
    out = {"top1": 100.0 * top1 / n, "loss": loss / n}
    if info.num_classes > 5:
        out["top5"] = 100.0 * top5 / n
    return out
