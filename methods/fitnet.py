"""FitNet: Romero et al. 2015, "FitNets: Hints for Thin Deep Nets".

Hint = the output of a middle stage of the teacher; the matching stage of the student is mapped to
the hint's shape by a learned convolutional regressor (their Eq. 3) and pulled to it with an L2 loss.
As in mdistiller (which EncodeNet used), hint and cross-entropy are trained jointly in one stage
(the paper pre-trains with the hint first). Defaults: hint weight 100, CE 1.0, and the hint layer of
mdistiller and RepDistiller (`FITNET.HINT_LAYER = 2`, `--hint_layer 2`): their `feats[2]`, where feats[0] is
the stem's output, i.e. the model's `reference_stage(2)`. Per family: CIFAR ResNets, the second residual
stage (layer2, 32 x 16 x 16 on ResNet20); VGG, the third conv block (256 x 8 x 8 on VGG8/13/16); ResNet18/50,
layer2 (128 / 512 channels x 16 x 16); MobileNetV2, the output of its third block group (mdistiller's
blocks[2], 32 channels; 16 x 16 here, 8 x 8 there, where the stem strides by 2); LeNet-5 and AlexNet, which no reference codebase ships, by the same rule their
second stage (LeNet-5's last conv stage, 16 x 5 x 5; AlexNet's 192 x 8 x 8). Version 2 took stage
num_stages // 2, the same for CIFAR ResNets, LeNet-5 and AlexNet but one stage deeper for VGG and ResNet18/50
(512 x 4 x 4). `hint_stage` >= 0 picks a stage by its index instead.
"""
from __future__ import annotations

from typing import ClassVar
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from suite.distill import Distiller, Features, TeacherParams, stage_shapes
from suite.plugins import NON_NEGATIVE, register_method


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
    ranges: ClassVar[dict[str, str]] = {"hint_stage": "[-1, inf)", "hint_weight": NON_NEGATIVE}
    hint_stage: int = -1  # index into the stages; -1 = the reference codebases' hint layer (feats[2])
    hint_weight: float = 100.0


REFERENCE_HINT_LAYER = 2  # mdistiller's FITNET.HINT_LAYER, RepDistiller's --hint_layer default


def hint_index(params: FitNetParams, model: nn.Module) -> int:
    return model.reference_stage(REFERENCE_HINT_LAYER) if params.hint_stage < 0 else params.hint_stage


@register_method
class FitNet(Distiller):
    name = "fitnet"
    version = "3"  # 3: the reference hint layer for every family (2 took num_stages // 2); 2: 1x1 regressor
    label = "FitNet"
    Params = FitNetParams
    description = "hint-based distillation: a middle stage regressed onto the teacher's"

    def extra_modules(self, ctx, student, teacher):
        s_shapes, t_shapes = stage_shapes(student, ctx.info, ctx.device), stage_shapes(teacher, ctx.info, ctx.device)
        s_at, t_at = hint_index(ctx.params, student), hint_index(ctx.params, teacher)
        regressor = make_regressor(s_shapes[s_at], t_shapes[t_at])
        regressor.stages = (s_at, t_at)  # which student stage is guided towards which teacher stage
        return regressor

    def loss_terms(self, params: FitNetParams, s: Features, t: Features, y, extra, step):
        s_at, t_at = extra.stages
        return {"hint": params.hint_weight * F.mse_loss(extra(s.stages[s_at]), t.stages[t_at])}
