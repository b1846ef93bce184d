"""Perturbed test inputs for robustness figures (the compression paper evaluates robustness too).

Each perturbation acts on pixels in [0, 1] with a fixed seed, so every model sees the same corrupted
test set; the result is renormalised with the dataset's statistics before the model sees it.
"""
from __future__ import annotations

from typing import Callable

import torch

from suite.data import DatasetInfo


def gaussian_noise(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return x + 0.3 * torch.randn(x.shape, generator=g).to(x.device)  # sigma 0.3 of the pixel range


def salt_and_pepper(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    u = torch.rand(x.shape[0], 1, *x.shape[2:], generator=g).to(x.device)  # same pixels in every channel
    return torch.where(u < 0.05, torch.zeros_like(x), torch.where(u > 0.95, torch.ones_like(x), x))  # 10 % of pixels


PERTURBATIONS: dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = {
    "gaussian_noise_0.3": gaussian_noise,
    "salt_pepper_10pct": salt_and_pepper,
}


def perturbation(name: str, info: DatasetInfo, seed: int = 0) -> Callable[[torch.Tensor], torch.Tensor]:
    """A transform for `evaluate`: normalized batch -> pixels -> perturbed, clamped -> normalized."""
    g = torch.Generator().manual_seed(seed)
    fn = PERTURBATIONS[name]

    def apply(x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(info.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(info.std, device=x.device).view(1, -1, 1, 1)
        pixels = (fn(x * std + mean, g)).clamp(0, 1)
        return (pixels - mean) / std

    return apply
