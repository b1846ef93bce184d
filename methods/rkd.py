"""RKD: Park, Kim, Lu, Cho 2019, "Relational Knowledge Distillation".

On the penultimate embeddings (as mdistiller does):
- distance-wise (their Eq. 4-5): pairwise Euclidean distances, each set divided by its mean over
  distinct pairs, compared with the Huber (smooth L1) loss;
- angle-wise (Eq. 6-7): cosines of the angles formed by every triplet, compared with the Huber loss.
Both are invariant to scaling the embeddings. Weights: distance 25, angle 50, CE 1.0 (mdistiller's
RKD config, which follows the paper).
"""
from __future__ import annotations

from typing import ClassVar
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from suite.distill import Distiller, Features, TeacherParams
from suite.plugins import NON_NEGATIVE, register_method


def _normalized_distances(e: torch.Tensor) -> torch.Tensor:
    d = torch.cdist(e, e)
    off_diagonal = ~torch.eye(len(e), dtype=torch.bool, device=e.device)
    return d / d[off_diagonal].mean().clamp_min(1e-12)


def rkd_distance_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    return F.smooth_l1_loss(_normalized_distances(student.flatten(1)), _normalized_distances(teacher.flatten(1)))


def _angles(e: torch.Tensor) -> torch.Tensor:
    diff = F.normalize(e.unsqueeze(0) - e.unsqueeze(1), p=2, dim=2)  # diff[i, j] = unit vector e_j - e_i
    return torch.bmm(diff, diff.transpose(1, 2))  # cos of the angle at i between j and k


def rkd_angle_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    return F.smooth_l1_loss(_angles(student.flatten(1)), _angles(teacher.flatten(1)))


@dataclass(frozen=True)
class RKDParams(TeacherParams):
    ranges: ClassVar[dict[str, str]] = {"distance_weight": NON_NEGATIVE, "angle_weight": NON_NEGATIVE}
    distance_weight: float = 25.0
    angle_weight: float = 50.0


@register_method
class RKD(Distiller):
    name = "rkd"
    version = "1"
    label = "RKD"
    Params = RKDParams
    description = "relational KD: distance- and angle-wise structure of penultimate embeddings"

    def loss_terms(self, params: RKDParams, s: Features, t: Features, y, extra, step):
        return {"rkd_distance": params.distance_weight * rkd_distance_loss(s.embedding, t.embedding),
                "rkd_angle": params.angle_weight * rkd_angle_loss(s.embedding, t.embedding)}
