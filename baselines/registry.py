"""Model registry and `create_model`, timm style; `timm:NAME` passes through to any timm model."""
from __future__ import annotations

from typing import Callable

from torch import nn

from suite.registry import Registry

ModelFn = Callable[..., nn.Module]
MODELS: Registry[ModelFn] = Registry("model")
# A model whose layout changed after cells were published gets a revision > 1; it enters those cells' keys.
REVISIONS: dict[str, int] = {}
LABELS: dict[str, str] = {}  # how tables spell a model ("ResNet20"), registered with it


def register_model(name: str, revision: int = 1, label: str | None = None) -> Callable[[ModelFn], ModelFn]:
    if revision > 1:
        REVISIONS[name] = revision
    if label:
        LABELS[name] = label
    return MODELS.register(name)


def model_revision(name: str) -> int:
    return REVISIONS.get(name, 1)


def model_label(name: str) -> str:
    """The model's name as tables print it (its registered label; a timm or unlabelled model keeps its name)."""
    return LABELS.get(name, name)


def create_model(name: str, num_classes: int = 10, in_chans: int = 3, **kwargs) -> nn.Module:
    """Build a registered model, or any timm model given as `timm:NAME`."""
    if name.startswith("timm:"):
        from baselines.timm_models import timm_classifier

        return timm_classifier(name[len("timm:"):], num_classes=num_classes, in_chans=in_chans, **kwargs)
    return MODELS.get(name)(num_classes=num_classes, in_chans=in_chans, **kwargs)


def model_names() -> list[str]:
    return MODELS.names()
