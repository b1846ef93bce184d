"""Any timm model as `timm:NAME`, adapted to the suite's model interface."""
from __future__ import annotations

import torch
from torch import nn

from baselines.base import Features


class _Call(nn.Module):
    """Wraps one bound method of the timm model as a module (for `split`)."""

    def __init__(self, owner: "TimmClassifier", which: str) -> None:
        super().__init__()
        self._owner = [owner]  # a list so the owner is not registered as a child module twice
        self.which = which

    def forward(self, x):
        return getattr(self._owner[0], self.which)(x)


class TimmClassifier(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    @property
    def num_classes(self) -> int:
        return self.net.num_classes

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.net.forward_head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        if not hasattr(self.net, "forward_intermediates"):
            raise NotImplementedError(f"timm model {type(self.net).__name__} exposes no forward_intermediates")
        return list(self.net.forward_intermediates(x, intermediates_only=True))

    def forward_with_features(self, x: torch.Tensor) -> Features:
        features = self.net.forward_features(x)
        embedding = self.net.forward_head(features, pre_logits=True)
        return Features([features], embedding, self.net.get_classifier()(embedding))

    def split(self, at: int | None = None) -> tuple[nn.Module, nn.Module]:
        if at is not None:
            raise NotImplementedError("timm models split only at the feature extractor / head boundary")
        return _Call(self, "forward_features"), _Call(self, "forward_head")


def timm_classifier(name: str, num_classes: int, in_chans: int, **kwargs) -> TimmClassifier:
    import timm  # here, not at module level (the package imports every module): timm and torchvision take ~2 s

    return TimmClassifier(timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_chans, **kwargs))
