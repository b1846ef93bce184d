"""CIFAR ResNets (He et al. 2016, Sec. 4.2): a 3x3 stem and three stages of basic blocks, depth 6n+2.

Shortcuts that change shape use a 1x1 convolution + BN (option B), as mdistiller/RepDistiller do, so
the KD pairs match that literature. Parameter counts for 10 classes: ResNet20 0.27 M, ResNet32
0.47 M, ResNet110 1.73 M. The x4 variants (CRD/mdistiller) widen the stages to 64-128-256.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from baselines.base import ResidualStage, StagedClassifier, pooled_linear_head
from baselines.registry import register_model


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, attn_layer=None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        # optional attention on the residual branch, after the last BN and before the add (as in timm)
        self.attn: nn.Module = attn_layer(cout) if attn_layer is not None else nn.Identity()

    def forward_preact(self, x):
        """(output, the residual sum before the last ReLU) -- mdistiller's `preact` (OFD, ReviewKD)."""
        out = self.act(self.bn1(self.conv1(x)))
        pre = self.attn(self.bn2(self.conv2(out))) + self.shortcut(x)
        return F.relu(pre), pre

    def forward(self, x):
        return self.forward_preact(x)[0]

    def bn_before_act(self) -> nn.BatchNorm2d:
        return self.bn2


def build_cifar_resnet(depth: int, widths: tuple[int, ...], num_classes: int, in_chans: int,
                       attn_layer=None) -> StagedClassifier:
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
    n = (depth - 2) // 6
    stem = nn.Sequential(nn.Conv2d(in_chans, widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(widths[0]),
                         nn.ReLU(inplace=True))
    stages, cin = [], widths[0]
    for i, w in enumerate(widths[1:]):
        blocks = [BasicBlock(cin if j == 0 else w, w, 2 if (i > 0 and j == 0) else 1, attn_layer) for j in range(n)]
        stages.append(ResidualStage(*blocks))
        cin = w
    return StagedClassifier(stem, stages, pooled_linear_head(cin, num_classes))


def _make(depth: int, widths: tuple[int, ...], suffix: str = "") -> None:
    name = f"resnet{depth}{suffix}"

    @register_model(name, label=name.replace("resnet", "ResNet"))
    def factory(num_classes: int = 10, in_chans: int = 3, attn_layer=None) -> StagedClassifier:
        return build_cifar_resnet(depth, widths, num_classes, in_chans, attn_layer)

    factory.__name__ = name


for _depth in (8, 14, 20, 32, 44, 56, 110):
    _make(_depth, (16, 16, 32, 64))
for _depth in (8, 32):
    _make(_depth, (32, 64, 128, 256), "x4")
