"""CC: Peng et al. 2019, "Correlation Congruence for Knowledge Distillation".

Student and teacher penultimate embeddings are each projected by a linear layer to 128 dimensions and
L2-normalised (RepDistiller's `Embed`); the loss is RepDistiller's `Correlation` (the authors' code it
credits): with d = |e_s - e_t|, the mean over consecutive sample pairs of sum_k d_i,k d_i+1,k.
Defaults: weight 0.02, CE 1.0, embedding 128 (RepDistiller's `-b 0.02`, `--feat_dim 128`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from suite.distill import Distiller, Features, TeacherParams
from suite.plugins import register_method


class Embed(nn.Module):
    """Linear projection, then L2 normalisation per sample (CC's and CRD's heads)."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim_in, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.linear(x.flatten(1)), dim=1)


def cc_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    d = (student - teacher).abs()
    return (d[:-1] * d[1:]).sum(1).mean()


class EmbedPair(nn.Module):
    def __init__(self, student_dim: int, teacher_dim: int, dim: int) -> None:
        super().__init__()
        self.student = Embed(student_dim, dim)
        self.teacher = Embed(teacher_dim, dim)


@dataclass(frozen=True)
class CCParams(TeacherParams):
    weight: float = 0.02
    embed_dim: int = 128


@register_method
class CC(Distiller):
    name = "cc"
    version = "1"
    label = "CC"
    Params = CCParams
    description = "correlation congruence of projected embeddings (RepDistiller's form)"

    def extra_modules(self, ctx, student, teacher):
        return EmbedPair(student.head.num_features, teacher.head.num_features, ctx.params.embed_dim)

    def loss_terms(self, params: CCParams, s: Features, t: Features, y, extra, step):
        return {"cc": params.weight * cc_loss(extra.student(s.embedding), extra.teacher(t.embedding))}
