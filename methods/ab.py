"""AB: Heo, Lee, Yun, Choi 2019, "Knowledge Transfer via Distillation of Activation Boundaries Formed by
Hidden Neurons".

The student learns where the teacher's neurons switch on: with a connector mapping each student
stage's pre-activation output to the teacher's shape (identity when they agree, else conv + BN as
mdistiller's ConvReg without ReLU), the alternative L2 loss (their Eq. 5, margin mu = 1) penalises
(s + mu)^2 where the teacher is off and the student above -mu, and (s - mu)^2 where the teacher is on
and the student below mu; summed, divided by the batch size, times 3/1000, stage i weighted
2^(i - n + 1). As in RepDistiller (and the paper), AB is an initialisation: the student's feature
layers and the connectors are trained on it alone (30 of 240 epochs there: 1/8 of the recipe here),
then the student trains on cross-entropy only. Tested against RepDistiller's `ABLoss`.
"""
from __future__ import annotations

from typing import ClassVar
from dataclasses import dataclass

import torch
from torch import nn

from methods.fitnet import make_regressor
from suite.distill import Distiller, Features, TeacherParams, at_least_fp32, pretrain_on, stage_shapes
from suite.plugins import FRACTION, NON_NEGATIVE, register_method


def ab_loss(student: list[torch.Tensor], teacher: list[torch.Tensor], margin: float) -> torch.Tensor:
    n, total = len(student), 0
    for i, (s, t) in enumerate(zip(student, teacher)):
        s, t = at_least_fp32(s), at_least_fp32(t)
        off = (s + margin) ** 2 * ((s > -margin) & (t <= 0))
        on = (s - margin) ** 2 * ((s <= margin) & (t > 0))
        total = total + 2.0 ** (i - n + 1) * (off + on).sum() / s.shape[0] * 3 / 1000
    return total


def connector(student_shape: torch.Size, teacher_shape: torch.Size) -> nn.Module:
    return nn.Identity() if student_shape == teacher_shape else make_regressor(student_shape, teacher_shape, relu=False)


@dataclass(frozen=True)
class ABParams(TeacherParams):
    ranges: ClassVar[dict[str, str]] = {"margin": NON_NEGATIVE, "init_fraction": FRACTION}
    margin: float = 1.0
    init_fraction: float = 30 / 240


@register_method
class AB(Distiller):
    name = "ab"
    version = "1"
    label = "AB"
    Params = ABParams
    description = "activation boundaries of pre-ReLU stage outputs, as an initialisation stage"

    def extra_modules(self, ctx, student, teacher):
        s_shapes, t_shapes = stage_shapes(student, ctx.info, ctx.device), stage_shapes(teacher, ctx.info, ctx.device)
        return nn.ModuleList(connector(s, t) for s, t in zip(s_shapes, t_shapes))

    def prepare(self, ctx, student, teacher, extra):
        def term(s: Features, t: Features, connectors: nn.ModuleList) -> torch.Tensor:
            if s.preact is None or t.preact is None:
                raise ValueError("AB needs pre-activation stage outputs; this model's stages do not expose them")
            return ab_loss([c(f) for c, f in zip(connectors, s.preact)], t.preact, ctx.params.margin)

        pretrain_on(ctx, student, teacher, term, extra, ctx.params.init_fraction, "ab_init")

    def trainable(self, student, extra):
        return list(student.parameters())  # the connectors served the initialisation only

    def loss_terms(self, params: ABParams, s: Features, t: Features, y, extra, step):
        return {}
