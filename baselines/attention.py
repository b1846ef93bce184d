"""Attention modules that timm does not provide: BAM and GAM (SE and CBAM come from timm.layers).

Every module keeps its input's shape. Constructors take the channel count first and accept (and
ignore) timm's `device` / `dtype` keywords, so they can be passed to timm blocks as `attn_layer`.
"""
from __future__ import annotations

from functools import partial

import torch
from torch import nn


class BAM(nn.Module):
    """Bottleneck Attention Module (Park et al., BMVC 2018).

    Eq. 1: F' = F + F ⊗ M(F); Eq. 2: M(F) = σ(M_c(F) + M_s(F)), the two branches broadcast to C x H x W.
    Channel branch (Eq. 3): global average pool -> MLP C -> C/r -> C with BN and ReLU on the hidden layer.
    Spatial branch (Eq. 4): 1x1 conv C -> C/r, two 3x3 convs dilated by d, 1x1 conv C/r -> 1 (BN + ReLU
    between). Defaults r = 16, d = 4. The authors' released code multiplies the branches instead of
    adding them (a known bug there); this follows the paper.
    """

    def __init__(self, channels: int, reduction: int = 16, dilation: int = 4, **_: object) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.channel = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, hidden),
                                     nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))
        self.spatial = nn.Sequential(
            nn.Conv2d(channels, hidden, 1), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, padding=dilation, dilation=dilation), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, padding=dilation, dilation=dilation), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attention = torch.sigmoid(self.channel(x)[:, :, None, None] + self.spatial(x))
        return x + x * attention


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class GAM(nn.Module):
    """Global Attention Mechanism (Liu, Shao, Hoffmann 2021).

    Channel sub-module: permute to B x H x W x C, MLP C -> C/r -> C (ReLU), permute back, sigmoid gate:
    F2 = Mc(F1) ⊗ F1. Spatial sub-module: 7x7 conv C -> C/r, BN, ReLU, 7x7 conv C/r -> C, BN, sigmoid
    gate: F3 = Ms(F2) ⊗ F2. The paper sets r "the same as BAM", i.e. 16, which reproduces the parameter
    count it reports for ResNet-50 (r = 4 does not). `groups > 1` gives the lighter "GAM (gc)" variant:
    both 7x7 convolutions grouped, followed by a channel shuffle.
    """

    def __init__(self, channels: int, reduction: int = 16, groups: int = 1, **_: object) -> None:
        super().__init__()
        hidden = max(groups, channels // reduction)
        hidden -= hidden % groups
        self.groups = groups
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))
        self.conv1 = nn.Conv2d(channels, hidden, 7, padding=3, groups=groups)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.conv2 = nn.Conv2d(hidden, channels, 7, padding=3, groups=groups)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * torch.sigmoid(self.mlp(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))
        s = torch.relu(self.bn1(self.conv1(x)))
        if self.groups > 1:
            s = channel_shuffle(s, self.groups)
        s = self.bn2(self.conv2(s))
        if self.groups > 1:
            s = channel_shuffle(s, self.groups)
        return x * torch.sigmoid(s)


def block_attention(mechanism: str, reduction: int = 16):
    """The per-block attention layer factory for `mechanism` (timm's SE / CBAM, or GAM)."""
    from timm.layers import SEModule
    from timm.layers.cbam import CbamModule

    factories = {
        # SE (Hu et al.): FC layers without bias reproduce EncodeNet Table 5's 26.22 M.
        "se": partial(SEModule, rd_ratio=1 / reduction, bias=False),
        # CBAM (Woo et al.): channel MLP with bias, 7x7 spatial kernel: 26.24 M.
        "cbam": partial(CbamModule, rd_ratio=1 / reduction, spatial_kernel_size=7, mlp_bias=True),
        "gam": partial(GAM, reduction=reduction),
        "gam_gc": partial(GAM, reduction=reduction, groups=4),
    }
    if mechanism not in factories:
        raise ValueError(f"unknown per-block attention {mechanism!r}; valid: {', '.join(factories)}")
    return factories[mechanism]
