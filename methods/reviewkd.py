"""ReviewKD: Chen, Liu, Zhao, Jia 2021, "Distilling Knowledge via Knowledge Review".

The student's stage outputs and pooled embedding are fused from the deepest up by attention-based
fusion (ABF) modules -- each maps its input to a middle width, blends it with the upsampled result of
the deeper level by two learned attention maps, and maps it to the teacher's channels at the teacher's
size -- and each fused map is pulled to the teacher's pre-ReLU stage output (the teacher's embedding
for the deepest) by the hierarchical context loss (HCL: MSE at full size plus at 4x4, 2x2, 1x1 pooled
sizes, weights halving, normalised). The term warms up linearly. Defaults (mdistiller's ReviewKD
config): weight 1, CE 1, warm-up 20 of 240 epochs (here: that fraction of the recipe), middle width
min(512, the student's embedding width), post-ReLU student features. Tested against mdistiller's
`ReviewKD` with the same ABF weights.
"""
from __future__ import annotations

from typing import ClassVar
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from suite.distill import Distiller, Features, TeacherParams, at_least_fp32, stage_shapes
from suite.plugins import FRACTION, NON_NEGATIVE, register_method


class ABF(nn.Module):
    def __init__(self, cin: int, mid: int, cout: int, fuse: bool) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid))
        self.conv2 = nn.Sequential(nn.Conv2d(mid, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout))
        self.att_conv = nn.Sequential(nn.Conv2d(2 * mid, 2, 1), nn.Sigmoid()) if fuse else None
        nn.init.kaiming_uniform_(self.conv1[0].weight, a=1)
        nn.init.kaiming_uniform_(self.conv2[0].weight, a=1)

    def forward(self, x: torch.Tensor, deeper: torch.Tensor | None, out_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(output at the teacher's size, the fused middle map handed to the next, shallower level)."""
        x = self.conv1(x)
        if self.att_conv is not None:
            deeper = F.interpolate(deeper, x.shape[-2:], mode="nearest")
            z = self.att_conv(torch.cat([x, deeper], dim=1))
            x = x * z[:, :1] + deeper * z[:, 1:2]
        if x.shape[-1] != out_size:
            x = F.interpolate(x, (out_size, out_size), mode="nearest")
        return self.conv2(x), x


def hcl_loss(student: list[torch.Tensor], teacher: list[torch.Tensor]) -> torch.Tensor:
    total = 0
    for fs, ft in zip(student, teacher):
        fs, ft = at_least_fp32(fs), at_least_fp32(ft)
        loss, weight, norm = F.mse_loss(fs, ft), 1.0, 1.0
        for size in (4, 2, 1):
            if size >= fs.shape[-1]:
                continue
            weight /= 2.0
            loss = loss + weight * F.mse_loss(F.adaptive_avg_pool2d(fs, size), F.adaptive_avg_pool2d(ft, size))
            norm += weight
        total = total + loss / norm
    return total


class ReviewModules(nn.Module):
    """ABFs from the deepest level (the embedding) to the shallowest stage, and the teacher's sizes."""

    def __init__(self, in_channels: list[int], out_channels: list[int], out_sizes: list[int]) -> None:
        super().__init__()
        mid = min(512, in_channels[-1])
        n = len(in_channels)
        self.abfs = nn.ModuleList(ABF(cin, mid, cout, i < n - 1) for i, (cin, cout) in
                                  enumerate(zip(in_channels, out_channels)))[::-1]
        self.out_sizes = out_sizes[::-1]

    def forward(self, student: list[torch.Tensor]) -> list[torch.Tensor]:
        results, deeper = [], None
        for abf, x, size in zip(self.abfs, student[::-1], self.out_sizes):
            out, deeper = abf(x, deeper, size)
            results.insert(0, out)
        return results


def levels(features: Features, stages: list[torch.Tensor]) -> list[torch.Tensor]:
    return [*stages, features.embedding[:, :, None, None]]


@dataclass(frozen=True)
class ReviewKDParams(TeacherParams):
    ranges: ClassVar[dict[str, str]] = {"weight": NON_NEGATIVE, "warmup_fraction": FRACTION}
    weight: float = 1.0
    warmup_fraction: float = 20 / 240


@register_method
class ReviewKD(Distiller):
    name = "reviewkd"
    version = "1"
    label = "ReviewKD"
    Params = ReviewKDParams
    description = "knowledge review: student levels fused deep-to-shallow (ABF), HCL to the teacher's"

    def extra_modules(self, ctx, student, teacher):
        s_shapes, t_shapes = stage_shapes(student, ctx.info, ctx.device), stage_shapes(teacher, ctx.info, ctx.device)
        n = min(len(s_shapes), len(t_shapes))
        s_shapes, t_shapes = s_shapes[-n:], t_shapes[-n:]
        return ReviewModules([s[0] for s in s_shapes] + [student.head.num_features],
                             [t[0] for t in t_shapes] + [teacher.head.num_features],
                             [t[-1] for t in t_shapes] + [1])

    def loss_terms(self, params: ReviewKDParams, s: Features, t: Features, y, extra, step):
        if t.preact is None:
            raise ValueError("ReviewKD needs the teacher's pre-activation stage outputs; its stages do not expose them")
        n = len(extra.abfs) - 1
        fused = extra(levels(s, s.stages[-n:]))
        return {"reviewkd": params.weight * step.warmup(params.warmup_fraction)
                * hcl_loss(fused, levels(t, t.preact[-n:]))}
