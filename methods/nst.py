"""NST: Huang & Wang 2017, "Like What You Like: Knowledge Distill via Neuron Selectivity Transfer".

Each channel's spatial activation pattern (L2-normalised over positions) is a sample of the stage's
neuron-selectivity distribution; the loss is the squared MMD between student and teacher distributions
with the polynomial kernel k(a, b) = (a . b)^2, summed over stages (larger maps pooled to the smaller).
Defaults: weight 50, CE 1.0 (mdistiller's NST config, RepDistiller's `-b 50`).
"""
from __future__ import annotations

from typing import ClassVar
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from suite.distill import Distiller, Features, TeacherParams, pool_to_common_size
from suite.plugins import NON_NEGATIVE, register_method


def _mean_poly_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.bmm(a, b.transpose(1, 2)).pow(2).mean()


def nst_loss(student: list[torch.Tensor], teacher: list[torch.Tensor]) -> torch.Tensor:
    total = 0
    for f_s, f_t in zip(student, teacher):
        f_s, f_t = pool_to_common_size(f_s, f_t)
        a, b = F.normalize(f_s.flatten(2), dim=2), F.normalize(f_t.flatten(2), dim=2)
        total = total + _mean_poly_kernel(b, b).detach() + _mean_poly_kernel(a, a) - 2 * _mean_poly_kernel(a, b)
    return total


@dataclass(frozen=True)
class NSTParams(TeacherParams):
    ranges: ClassVar[dict[str, str]] = {"weight": NON_NEGATIVE}
    weight: float = 50.0


@register_method
class NST(Distiller):
    name = "nst"
    version = "1"
    label = "NST"
    Params = NSTParams
    description = "neuron selectivity transfer: MMD of channel activation patterns"

    def loss_terms(self, params: NSTParams, s: Features, t: Features, y, extra, step):
        return {"nst": params.weight * nst_loss(s.stages, t.stages)}
