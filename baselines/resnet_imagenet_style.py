"""ResNet18/34/50 with the CIFAR stem (3x3 stride-1 conv, no max pool), built from timm's ResNet.

timm's blocks are reused so attention plugins can pass `block_args=dict(attn_layer=...)` through
`create_model`. CIFAR ResNet-50 with 100 classes has 23,705,252 parameters (EncodeNet Table 5).
"""
from __future__ import annotations

from torch import nn

from baselines.base import StagedClassifier, pooled_linear_head
from baselines.registry import register_model


def cifar_stem_resnet(timm_name: str, num_classes: int, in_chans: int, **timm_kwargs) -> StagedClassifier:
    import timm  # here, not at module level: importing timm (and torchvision with it) costs every process ~2 s

    net = timm.create_model(timm_name, pretrained=False, num_classes=num_classes, in_chans=in_chans, **timm_kwargs)
    stem_width = net.conv1.out_channels
    net.conv1 = nn.Conv2d(in_chans, stem_width, 3, 1, 1, bias=False)
    stem = nn.Sequential(net.conv1, net.bn1, net.act1)
    head = pooled_linear_head(net.num_features, num_classes)
    head.fc = net.fc
    return StagedClassifier(stem, [net.layer1, net.layer2, net.layer3, net.layer4], head)


def _make(name: str) -> None:
    @register_model(name, label=name.replace("resnet", "ResNet"))
    def factory(num_classes: int = 10, in_chans: int = 3, attn_layer=None, **timm_kwargs) -> StagedClassifier:
        if attn_layer is not None:  # timm builds it in every block, after bn3 (bn2 in basic blocks), before the add
            timm_kwargs["block_args"] = {**timm_kwargs.get("block_args", {}), "attn_layer": attn_layer}
        return cifar_stem_resnet(name, num_classes, in_chans, **timm_kwargs)

    factory.__name__ = name


for _name in ("resnet18", "resnet34", "resnet50"):
    _make(_name)
