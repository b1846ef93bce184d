"""PKT: Passalis & Tefas 2018, "Learning Deep Representations with Probabilistic Knowledge Transfer".

On the penultimate embeddings: cosine similarities between the samples of a batch, moved to [0, 1] and
normalised per row into conditional probabilities; the loss is the KL divergence of the student's from
the teacher's (mean over entries, eps = 1e-7). Defaults: weight 30000, CE 1.0 (mdistiller's PKT config,
RepDistiller's `-b 30000`).
"""
from __future__ import annotations

from typing import ClassVar
from dataclasses import dataclass

import torch

from suite.distill import Distiller, Features, TeacherParams, at_least_fp32
from suite.plugins import NON_NEGATIVE, register_method

EPS = 1e-7


def _conditional_probabilities(e: torch.Tensor) -> torch.Tensor:
    e = e / (e.norm(dim=1, keepdim=True) + EPS)
    e = torch.nan_to_num(e, nan=0.0)
    similarity = (e @ e.t() + 1.0) / 2.0
    return similarity / similarity.sum(dim=1, keepdim=True)


def pkt_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    p_s, p_t = _conditional_probabilities(student), _conditional_probabilities(teacher)
    return (p_t * torch.log((p_t + EPS) / (p_s + EPS))).mean()


@dataclass(frozen=True)
class PKTParams(TeacherParams):
    ranges: ClassVar[dict[str, str]] = {"weight": NON_NEGATIVE}
    weight: float = 30000.0


@register_method
class PKT(Distiller):
    name = "pkt"
    version = "1"
    label = "PKT"
    Params = PKTParams
    description = "probabilistic knowledge transfer: batch similarity distributions of embeddings"

    def loss_terms(self, params: PKTParams, s: Features, t: Features, y, extra, step):
        return {"pkt": params.weight * pkt_loss(at_least_fp32(s.embedding), at_least_fp32(t.embedding))}
