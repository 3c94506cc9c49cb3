"""Convolutional networks over log-mel windows; only networks, no loading or training."""
from __future__ import annotations

import torch
from torch import nn


class ConvBlock(nn.Sequential):
    """3x3 convolution, batch norm, ReLU, then 2x2 max pooling: halves frequency and time."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True), nn.MaxPool2d(2))


class MelCNN(nn.Module):
    """(batch, n_mels, frames) log-mel -> (batch, dimension) embedding (not normalised).

    Input is standardised per window (mean and deviation over all bins), so loudness and the log floor
    do not matter. Four conv blocks, then mean + max pooling over frequency and time, then a linear
    projection. `widths` sets the channels of the blocks.
    """

    def __init__(self, dimension: int = 128, widths: tuple[int, ...] = (32, 64, 128, 256)) -> None:
        super().__init__()
        self.dimension, self.widths = dimension, tuple(widths)
        channels = (1,) + tuple(widths)
        self.blocks = nn.Sequential(*(ConvBlock(a, b) for a, b in zip(channels[:-1], channels[1:])))
        self.project = nn.Linear(2 * widths[-1], dimension)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        mean = features.mean(dim=(1, 2), keepdim=True)
        deviation = features.std(dim=(1, 2), keepdim=True) + 1e-5
        x = ((features - mean) / deviation).unsqueeze(1)  # (batch, 1, n_mels, frames)
        x = self.blocks(x)  # (batch, widths[-1], n_mels / 16, frames / 16)
        pooled = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)  # (batch, 2 * widths[-1])
        return self.project(pooled)
