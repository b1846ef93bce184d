"""DIST: Huang, You, Wang, Qian, Xu 2022, "Knowledge Distillation from A Stronger Teacher".

KD's KL replaced by correlations of the softened predictions: inter-class relation = 1 - mean Pearson
correlation between each sample's student and teacher class distributions; intra-class relation = the
same over each class's distribution across the batch. Loss = T^2 (beta inter + gamma intra). Defaults
beta = gamma = 1 (the official `DIST` loss); T = 4, the CIFAR temperature the suite's other logit
distillers use (the official default, 1, is its ImageNet setting). Written from the paper's Eq. 3-6
(no vendored reference; tested against a direct evaluation of the equations).
"""
from __future__ import annotations

from typing import ClassVar
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from suite.distill import Distiller, Features, TeacherParams, at_least_fp32
from suite.plugins import NON_NEGATIVE, POSITIVE, register_method

EPS = 1e-8


def pearson_per_row(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + EPS)


def dist_loss(student: torch.Tensor, teacher: torch.Tensor, beta: float, gamma: float,
              temperature: float) -> torch.Tensor:
    p_s, p_t = F.softmax(student / temperature, dim=1), F.softmax(teacher / temperature, dim=1)
    inter = 1 - pearson_per_row(p_s, p_t).mean()
    intra = 1 - pearson_per_row(p_s.t(), p_t.t()).mean()
    return temperature ** 2 * (beta * inter + gamma * intra)


@dataclass(frozen=True)
class DISTParams(TeacherParams):
    ranges: ClassVar[dict[str, str]] = {"beta": NON_NEGATIVE, "gamma": NON_NEGATIVE, "temperature": POSITIVE}
    beta: float = 1.0
    gamma: float = 1.0
    temperature: float = 4.0


@register_method
class DIST(Distiller):
    name = "dist"
    version = "1"
    label = "DIST"
    Params = DISTParams
    description = "KD by inter- and intra-class correlation of predictions (stronger teachers)"

    def loss_terms(self, params: DISTParams, s: Features, t: Features, y, extra, step):
        return {"dist": dist_loss(at_least_fp32(s.logits), at_least_fp32(t.logits), params.beta, params.gamma, params.temperature)}
