"""What a method plugin sees while its cell runs: data, recipe, device, dependencies, and `fit`."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

import torch
from torch import nn

from suite.data import DataBundle, DatasetInfo, Split
from suite.harness import FitResult, LossFn, cross_entropy_loss, fit
from suite.profiles import Recipe
from suite.spec import CellSpec

if TYPE_CHECKING:
    from suite.plugins import Method

MODEL_FILE = "model.pt"


@dataclass
class Dependency:
    """A finished cell this one needs (a teacher, a trained baseline)."""

    spec: CellSpec
    key: str
    method: "Method"
    params: Any  # its resolved Params
    info: DatasetInfo
    artifact_dir: Path
    metrics: dict[str, Any]

    def load_model(self, device: torch.device | str = "cpu") -> nn.Module:
        state = torch.load(self.artifact_dir / MODEL_FILE, map_location=device, weights_only=True)
        return self.method.restore(self.spec, self.info, self.params, state).to(device)


@dataclass
class CellContext:
    spec: CellSpec
    key: str
    params: Any
    recipe: Recipe
    data: DataBundle
    train: Split  # the training split after the recipe's subset
    test: Split
    device: torch.device
    artifact_dir: Path
    deps: dict[str, Dependency]
    progress: bool = True
    precision: str = "fp32"  # the run's resolved numerics (suite/numerics.py), part of the cell key
    heartbeat: Callable[[], None] = lambda: None
    stages: list[dict] = field(default_factory=list)  # one entry per fit call: cost accounting
    extra_metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def info(self) -> DatasetInfo:
        return self.data.info

    def fit(self, model: nn.Module, *, losses: LossFn = cross_entropy_loss, extra_modules: nn.Module | None = None,
            params: Iterable[nn.Parameter] | None = None, frozen: nn.Module | None = None,
            recipe: Recipe | None = None, stage: str = "main",
            train: Split | None = None, augment: bool = True,
            on_epoch_end: Callable[[int, nn.Module], None] | None = None, precision: str | None = None) -> FitResult:
        """Train through the shared harness; each stage checkpoints (and resumes) on its own. `precision`
        overrides the cell's numerics for a stage that cannot run in bf16 (fake-quantized QAT)."""
        recipe = recipe or self.recipe

        def epoch_done(epoch: int, m: nn.Module) -> None:
            self.heartbeat()
            if on_epoch_end is not None:
                on_epoch_end(epoch, m)

        result = fit(model, train if train is not None else self.train, self.info, recipe, device=self.device,
                     losses=losses, extra_modules=extra_modules, params=params, frozen=frozen,
                     checkpoint=self.artifact_dir / f"{stage}.ckpt", seed=self.spec.seed,
                     desc=f"{self.spec.model}/{self.spec.method} {stage}", progress=self.progress, augment=augment,
                     on_epoch_end=epoch_done, precision=precision or self.precision)
        self.stages.append({"stage": stage, "epochs": result.epochs_total, "epochs_run": result.epochs_run,
                            "seconds": result.total_seconds, "images_per_second": result.images_per_second,
                            "final_loss": result.history[-1]["loss"] if result.history else None,
                            "history": result.history})  # per epoch: loss, train_acc, lr (first step), seconds, img/s
        return result

    def record(self, **metrics: Any) -> None:
        """Extra figures a method wants stored with its cell (e.g. a chosen k, a reconstruction loss)."""
        self.extra_metrics.update(metrics)
