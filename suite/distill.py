"""What every distiller shares: a teacher dependency and a student trained through the harness.

Following mdistiller, a distiller is loss terms plus extra modules. Subclasses implement
`loss_terms` (and `extra_modules` / `prepare` when they have any); this class provides the teacher
(a `baseline` cell on the teacher model, trained once and cached, or a checkpoint given by path) and
the training call.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from baselines.base import Features
from suite.context import CellContext
from suite.harness import Step
from suite.modes import eval_mode
from suite.plugins import Method, NON_NEGATIVE
from suite.profiles import teacher_protocol
from suite.spec import CellSpec


@dataclass(frozen=True)
class TeacherParams:
    ranges: ClassVar[dict[str, str]] = {"ce_weight": NON_NEGATIVE}
    teacher: str = "resnet110"  # teacher model name; its cell is the `baseline` method on it
    teacher_checkpoint: str = ""  # or a state dict file of that model, used instead of training one
    ce_weight: float = 1.0  # weight of the students' cross-entropy on the labels (added by Distiller.run)


def teacher_spec(student: CellSpec, teacher: str) -> CellSpec:
    """The cell a distiller's teacher is: the `teacher` model's `baseline` on the student's data and profile, by
    the teacher protocol of the student's (suite.profiles.teacher_protocol), and where that protocol is its own,
    trained once (seed 0) and shared by every student and seed. The one home of this rule: planning uses it, and
    the tables that show a teacher row (kd, compare) build that row with it."""
    spec = student.with_(method="baseline", model=teacher, params={})
    protocol = teacher_protocol(student.protocol)
    return spec.with_(protocol=protocol, seed=0) if protocol != student.protocol else spec


class Distiller(Method):
    Params = TeacherParams
    family = "distiller"

    def requires(self, spec: CellSpec, params: Any) -> dict[str, CellSpec]:
        if params.teacher_checkpoint:
            return {}
        return {"teacher": teacher_spec(spec, params.teacher)}

    def key_inputs(self, params: Any) -> dict[str, str]:
        if not params.teacher_checkpoint:
            return {}
        from suite.checkpoints import file_sha256

        return {"teacher_checkpoint_sha256": file_sha256(params.teacher_checkpoint)}

    def load_teacher(self, ctx: CellContext) -> nn.Module:
        if ctx.params.teacher_checkpoint:
            from baselines import create_model

            from suite.checkpoints import load_checkpoint

            teacher = create_model(ctx.params.teacher, num_classes=ctx.info.num_classes, in_chans=ctx.info.in_chans)
            load_checkpoint(teacher, ctx.params.teacher_checkpoint, "teacher checkpoint")  # the suite's, mdistiller's or RepDistiller's layout
        else:
            teacher = ctx.deps["teacher"].load_model()
        teacher = teacher.to(ctx.device).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        return teacher

    # --- what a distiller defines -------------------------------------------------------------
    def extra_modules(self, ctx: CellContext, student: nn.Module, teacher: nn.Module) -> nn.Module | None:
        return None

    def prepare(self, ctx: CellContext, student: nn.Module, teacher: nn.Module, extra: nn.Module | None) -> None:
        """A stage before student training (FT pre-trains its paraphraser here)."""

    def loss_terms(self, params: Any, s: Features, t: Features, y: torch.Tensor, extra: nn.Module | None,
                   step: Step) -> dict[str, torch.Tensor]:
        """The distillation terms, weighted; the cross-entropy on the labels is added by `run`. `step` says
        the epoch (warm-ups) and the batch's sample indices (memory banks)."""
        raise NotImplementedError

    # --- shared ----------------------------------------------------------------------------------
    def run(self, ctx: CellContext) -> nn.Module:
        student = self.build_model(ctx.spec, ctx.info, ctx.params).to(ctx.device)
        teacher = self.load_teacher(ctx)
        extra = self.extra_modules(ctx, student, teacher)
        if extra is not None:
            extra = extra.to(ctx.device)
        self.prepare(ctx, student, teacher, extra)
        params = ctx.params

        def losses(model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: Step):
            with torch.no_grad():
                t = teacher.forward_with_features(x)
            s = model.forward_with_features(x)
            return s.logits, {"ce": params.ce_weight * F.cross_entropy(s.logits, y),
                              **self.loss_terms(params, s, t, y, extra, step)}

        ctx.fit(student, losses=losses, extra_modules=extra, params=self.trainable(student, extra),
                frozen=self.frozen(extra))
        return student

    def frozen(self, extra: nn.Module | None) -> nn.Module | None:
        """Extra modules that stay fixed (eval mode, no updates) while the student trains."""
        return None

    def trainable(self, student: nn.Module, extra: nn.Module | None) -> list[nn.Parameter]:
        params = list(student.parameters())
        if extra is not None:
            params += [p for p in extra.parameters() if p.requires_grad]
        return params


@torch.no_grad()
def stage_shapes(model: nn.Module, info, device: torch.device | str = "cpu") -> list[torch.Size]:
    """Shapes of every stage output for one input of the dataset's size."""
    x = torch.zeros(2, info.in_chans, info.image_size, info.image_size, device=device)
    with eval_mode(model):
        return [s.shape[1:] for s in model.forward_stages(x)]


def pool_to_common_size(f_s: torch.Tensor, f_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Average-pool the larger of two feature maps to the other's spatial size (AT, NST, VID, FSP)."""
    hs, ht = f_s.shape[-2:], f_t.shape[-2:]
    if hs[0] > ht[0]:
        f_s = F.adaptive_avg_pool2d(f_s, ht)
    elif ht[0] > hs[0]:
        f_t = F.adaptive_avg_pool2d(f_t, hs)
    return f_s, f_t


def feature_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of everything before the classifier (RepDistiller's `get_feat_modules`)."""
    head = {id(p) for p in model.head.fc.parameters()}
    return [p for p in model.parameters() if id(p) not in head]


def pretrain_on(ctx: CellContext, student: nn.Module, teacher: nn.Module, term, extra: nn.Module | None,
                fraction: float, stage: str) -> None:
    """RepDistiller's initialisation stage (AB, FSP): the student's feature layers (and `extra`) trained
    on a distillation term alone, `term(s, t, extra) -> loss`, for `fraction` of the recipe's epochs,
    as its own checkpointed stage before the student's training."""

    def losses(model, x, y, step):
        with torch.no_grad():
            t = teacher.forward_with_features(x)
        return None, {stage: term(model.forward_with_features(x), t, extra)}

    params = feature_parameters(student) + (list(extra.parameters()) if extra is not None else [])
    ctx.fit(student, losses=losses, extra_modules=extra, params=params, recipe=ctx.recipe.scaled(fraction),
            stage=stage)


def at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    """A loss's input out of bf16/fp16 autocast into fp32 (fp32 and fp64 stay as they are)."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t
