"""AT: Zagoruyko & Komodakis 2017, "Paying More Attention to Attention".

A stage's spatial attention map is the channel mean of |F|^p, flattened and L2-normalised per sample;
the loss is the mean squared difference of student and teacher maps, summed over the stages (the
larger map average-pooled to the smaller). Defaults p = 2, weight 1000, CE 1.0 (mdistiller's AT config,
RepDistiller's `-b 1000`).
"""
from __future__ import annotations

from typing import ClassVar
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from suite.distill import Distiller, Features, TeacherParams, pool_to_common_size
from suite.plugins import NON_NEGATIVE, POSITIVE, register_method


def attention_map(f: torch.Tensor, p: float) -> torch.Tensor:
    return F.normalize(f.pow(p).mean(1).flatten(1))


def at_loss(student: list[torch.Tensor], teacher: list[torch.Tensor], p: float) -> torch.Tensor:
    total = 0
    for f_s, f_t in zip(student, teacher):
        f_s, f_t = pool_to_common_size(f_s, f_t)
        total = total + (attention_map(f_s, p) - attention_map(f_t, p)).pow(2).mean()
    return total


@dataclass(frozen=True)
class ATParams(TeacherParams):
    ranges: ClassVar[dict[str, str]] = {"p": POSITIVE, "weight": NON_NEGATIVE}
    p: float = 2.0
    weight: float = 1000.0


@register_method
class AT(Distiller):
    name = "at"
    version = "1"
    label = "AT"
    Params = ATParams
    description = "attention transfer: spatial attention maps of every stage"

    def loss_terms(self, params: ATParams, s: Features, t: Features, y, extra, step):
        return {"at": params.weight * at_loss(s.stages, t.stages, params.p)}
