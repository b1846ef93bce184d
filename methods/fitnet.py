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


def make_regressor(student_shape: torch.Size, teacher_shape: torch.Size, relu: bool = True) -> nn.Module:
    """Conv + BN (+ ReLU) mapping a C_s x H_s x W_s map to C_t x H_t x W_t, by mdistiller's `ConvReg` rule:
    half the size: 3x3 stride 2; double: 4x4 transposed, stride 2; otherwise a (1 + H_s - H_t) kernel --
    1x1 for equal sizes, which is also FitNets' own kernel-size rule."""
    (cs, hs, ws), (ct, ht, wt) = student_shape, teacher_shape
    if hs == 2 * ht:
        conv: nn.Module = nn.Conv2d(cs, ct, 3, stride=2, padding=1)
    elif 2 * hs == ht:
        conv = nn.ConvTranspose2d(cs, ct, 4, stride=2, padding=1)
    elif hs >= ht:
        conv = nn.Conv2d(cs, ct, (1 + hs - ht, 1 + ws - wt))
    else:
        raise ValueError(f"FitNet cannot map a {hs}x{ws} student stage to a {ht}x{wt} hint")
    return nn.Sequential(conv, nn.BatchNorm2d(ct), *([nn.ReLU(inplace=True)] if relu else []))


@dataclass(frozen=True)
class FitNetParams(TeacherParams):
    hint_stage: int = -1  # index into the stages; -1 = the middle one (num_stages // 2)
    hint_weight: float = 100.0


def hint_index(params: FitNetParams, num_stages: int) -> int:
    return num_stages // 2 if params.hint_stage < 0 else params.hint_stage


@register_method
class FitNet(Distiller):
    name = "fitnet"
    version = "2"  # 2: mdistiller's regressor (1x1 for equal sizes; was 3x3)
    label = "FitNet"
    Params = FitNetParams
    description = "hint-based distillation: a middle stage regressed onto the teacher's"

    def extra_modules(self, ctx, student, teacher):
        s_shapes, t_shapes = stage_shapes(student, ctx.info, ctx.device), stage_shapes(teacher, ctx.info, ctx.device)
        return make_regressor(s_shapes[hint_index(ctx.params, len(s_shapes))],
                              t_shapes[hint_index(ctx.params, len(t_shapes))])

    def loss_terms(self, params: FitNetParams, s: Features, t: Features, y, extra, step):
        guided = extra(s.stages[hint_index(params, len(s.stages))])
        hint = t.stages[hint_index(params, len(t.stages))]
        return {"hint": params.hint_weight * F.mse_loss(guided, hint)}
