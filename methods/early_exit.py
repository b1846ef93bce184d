"""Early exit: BranchyNet (Teerapittayanon, McDanel, Kung 2016).

Side branches (a small classifier) after early stages of a trained baseline; all exits are then trained
jointly with equal loss weights, starting from the baseline (BranchyNet trains the main network first).
At inference a sample leaves at the first exit whose softmax entropy is below the threshold T; T = 0
means every sample takes the last exit, a huge T means every sample takes the first.

Two methods: `branchynet` trains the exits (a cell, evaluated with T = 0), and `early_exit` applies a
threshold to a trained `branchynet` cell without training, so a sweep of T trains once.

The joint stage follows the authors' code (kunglab/branchynet, `branchynet/net.py`: `opt="Adam"`, `alpha=0.001`,
no weight-decay hook under Adam, one optimizer over the summed exit losses): Adam at lr 1e-3, constant, no weight
decay, whatever the profile's recipe (the CIFAR recipe's SGD lr 0.1 on the summed losses of three exits sent
AlexNet's loss to NaN in its first epoch, seed 1 of 3, measured). Departures: the recipe's batch size (the authors'
512) and `joint_epochs_scale` of its epochs (the authors train the exits 100 epochs after 50 of the main network).
`exit_losses=false` is BranchyNet's control: the very same stage (optimizer, epochs, data order, dropout draws)
with the exits' losses weighted 0, so only the main network trains. Latency of an
early-exit model depends on the input, so it is measured at batch 1 on real test images, not on noise.
"""
from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from suite.columns import MetricColumn
from suite.context import CellContext
from suite.data import DatasetInfo, iterate_batches
from suite.harness import LossFn
from suite.measure import latency_stats, time_calls
from suite.modes import eval_mode
from suite.numerics import in_precision
from suite.plugins import AT_LEAST_1, Method, NON_NEGATIVE, POSITIVE, register_method
from suite.representatives import logits_entropy
from suite.spec import CellSpec


def branch(channels: int, num_classes: int, width: int) -> nn.Sequential:
    """A side exit: 3x3 convolution + ReLU, 2x2 average pool, linear classifier."""
    return nn.Sequential(nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(width * 4, num_classes))


