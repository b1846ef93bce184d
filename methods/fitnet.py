"""FitNet: Romero et al. 2015, "FitNets: Hints for Thin Deep Nets".

Hint = the output of a middle stage of the teacher; the matching stage of the student is mapped to
the hint's shape by a learned convolutional regressor (their Eq. 3) and pulled to it with an L2 loss.
As in mdistiller (which EncodeNet used), hint and cross-entropy are trained jointly in one stage
(the paper pre-trains with the hint first). Defaults: the middle stage (mdistiller's hint layer 2 for
CIFAR ResNets), hint weight 100, CE 1.0.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from suite.distill import Distiller, Features, TeacherParams, stage_shapes
from suite.plugins import register_method


def make_regressor(student_shape: torch.Size, teacher_shape: torch.Size) -> nn.Module:
    """Conv (+ BN, ReLU) mapping a C_s x H_s x W_s map to C_t x H_t x W_t (sizes equal or integer multiples)."""
    (cs, hs, _), (ct, ht, _) = student_shape, teacher_shape
    if hs == ht:
        conv: nn.Module = nn.Conv2d(cs, ct, 3, padding=1)
    elif hs > ht and hs % ht == 0:
        conv = nn.Conv2d(cs, ct, 3, stride=hs // ht, padding=1)
    elif ht > hs and ht % hs == 0:
        conv = nn.ConvTranspose2d(cs, ct, ht // hs, stride=ht // hs)
    else:
        raise ValueError(f"FitNet cannot map a {hs}x{hs} student stage to a {ht}x{ht} hint")
    return nn.Sequential(conv, nn.BatchNorm2d(ct), nn.ReLU(inplace=True))


@dataclass(frozen=True)
class FitNetParams(TeacherParams):
    hint_stage: int = -1  # index into the stages; -1 = the middle one (num_stages // 2)
    hint_weight: float = 100.0


def hint_index(params: FitNetParams, num_stages: int) -> int:
    return num_stages // 2 if params.hint_stage < 0 else params.hint_stage


@register_method
class FitNet(Distiller):
    name = "fitnet"
    version = "1"
    label = "FitNet"
    Params = FitNetParams
    description = "hint-based distillation: a middle stage regressed onto the teacher's"

    def extra_modules(self, ctx, student, teacher):
        s_shapes, t_shapes = stage_shapes(student, ctx.info, ctx.device), stage_shapes(teacher, ctx.info, ctx.device)
        return make_regressor(s_shapes[hint_index(ctx.params, len(s_shapes))],
                              t_shapes[hint_index(ctx.params, len(t_shapes))])

    def loss_terms(self, params: FitNetParams, s: Features, t: Features, y, extra):
        guided = extra(s.stages[hint_index(params, len(s.stages))])
        hint = t.stages[hint_index(params, len(t.stages))]
        return {"hint": params.hint_weight * F.mse_loss(guided, hint)}
