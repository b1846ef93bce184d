"""MobileNetV2 (Sandler et al. 2018) for 32x32 inputs: stride-1 stem and second stage, so the
feature map is 4x4 before pooling (the usual CIFAR adaptation); 2.24 M parameters for 10 classes."""
from __future__ import annotations

from torch import nn

from baselines.base import StagedClassifier, pooled_linear_head
from baselines.registry import register_model

# (expansion, out channels, blocks, first stride) per stage
CIFAR_CONFIG = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return layers + [nn.ReLU6(inplace=True)] if act else layers


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        mid = cin * expansion
        layers = _conv_bn(cin, mid, 1) if expansion != 1 else []
        layers += _conv_bn(mid, mid, 3, stride, groups=mid) + _conv_bn(mid, cout, 1, act=False)
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        out = self.block(x)
        return x + out if self.residual else out


@register_model("mobilenetv2", label="MobileNetV2")
def mobilenetv2(num_classes: int = 10, in_chans: int = 3, last_channels: int = 1280) -> StagedClassifier:
    stem = nn.Sequential(*_conv_bn(in_chans, 32, 3))
    stages, cin = [], 32
    for expansion, cout, n, stride in CIFAR_CONFIG:
        stages.append(nn.Sequential(*[InvertedResidual(cin if i == 0 else cout, cout, stride if i == 0 else 1, expansion)
                                      for i in range(n)]))
        cin = cout
    stages.append(nn.Sequential(*_conv_bn(cin, last_channels, 1)))
    model = StagedClassifier(stem, stages, pooled_linear_head(last_channels, num_classes))
    model.feats_stages = (1, 2, 4, 6)  # mdistiller's feats[1:]: the outputs of its blocks[1], [2], [4], [6]
    return model