class EarlyExitNet(nn.Module):
    def __init__(self, base: nn.Module, exits_after: tuple[int, ...], image: tuple[int, int, int],
                 branch_width: int = 32, threshold: float = 0.0) -> None:
        super().__init__()
        self.base, self.exits_after, self.threshold = base, tuple(exits_after), threshold
        with torch.no_grad(), eval_mode(base):
            shapes = [s.shape[1:] for s in base.forward_stages(torch.zeros(1, *image))]
        self.branches = nn.ModuleList([branch(shapes[i][0], base.num_classes, branch_width) for i in self.exits_after])
        self.register_buffer("exit_counts", torch.zeros(len(self.exits_after) + 1, dtype=torch.long), persistent=False)

    @property
    def num_classes(self) -> int:
        return self.base.num_classes

    def forward_exits(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every exit's logits, the last one being the main network's (training)."""
        outs, h = [], self.base.stem(x)
        for i, stage in enumerate(self.base.stages):
            h = stage(h)
            if i in self.exits_after:
                outs.append(self.branches[self.exits_after.index(i)](h))
        return outs + [self.base.forward_head(h)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self.forward_exits(x)[-1]
        out: torch.Tensor | None = None
        active = torch.arange(x.shape[0], device=x.device)  # samples still in the network
        h = self.base.stem(x)
        for i, stage in enumerate(self.base.stages):
            h = stage(h)
            if i not in self.exits_after:
                continue
            e = self.exits_after.index(i)
            logits = self.branches[e](h)
            if out is None:
                out = logits.new_zeros(x.shape[0], logits.shape[1])
            leave = logits_entropy(logits) < self.threshold
            out[active[leave]] = logits[leave]
            self.exit_counts[e] += leave.sum()
            if bool(leave.all()):
                return out
            active, h = active[~leave], h[~leave]
        logits = self.base.forward_head(h)
        self.exit_counts[-1] += len(active)
        if out is None:
            return logits
        out[active] = logits
        return out


@dataclass(frozen=True)
class BranchyNetParams:
    ranges: ClassVar[dict[str, str]] = {"branch_width": AT_LEAST_1, "joint_epochs_scale": NON_NEGATIVE, "lr": POSITIVE}
    exits: str = "auto"  # stage indices to branch after, e.g. "0,1"; auto = after every stage but the last
    branch_width: int = 32
    joint_epochs_scale: float = 0.5  # joint training epochs as a fraction of the recipe's
    exit_weights: str = ""  # comma-separated loss weights per exit (last = main); "" = equal (BranchyNet)
    lr: float = 1e-3  # Adam's lr in the joint stage (the authors' alpha)
    exit_losses: bool = True  # False: the side exits' losses weighted 0 (the control: only the main network trains)

    def loss_weights(self, exits: int) -> list[float]:
        """One loss weight per exit, the main one last."""
        if not self.exit_losses:
            if self.exit_weights:
                raise ValueError("branchynet: exit_weights and exit_losses=false exclude each other")
            return [0.0] * (exits - 1) + [1.0]
        weights = [float(w) for w in self.exit_weights.split(",")] if self.exit_weights else [1.0] * exits
        if len(weights) != exits:
            raise ValueError(f"exit_weights needs {exits} values (one per exit, the main one last), got {self.exit_weights!r}")
        return weights


@dataclass(frozen=True)
class EarlyExitParams(BranchyNetParams):
    ranges: ClassVar[dict[str, str]] = {"threshold": NON_NEGATIVE}
    threshold: float = 0.1  # softmax entropy (nats) below which a sample leaves at an exit


def exits_of(params: BranchyNetParams, num_stages: int) -> tuple[int, ...]:
    if params.exits == "auto":
        return tuple(range(num_stages - 1))
    exits = tuple(sorted({int(s) for s in params.exits.split(",") if s.strip()}))
    if not exits or exits[0] < 0 or exits[-1] >= num_stages - 1:
        raise ValueError(f"exits must be stage indices in 0..{num_stages - 2}, got {params.exits!r}")
    return exits


def joint_losses(weights: list[float]) -> LossFn:
    """BranchyNet's training loss: every exit's cross-entropy, weighted (the main exit last); the main exit's logits
    are the ones the harness counts as the model's."""
    def losses(m: EarlyExitNet, x: torch.Tensor, y: torch.Tensor, step):
        outs = m.forward_exits(x)
        return outs[-1], {f"exit{i}": w * F.cross_entropy(o, y) for i, (w, o) in enumerate(zip(weights, outs))}

    return losses


class _EarlyExitBase(Method):
    LATENCY_IMAGES: ClassVar[int] = 200  # real test images timed one at a time (the input decides the exit)
    LATENCY_PASSES: ClassVar[int] = 5  # passes over them; an image's figure is its median (a stall hits one pass)
    columns = (MetricColumn("Exits (fraction)", "exit_fractions",
                            show=lambda m: " / ".join(f"{f:.2f}" for f in m["exit_fractions"])),)

    def build_model(self, spec: CellSpec, info: DatasetInfo, params: BranchyNetParams) -> EarlyExitNet:
        base = super().build_model(spec, info, params)
        return EarlyExitNet(base, exits_of(params, base.num_stages), (info.in_chans, info.image_size, info.image_size),
                            params.branch_width, getattr(params, "threshold", 0.0))

    def timing_model(self, spec, info, params):
        return None  # where an input leaves depends on the trained exits: re-timed only from its saved model

    @torch.no_grad()
    def measure(self, ctx: CellContext, model: nn.Module, metrics: dict[str, Any]) -> dict[str, Any]:
        """Exit fractions over the test set, and batch-1 latency over real test images (the input decides the exit)."""
        device = next(model.parameters()).device
        model.eval()
        run = in_precision(model, device, ctx.precision)
        model.exit_counts.zero_()
        for x, _ in iterate_batches(ctx.test.to(device), ctx.info, 1000, shuffle=False, augment=False):
            run(x)
        counts = model.exit_counts.tolist()
        images = [x for x, _ in iterate_batches(ctx.test.subset(torch.arange(min(self.LATENCY_IMAGES, len(ctx.test)))).to(device),
                                                ctx.info, 1, shuffle=False, augment=False)]
        times = time_calls(run, images, passes=self.LATENCY_PASSES)
        return {**latency_stats(times), "latency_mean_ms": statistics.fmean(times),
                "latency_input": f"{len(times)} test images, one at a time, each the median of its "
                                 f"{self.LATENCY_PASSES} passes",
                "exit_fractions": [c / max(1, sum(counts)) for c in counts], "threshold": model.threshold}


@register_method
class BranchyNet(_EarlyExitBase):
    name = "branchynet"
    version = "2"  # 2: the joint stage by the authors' Adam (lr 1e-3), not the recipe's optimizer
    family = "early_exit"
    Params = BranchyNetParams
    description = "BranchyNet: side exits on a trained baseline, all exits trained jointly (evaluated at the last exit)"

    def requires(self, spec, params):
        return {"baseline": spec.baseline()}

    def estimated_epochs(self, recipe, params) -> float:
        return recipe.epochs * params.joint_epochs_scale

    def run(self, ctx: CellContext) -> EarlyExitNet:
        p: BranchyNetParams = ctx.params
        base = ctx.deps["baseline"].load_model(ctx.device)
        info = ctx.info
        model = EarlyExitNet(base, exits_of(p, base.num_stages), (info.in_chans, info.image_size, info.image_size),
                             p.branch_width).to(ctx.device)
        weights = p.loss_weights(len(model.exits_after) + 1)

        joint = ctx.recipe.scaled(p.joint_epochs_scale, optimizer="adam", lr=p.lr, weight_decay=0.0, schedule="constant")
        ctx.fit(model, losses=joint_losses(weights), recipe=joint, stage="joint")
        return model


@register_method
class EarlyExit(_EarlyExitBase):
    name = "early_exit"
    version = "1"
    family = "early_exit"
    Params = EarlyExitParams
    description = "early-exit inference of a trained branchynet cell at an entropy threshold (no training)"

    def requires(self, spec, params):
        training = {f.name: getattr(params, f.name) for f in dataclasses.fields(BranchyNetParams)
                    if getattr(params, f.name) != getattr(BranchyNetParams(), f.name)}
        return {"branchynet": spec.with_(method="branchynet", params=training)}

    def estimated_epochs(self, recipe, params) -> float:
        return 0.0

    def run(self, ctx: CellContext) -> EarlyExitNet:
        model = ctx.deps["branchynet"].load_model(ctx.device)
        model.threshold = ctx.params.threshold
        return model
