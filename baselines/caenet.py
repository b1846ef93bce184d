"""CAE-Net's composite classifier (Mahmud et al., CAE-Net): the encoder of a lightweight converting
autoencoder followed by a few classification layers of the baseline.

The paper's autoencoder is "a streamlined U-Net: five convolution + five deconvolution layers". Here:
five 3x3 convolutions (BN + ReLU, stride 2 in the 2nd and 4th: 28 -> 7 on MNIST, 32 -> 8 on CIFAR)
and five mirrored transposed convolutions, without U-Net's skip connections, because only the encoder
is kept and skips would let the decoder bypass it. The classification layers follow the baseline's
classifier: LeNet's 120-84 fully connected layers on MNIST, AlexNet's two dropout + fully connected
layers (narrowed to 256) on CIFAR-10, after a 2x2 average pool. Parameter counts: 111 K on MNIST
(paper: 110 K), 0.87 M on CIFAR-10 (paper: 0.9 M).
"""
from __future__ import annotations

from torch import nn

from baselines.base import ClassifierHead, StagedClassifier
from baselines.registry import register_model

STRIDES = (1, 2, 1, 2, 1)


class CAENetClassifier(StagedClassifier):
    """Five conv stages (the converting autoencoder's encoder) + classification layers; knows its decoder."""

    def __init__(self, in_chans: int, widths: tuple[int, ...], head: ClassifierHead) -> None:
        stages, cin = [], in_chans
        for w, s in zip(widths, STRIDES):
            stages.append(nn.Sequential(nn.Conv2d(cin, w, 3, s, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)))
            cin = w
        super().__init__(nn.Identity(), stages, head)
        self.in_chans, self.widths = in_chans, widths

    def converting_decoder(self) -> nn.Sequential:
        """Five transposed convolutions mirroring the encoder, ending in [0, 1] pixels."""
        layers: list[nn.Module] = []
        outs = list(reversed(self.widths[:-1])) + [self.in_chans]
        cin = self.widths[-1]
        for i, (w, s) in enumerate(zip(outs, reversed(STRIDES))):
            last = i == len(outs) - 1
            layers.append(nn.ConvTranspose2d(cin, w, 3, s, 1, output_padding=s - 1, bias=last))
            layers += [nn.Sigmoid()] if last else [nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            cin = w
        return nn.Sequential(*layers)


def _head(in_features: int, hidden: list[int], num_classes: int, dropout: float = 0.0) -> ClassifierHead:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += ([nn.Dropout(dropout)] if dropout else []) + [nn.Linear(in_features, h), nn.ReLU(inplace=True)]
        in_features = h
    return ClassifierHead(nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten()), nn.Linear(in_features, num_classes), layers)


@register_model("caenet_lenet")
def caenet_lenet(num_classes: int = 10, in_chans: int = 1) -> CAENetClassifier:
    widths = (16, 32, 32, 64, 64)
    return CAENetClassifier(in_chans, widths, _head(widths[-1] * 4, [120, 84], num_classes))


@register_model("caenet_alexnet")
def caenet_alexnet(num_classes: int = 10, in_chans: int = 3) -> CAENetClassifier:
    widths = (32, 64, 128, 128, 256)
    return CAENetClassifier(in_chans, widths, _head(widths[-1] * 4, [256, 256], num_classes, dropout=0.5))
