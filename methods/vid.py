"""VID: Ahn et al. 2019, "Variational Information Distillation for Knowledge Transfer".

For every stage, a regressor (1x1 conv, ReLU, 1x1 conv, ReLU, 1x1 conv, no bias) predicts the teacher's
map from the student's as the mean of a Gaussian with one learned variance per teacher channel,
softplus(log_scale) + eps; the loss is the Gaussian negative log-likelihood (mean over entries), summed
over stages (larger maps pooled to the smaller). Defaults (mdistiller's VID config): weight 1, initial
variance 5, eps 1e-5, CE 1.0. The variances are trained, as in the paper and RepDistiller's `VIDLoss`;
mdistiller keeps them in a plain list outside its learnable parameters, so there they stay at 5.
"""
from __future__ import annotations

import math
from typing import ClassVar
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from suite.distill import Distiller, Features, TeacherParams, at_least_fp32, pool_to_common_size, stage_shapes
from suite.plugins import NON_NEGATIVE, POSITIVE, register_method


class VariationalRegressor(nn.Module):
    def __init__(self, cs: int, ct: int, init_var: float, eps: float) -> None:
        super().__init__()
        self.mean = nn.Sequential(nn.Conv2d(cs, ct, 1, bias=False), nn.ReLU(), nn.Conv2d(ct, ct, 1, bias=False),
                                  nn.ReLU(), nn.Conv2d(ct, ct, 1, bias=False))
        self.log_scale = nn.Parameter(torch.full((ct,), math.log(math.exp(init_var - eps) - 1.0)))
        self.eps = eps

    def nll(self, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        f_s, f_t = pool_to_common_size(f_s, f_t)
        mean = at_least_fp32(self.mean(f_s))
        var = (F.softplus(self.log_scale) + self.eps).view(1, -1, 1, 1)
        return (0.5 * ((mean - at_least_fp32(f_t)) ** 2 / var + var.log())).mean()


@dataclass(frozen=True)
class VIDParams(TeacherParams):
    ranges: ClassVar[dict[str, str]] = {"weight": NON_NEGATIVE, "init_var": POSITIVE, "eps": POSITIVE}
    weight: float = 1.0
    init_var: float = 5.0
    eps: float = 1e-5


@register_method
class VID(Distiller):
    name = "vid"
    version = "1"
    label = "VID"
    Params = VIDParams
    description = "variational information distillation: Gaussian likelihood of teacher maps"

    def extra_modules(self, ctx, student, teacher):
        s_shapes, t_shapes = stage_shapes(student, ctx.info, ctx.device), stage_shapes(teacher, ctx.info, ctx.device)
        return nn.ModuleList(VariationalRegressor(s[0], t[0], ctx.params.init_var, ctx.params.eps)
                             for s, t in zip(s_shapes, t_shapes))

    def loss_terms(self, params: VIDParams, s: Features, t: Features, y, extra, step):
        return {"vid": params.weight * sum(r.nll(f_s, f_t) for r, f_s, f_t in zip(extra, s.stages, t.stages))}
