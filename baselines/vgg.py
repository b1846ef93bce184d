"""VGG with batch norm for CIFAR, laid out as mdistiller's / RepDistiller's `vgg*_bn` (checked against
`mdistiller.models.cifar` in tests/test_mdistiller_reference.py).

The first conv block is the stem; each later block is a stage: a max pool before it (except the last,
which at 32x32 input follows the 4x4 map of the one before without pooling, as mdistiller's `pool3` is
used only at 64x64), its convs + BN + ReLU, the last ReLU kept apart so the pre-activation output is at
hand. Global average pooling and one linear layer. At 32x32 the stage outputs are 16, 8, 4, 4 pixels
wide (the last 512x4x4).
"""
from __future__ import annotations

from torch import nn

from baselines.base import ActivatedStage, StagedClassifier, pooled_linear_head
from baselines.registry import register_model

CONFIGS: dict[str, list[list[int]]] = {
    "vgg8": [[64], [128], [256], [512], [512]],
    "vgg11": [[64], [128], [256, 256], [512, 512], [512, 512]],
    "vgg13": [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    "vgg16": [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
}
# 2: the mdistiller layout above (1 pooled once more, to a 512x2x2 last map); in the cell key.
LAYOUT_REVISION = 2


def conv_block(widths: list[int], cin: int) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for w in widths:
        layers += [nn.Conv2d(cin, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
        cin = w
    layers[-1] = nn.ReLU()  # not in place: the stage's pre-activation output stays readable
    return layers


def build_vgg(config: list[list[int]], num_classes: int, in_chans: int) -> StagedClassifier:
    stem = nn.Sequential(*conv_block(config[0], in_chans))
    stages = []
    for i, widths in enumerate(config[1:], start=1):
        pool = [nn.MaxPool2d(2)] if i < len(config) - 1 else []
        stages.append(ActivatedStage(*pool, *conv_block(widths, config[i - 1][-1])))
    return StagedClassifier(stem, stages, pooled_linear_head(config[-1][-1], num_classes))


def _make(name: str) -> None:
    @register_model(name, revision=LAYOUT_REVISION, label=name.upper())
    def factory(num_classes: int = 10, in_chans: int = 3) -> StagedClassifier:
        return build_vgg(CONFIGS[name], num_classes, in_chans)

    factory.__name__ = name


for _name in CONFIGS:
    _make(_name)
