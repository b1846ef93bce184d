"""The generalized converting autoencoder of EncodeNet: any baseline's feature extractor as the encoder
and a decoder derived from the encoder's output shape back to the image shape."""
from __future__ import annotations

import torch
from torch import nn

from suite.modes import eval_mode


def derive_decoder(encoded: tuple[int, int, int], image: tuple[int, int, int], min_channels: int = 16,
                   max_channels: int = 256) -> nn.Sequential:
    """Decoder from an encoder output of shape (C, h, w) to an image of shape (C_in, H, W) in [0, 1].

    Each step doubles the spatial size (nearest upsampling + 3x3 convolution + BN + ReLU) and halves the
    channels (within `min_channels`..`max_channels`: the decoder is discarded after training, so it is
    kept light) while the doubled size still fits; a final resize covers sizes
    that are not a power-of-two multiple (LeNet's 5x5 -> 28x28), then a 3x3 convolution to C_in and a sigmoid.
    """
    c, h, _ = encoded
    c_in, height, width = image
    layers: list[nn.Module] = []
    size = h
    while size * 2 <= height:
        nxt = min(max(c // 2, min_channels), max_channels)
        layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, nxt, 3, padding=1, bias=False),
                   nn.BatchNorm2d(nxt), nn.ReLU(inplace=True)]
        c, size = nxt, size * 2
    if size != height or encoded[2] * (size // h) != width:
        layers.append(nn.Upsample(size=(height, width), mode="bilinear", align_corners=False))
    layers += [nn.Conv2d(c, c_in, 3, padding=1), nn.Sigmoid()]
    return nn.Sequential(*layers)


@torch.no_grad()
def output_shape(module: nn.Module, image: tuple[int, int, int]) -> tuple[int, int, int]:
    with eval_mode(module):
        shape = module(torch.zeros(2, *image)).shape[1:]
    return tuple(shape)  # type: ignore[return-value]


class ConvertingAutoencoder(nn.Module):
    """encoder (normalized image -> feature map) + decoder (feature map -> image in [0, 1]); the decoder
    is derived from the encoder's output shape unless the model brings its own (CAE-Net's)."""

    def __init__(self, encoder: nn.Module, image: tuple[int, int, int], decoder: nn.Module | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder if decoder is not None else derive_decoder(output_shape(encoder, image), image)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))
