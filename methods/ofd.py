"""OFD: Heo et al. 2019, "A Comprehensive Overhaul of Feature Distillation".

Distils pre-ReLU features. A 1x1 conv + BN connector maps each student stage's pre-activation output to
the teacher's channels; the teacher's map is average-pooled to the student's size; the partial L2
distance (their Eq. 4) ignores positions where both are below the teacher's margin -- per channel, the
expectation of the teacher's pre-ReLU response given it is negative, computed from the BatchNorm before
the ReLU (Eq. 3; -3 sigma when that BN's mass below zero is under 0.1 %). Per stage: the loss summed over
positions and channels, averaged over the batch, divided by 2^(stages after it). Defaults (mdistiller's
OFD config): weight 1e-3, connector kernel 1, CE 1.0. The teacher stays in eval mode here; mdistiller
(like the authors' code) puts it in train mode, so its BatchNorms use batch statistics.
"""
from __future__ import annotations

import math
from typing import ClassVar
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from suite.distill import Distiller, Features, TeacherParams, at_least_fp32, stage_shapes
from suite.plugins import AT_LEAST_1, NON_NEGATIVE, register_method


def margin_of(bn: nn.BatchNorm2d) -> torch.Tensor:
    """E[x | x < 0] per channel for x ~ N(bias, |weight|^2), shaped 1 x C x 1 x 1."""
    from scipy.stats import norm  # here: scipy.stats takes ~1.5 s to import, and every process imports every method

    values = []
    for s, m in zip(bn.weight.detach().abs().tolist(), bn.bias.detach().tolist()):
        below = norm.cdf(-m / s)
        values.append(m - s * math.exp(-(m / s) ** 2 / 2) / math.sqrt(2 * math.pi) / below if below > 0.001
                      else -3 * s)
    return torch.tensor(values, dtype=torch.float32).view(1, -1, 1, 1)


def partial_l2(source: torch.Tensor, target: torch.Tensor, margin: torch.Tensor) -> torch.Tensor:
    margin = margin.to(source)
    counted = ((source > margin) & (target <= margin), (source > target) & (target > margin) & (target <= 0),
               target > 0)
    loss = (source - margin) ** 2 * counted[0] + (source - target) ** 2 * (counted[1] | counted[2])
    return loss.mean(0).sum()


def connector(cs: int, ct: int, kernel: int) -> nn.Module:
    conv = nn.Conv2d(cs, ct, kernel, padding=(kernel - 1) // 2, bias=False)
    nn.init.normal_(conv.weight, 0, math.sqrt(2.0 / (kernel * kernel * ct)))
    return nn.Sequential(conv, nn.BatchNorm2d(ct))


class OFDModules(nn.Module):
    def __init__(self, connectors: list[nn.Module], margins: list[torch.Tensor]) -> None:
        super().__init__()
        self.connectors = nn.ModuleList(connectors)
        for i, m in enumerate(margins):
            self.register_buffer(f"margin{i}", m)

    @property
    def margins(self) -> list[torch.Tensor]:
        return [getattr(self, f"margin{i}") for i in range(len(self.connectors))]


def ofd_loss(student_preact: list[torch.Tensor], teacher_preact: list[torch.Tensor], modules: OFDModules) -> torch.Tensor:
    n = len(modules.connectors)
    total = 0
    for i, (conn, margin, f_s, f_t) in enumerate(zip(modules.connectors, modules.margins, student_preact[-n:],
                                                      teacher_preact[-n:])):
        guided = at_least_fp32(conn(f_s))
        total = total + partial_l2(guided, F.adaptive_avg_pool2d(at_least_fp32(f_t), guided.shape[-2:]), margin) / 2 ** (n - i - 1)
    return total


@dataclass(frozen=True)
class OFDParams(TeacherParams):
    ranges: ClassVar[dict[str, str]] = {"weight": NON_NEGATIVE, "kernel": AT_LEAST_1}
    weight: float = 1e-3
    kernel: int = 1


@register_method
class OFD(Distiller):
    name = "ofd"
    version = "1"
    label = "OFD"
    Params = OFDParams
    description = "overhaul of feature distillation: pre-ReLU features, teacher margins, partial L2"

    def extra_modules(self, ctx, student, teacher):
        s_shapes, t_shapes = stage_shapes(student, ctx.info, ctx.device), stage_shapes(teacher, ctx.info, ctx.device)
        n = min(len(s_shapes), len(t_shapes))  # the last n stages of each, as mdistiller aligns them
        bns = teacher.bn_before_relu()[-n:]
        return OFDModules([connector(s[0], t[0], ctx.params.kernel) for s, t in zip(s_shapes[-n:], t_shapes[-n:])],
                          [margin_of(bn) for bn in bns])

    def loss_terms(self, params: OFDParams, s: Features, t: Features, y, extra, step):
        if s.preact is None or t.preact is None:
            raise ValueError("OFD needs pre-activation stage outputs; this model's stages do not expose them")
        return {"ofd": params.weight * ofd_loss(s.preact, t.preact, extra)}
