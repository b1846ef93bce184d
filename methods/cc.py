"""CC: Peng et al. 2019, "Correlation Congruence for Knowledge Distillation".

Student and teacher penultimate embeddings are each projected by a plain linear layer to 128 dimensions
(RepDistiller's `LinearEmbed`, which its `train_student.py` builds for `--distill correlation`; torchdistill's
`Linear4CCKD` is the same); the loss is RepDistiller's `Correlation` (the authors' code it credits): with
d = |e_s - e_t|, the mean over consecutive sample pairs of sum_k d_i,k d_i+1,k.
Defaults: weight 0.02, CE 1.0, embedding 128 (RepDistiller's `-b 0.02`, `--feat_dim 128`); the weight was
tuned for these unnormalised embeddings. `normalize=True` L2-normalises them (CRD's `Embed`; version 1 of
this method did, which made the loss about 40x smaller at initialisation): not the reference, kept only
as an option.
"""
from __future__ import annotations

from typing import ClassVar
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from suite.distill import Distiller, Features, TeacherParams
from suite.plugins import AT_LEAST_1, NON_NEGATIVE, register_method


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


class LinearEmbed(nn.Module):
    """Linear projection of the flattened input (RepDistiller's `LinearEmbed`, CC's head)."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim_in, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


class EmbedPair(nn.Module):
    def __init__(self, student_dim: int, teacher_dim: int, dim: int, normalize: bool = False) -> None:
        super().__init__()
        embed = Embed if normalize else LinearEmbed
        self.student = embed(student_dim, dim)
        self.teacher = embed(teacher_dim, dim)


@dataclass(frozen=True)
class CCParams(TeacherParams):
    ranges: ClassVar[dict[str, str]] = {"weight": NON_NEGATIVE, "embed_dim": AT_LEAST_1}
    weight: float = 0.02
    embed_dim: int = 128
    normalize: bool = False  # L2-normalise the embeddings (not RepDistiller's CC; see the module docstring)


@register_method
class CC(Distiller):
    name = "cc"
    version = "2"  # 2: RepDistiller's plain linear embedding (1 L2-normalised it)
    label = "CC"
    Params = CCParams
    description = "correlation congruence of projected embeddings (RepDistiller's form)"

    def extra_modules(self, ctx, student, teacher):
        return EmbedPair(student.head.num_features, teacher.head.num_features, ctx.params.embed_dim,
                         ctx.params.normalize)

    def loss_terms(self, params: CCParams, s: Features, t: Features, y, extra, step):
        return {"cc": params.weight * cc_loss(extra.student(s.embedding), extra.teacher(t.embedding))}
