"""Attention mechanisms as model-transforming plugins: SE, CBAM, GAM, GAM (gc) in every residual block,
BAM at the stage transitions; the transformed model then trains through the harness like any baseline.

Insertion points and reduction rates are the ones that reproduce EncodeNet Table 5's parameter counts
for CIFAR ResNet-50 with 100 classes (see baselines/attention.py and the `attention` table's notes).
Works on every registered ResNet: CIFAR ResNet8..110 (basic blocks) and ResNet18/34/50 (timm blocks).
"""
from __future__ import annotations

from typing import ClassVar
from dataclasses import dataclass

from torch import nn

from baselines import create_model
from baselines.attention import BAM, block_attention
from suite.plugins import AT_LEAST_1, Method, register_method

MECHANISMS = ("se", "cbam", "bam", "gam", "gam_gc")


def stage_channels(stage: nn.Module) -> int:
    """Output channels of a residual stage: the last BN of its last block (that block has no downsample)."""
    return [m for m in stage[-1].modules() if isinstance(m, nn.BatchNorm2d)][-1].num_features


def attention_model(model_name: str, mechanism: str, num_classes: int, in_chans: int, reduction: int = 16) -> nn.Module:
    if not model_name.startswith("resnet"):
        raise ValueError(f"attention plugins insert into ResNets; {model_name!r} is not one")
    if mechanism == "bam":  # after every stage but the last (ResNet-50: C = 256, 512, 1024)
        model = create_model(model_name, num_classes=num_classes, in_chans=in_chans)
        for i in range(model.num_stages - 1):
            model.stages[i] = nn.Sequential(*model.stages[i], BAM(stage_channels(model.stages[i]), reduction))
        return model
    return create_model(model_name, num_classes=num_classes, in_chans=in_chans,
                        attn_layer=block_attention(mechanism, reduction))


@dataclass(frozen=True)
class AttentionParams:
    ranges: ClassVar[dict[str, str]] = {"reduction": AT_LEAST_1}
    mechanism: str = "se"  # se | cbam | bam | gam | gam_gc
    reduction: int = 16

    def __post_init__(self) -> None:
        if self.mechanism not in MECHANISMS:
            raise ValueError(f"attention: unknown mechanism {self.mechanism!r}; valid: {', '.join(MECHANISMS)}")


@register_method
class Attention(Method):
    name = "attention"
    version = "1"
    family = "attention"
    Params = AttentionParams
    description = "SE / CBAM / BAM / GAM / GAM(gc) inserted into a ResNet, trained like the baseline"

    def build_model(self, spec, info, params):
        return attention_model(spec.model, params.mechanism, info.num_classes, info.in_chans, params.reduction)

    def run(self, ctx):
        model = self.build_model(ctx.spec, ctx.info, ctx.params)
        ctx.fit(model)
        return model
