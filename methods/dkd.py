"""DKD: Zhao et al. 2022, "Decoupled Knowledge Distillation".

KD's KL split into TCKD (binary: target class vs all others) and NCKD (the distribution over the
non-target classes), weighted alpha and beta, both at temperature T and scaled by T^2; the DKD term
warms up linearly over its first epochs. Defaults (mdistiller's DKD config): alpha 1, T 4, CE 1,
warm-up 20 of 240 epochs (here: that fraction of the recipe's epochs); beta 8, or the value of
mdistiller's config for the teacher/student pair (2 for resnet56/resnet20 and resnet110/resnet32, 6 for
vgg13/vgg8).
"""
from __future__ import annotations

from typing import ClassVar
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from suite.distill import Distiller, Features, TeacherParams, at_least_fp32
from suite.plugins import FRACTION, NON_NEGATIVE, POSITIVE, register_method

PAIR_BETA = {("resnet56", "resnet20"): 2.0, ("resnet110", "resnet32"): 2.0, ("vgg13", "vgg8"): 6.0}
MASK = 1000.0  # subtracted from the target logit to leave it out of the non-target softmax


def dkd_loss(student: torch.Tensor, teacher: torch.Tensor, y: torch.Tensor, alpha: float, beta: float,
             temperature: float) -> torch.Tensor:
    target = F.one_hot(y, student.shape[1]).bool()
    p_s, p_t = F.softmax(student / temperature, dim=1), F.softmax(teacher / temperature, dim=1)

    def binary(p: torch.Tensor) -> torch.Tensor:  # (p_target, p_rest)
        p_target = p.masked_fill(~target, 0).sum(1, keepdim=True)
        return torch.cat([p_target, p.masked_fill(target, 0).sum(1, keepdim=True)], dim=1)

    b_s, b_t = binary(p_s), binary(p_t)
    tckd = (b_t * (b_t.log() - b_s.log())).nan_to_num().sum() / len(y)
    log_q_s = F.log_softmax(student / temperature - MASK * target, dim=1)
    q_t = F.softmax(teacher / temperature - MASK * target, dim=1)
    nckd = F.kl_div(log_q_s, q_t, reduction="sum") / len(y)
    return (alpha * tckd + beta * nckd) * temperature ** 2


@dataclass(frozen=True)
class DKDParams(TeacherParams):
    ranges: ClassVar[dict[str, str]] = {"alpha": NON_NEGATIVE, "beta": NON_NEGATIVE, "temperature": POSITIVE, "warmup_fraction": FRACTION}
    alpha: float = 1.0
    beta: float = 0.0  # 0: mdistiller's value for the pair (PAIR_BETA), else 8
    temperature: float = 4.0
    warmup_fraction: float = 20 / 240


@register_method
class DKD(Distiller):
    name = "dkd"
    version = "1"
    label = "DKD"
    Params = DKDParams
    description = "decoupled KD: target-class and non-target-class KL weighted apart"

    def extra_modules(self, ctx, student, teacher):
        return PairSetting(ctx.params.beta or PAIR_BETA.get((ctx.params.teacher, ctx.spec.model), 8.0))

    def loss_terms(self, params: DKDParams, s: Features, t: Features, y, extra, step):
        return {"dkd": step.warmup(params.warmup_fraction)
                * dkd_loss(at_least_fp32(s.logits), at_least_fp32(t.logits), y, params.alpha, extra.beta, params.temperature)}


class PairSetting(nn.Module):
    """Holds the beta resolved for this teacher/student pair (no parameters)."""

    def __init__(self, beta: float) -> None:
        super().__init__()
        self.beta = beta
