"""SP: Tung & Mori 2019, "Similarity-Preserving Knowledge Distillation".

The batch's Gram matrix of the last stage's flattened activations, each row L2-normalised; the loss is
the squared Frobenius distance of student and teacher matrices divided by b^2 (their Eq. 4). Defaults:
weight 3000, CE 1.0 (mdistiller's SP config, RepDistiller's `-b 3000`).
"""
from __future__ import annotations

from typing import ClassVar
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from suite.distill import Distiller, Features, TeacherParams, at_least_fp32
from suite.plugins import NON_NEGATIVE, register_method


def _normalized_gram(f: torch.Tensor) -> torch.Tensor:
    f = f.flatten(1)
    return F.normalize(f @ f.t())


def sp_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    b = student.shape[0]
    return (_normalized_gram(teacher) - _normalized_gram(student)).pow(2).sum() / (b * b)


@dataclass(frozen=True)
class SPParams(TeacherParams):
    ranges: ClassVar[dict[str, str]] = {"weight": NON_NEGATIVE}
    weight: float = 3000.0


@register_method
class SP(Distiller):
    name = "sp"
    version = "1"
    label = "SP"
    Params = SPParams
    description = "similarity preserving: pairwise sample similarities of the last stage"

    def loss_terms(self, params: SPParams, s: Features, t: Features, y, extra, step):
        return {"sp": params.weight * sp_loss(at_least_fp32(s.stages[-1]), at_least_fp32(t.stages[-1]))}
