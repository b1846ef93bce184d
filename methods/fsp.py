"""FSP: Yim, Joo, Bae, Kim 2017, "A Gift from Knowledge Distillation: Fast Optimization, Network
Minimization and Transfer Learning".

The "flow of solution procedure" between two consecutive maps is their channel-by-channel inner product
averaged over positions (a C_1 x C_2 matrix; the larger map pooled to the smaller); the loss is the
mean squared difference of student and teacher FSP matrices, summed over consecutive pairs of (stem,
stage 1, ..., last stage). Student and teacher must have equal channels at every one of these maps.
As in RepDistiller, FSP is an initialisation: the student's feature layers are first trained on the
FSP loss alone (its own stage, 30 of 240 epochs there: 1/8 of the recipe here), then the student trains
on cross-entropy only. Tested against RepDistiller's `FSP`.
"""
from __future__ import annotations

from typing import ClassVar
from dataclasses import dataclass

import torch

from suite.distill import Distiller, Features, TeacherParams, at_least_fp32, pool_to_common_size, pretrain_on
from suite.plugins import FRACTION, register_method


def fsp_matrices(maps: list[torch.Tensor]) -> list[torch.Tensor]:
    out = []
    for bottom, top in zip(maps[:-1], maps[1:]):
        bottom, top = pool_to_common_size(at_least_fp32(bottom), at_least_fp32(top))
        out.append(torch.bmm(bottom.flatten(2), top.flatten(2).transpose(1, 2)) / bottom[0, 0].numel())
    return out


def fsp_loss(student: Features, teacher: Features) -> torch.Tensor:
    s_maps, t_maps = [student.stem, *student.stages], [teacher.stem, *teacher.stages]
    if [m.shape[1] for m in s_maps] != [m.shape[1] for m in t_maps]:
        raise ValueError("FSP needs equal channels in student and teacher at the stem and every stage, got "
                         f"{[m.shape[1] for m in s_maps]} vs {[m.shape[1] for m in t_maps]}")
    return sum((s - t).pow(2).mean() for s, t in zip(fsp_matrices(s_maps), fsp_matrices(t_maps)))


@dataclass(frozen=True)
class FSPParams(TeacherParams):
    ranges: ClassVar[dict[str, str]] = {"init_fraction": FRACTION}
    init_fraction: float = 30 / 240


@register_method
class FSP(Distiller):
    name = "fsp"
    version = "1"
    label = "FSP"
    Params = FSPParams
    description = "flow of solution procedure matrices, as an initialisation stage"

    def prepare(self, ctx, student, teacher, extra):
        pretrain_on(ctx, student, teacher, lambda s, t, _: fsp_loss(s, t), None, ctx.params.init_fraction, "fsp_init")

    def loss_terms(self, params: FSPParams, s: Features, t: Features, y, extra, step):
        return {}
