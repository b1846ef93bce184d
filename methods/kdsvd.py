"""KDSVD: Lee, Kim, Song 2018, "Self-supervised Knowledge Distillation Using Singular Value Decomposition".

Each stage's map, read as an (H*W) x C matrix per sample, is decomposed by SVD; the teacher's top-k right
singular vectors (the student's top k+3, sign- and order-aligned to the teacher's by the largest
|cosine|) are scaled by the teacher's normalised singular values; the loss compares the RBF kernels
(exp(-d^2 / 8)) between the vectors of consecutive stages, squared differences summed and divided by
the batch size. Defaults k = 1, weight 1, CE 1.0 (mdistiller's KDSVD config).
The matrix layout is the authors' TensorFlow code's and RepDistiller's (positions x channels), and the
tests compare against RepDistiller's `KDSVD`; mdistiller views the NCHW map as (C*H) x W instead, a
different matrix, so its loss is a different number.
"""
from __future__ import annotations

from typing import ClassVar
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from suite.distill import Distiller, Features, TeacherParams, at_least_fp32
from suite.plugins import AT_LEAST_1, NON_NEGATIVE, register_method


def top_singular(f: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(normalised top-k singular values (N, k), their unit right singular vectors (N, C, k)), NaNs zeroed.

    The SVD's gradient is infinite where singular values coincide; as the references zero non-finite
    values after the SVD, non-finite gradients are zeroed on the way back (else one such batch poisons
    the student's weights and the next SVD fails on NaN input)."""
    x = at_least_fp32(f).flatten(2).transpose(1, 2)  # N x (H*W) x C
    if x.requires_grad:
        x.register_hook(lambda g: torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0))
    _, s, vh = torch.linalg.svd(x, full_matrices=False)
    v = vh.transpose(1, 2)
    s, v = torch.nan_to_num(s, 0.0, 0.0, 0.0), torch.nan_to_num(v, 0.0, 0.0, 0.0)
    return F.normalize(s[:, :k], dim=1), F.normalize(v[:, :, :k], dim=1)


def align_to(v_s: torch.Tensor, v_t: torch.Tensor) -> torch.Tensor:
    """The student's vectors picked and sign-flipped to match each teacher vector by largest |cosine|."""
    cosine = v_s.transpose(1, 2) @ v_t
    best = cosine.abs() == cosine.abs().max(dim=1, keepdim=True).values
    return v_s @ torch.where(best, cosine.sign(), torch.zeros_like(cosine))


def _rbf(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.exp(-(a.unsqueeze(2) - b.unsqueeze(1)).pow(2) / 8)


def kdsvd_loss(student: list[torch.Tensor], teacher: list[torch.Tensor], k: int) -> torch.Tensor:
    total, previous = 0, None
    for f_s, f_t in zip(student, teacher):
        s_t, v_t = top_singular(f_t, k)
        _, v_s = top_singular(f_s, k + 3)
        v_s = align_to(v_s, v_t) * s_t.unsqueeze(1)
        v_t = v_t * s_t.unsqueeze(1)
        if previous is not None:
            diff = (_rbf(v_s, previous[0]) - _rbf(v_t, previous[1]).detach()).pow(2)
            total = total + torch.where(torch.isfinite(diff), diff, torch.zeros_like(diff)).sum()
        previous = v_s, v_t
    return total / student[0].shape[0]


@dataclass(frozen=True)
class KDSVDParams(TeacherParams):
    ranges: ClassVar[dict[str, str]] = {"k": AT_LEAST_1, "weight": NON_NEGATIVE}
    k: int = 1
    weight: float = 1.0


@register_method
class KDSVD(Distiller):
    name = "kdsvd"
    version = "1"
    label = "KDSVD"
    Params = KDSVDParams
    description = "SVD knowledge distillation: RBF relations of singular vectors across stages"

    def loss_terms(self, params: KDSVDParams, s: Features, t: Features, y, extra, step):
        return {"kdsvd": params.weight * kdsvd_loss(s.stages, t.stages, params.k)}
