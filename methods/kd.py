"""KD: Hinton, Vinyals, Dean 2015, "Distilling the Knowledge in a Neural Network".

Loss (their Sec. 2): KL(softmax(z_t / T) || softmax(z_s / T)) scaled by T^2 so its gradients keep
their size as T changes, plus cross-entropy on the labels. Defaults T = 4, CE weight 0.1, KD weight
0.9: the CIFAR-100 recipe of mdistiller's and RepDistiller's KD configs.
"""
from __future__ import annotations

from typing import ClassVar
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from suite.distill import Distiller, Features, TeacherParams
from suite.plugins import NON_NEGATIVE, POSITIVE, register_method


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    log_p_s = F.log_softmax(student_logits / temperature, dim=1)
    log_p_t = F.log_softmax(teacher_logits / temperature, dim=1)
    return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True) * temperature ** 2


@dataclass(frozen=True)
class KDParams(TeacherParams):
    ranges: ClassVar[dict[str, str]] = {"temperature": POSITIVE, "kd_weight": NON_NEGATIVE}
    temperature: float = 4.0
    ce_weight: float = 0.1
    kd_weight: float = 0.9


@register_method
class KD(Distiller):
    name = "kd"
    version = "1"
    label = "KD (Hinton)"
    Params = KDParams
    description = "Hinton knowledge distillation: softened teacher logits (T^2-scaled KL) + CE"

    def loss_terms(self, params: KDParams, s: Features, t: Features, y, extra, step):
        return {"kd": params.kd_weight * kd_loss(s.logits, t.logits, params.temperature)}
