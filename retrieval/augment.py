"""Training-time degradations of batched waveforms (batch, samples) and features, each an nn.Module.

Every module draws from the `torch.Generator` it is given, so a seeded run is reproducible. Codec
artefacts come from re-encoded copies of the training audio (see training.py), not from a module.
"""
from __future__ import annotations

import torch
from torch import nn


def _uniform(low: float, high: float, size: int, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(size, generator=generator)


def _mix(audio: torch.Tensor, addition: torch.Tensor, snr_db: tuple[float, float], p: float,
         generator: torch.Generator) -> torch.Tensor:
    """Adds `addition` to each row of `audio` with probability p, scaled to an SNR drawn from `snr_db`."""
    batch = audio.shape[0]
    power = audio.pow(2).mean(dim=1, keepdim=True).clamp(min=1e-8)
    added_power = addition.pow(2).mean(dim=1, keepdim=True).clamp(min=1e-12)
    snr = 10 ** (_uniform(*snr_db, batch, generator)[:, None] / 10)
    apply = (torch.rand(batch, 1, generator=generator) < p).float()
    return audio + apply * addition * torch.sqrt(power / (added_power * snr))


class ColouredNoise(nn.Module):
    """Adds white-to-brown noise (spectral slope 0..2) at an SNR drawn from `snr_db`, with probability p."""

    def __init__(self, generator: torch.Generator, snr_db: tuple[float, float] = (5.0, 30.0), p: float = 0.7) -> None:
        super().__init__()
        self.generator, self.snr_db, self.p = generator, snr_db, p

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        batch, length = audio.shape
        spectrum = torch.fft.rfft(torch.randn(batch, length, generator=self.generator))
        frequencies = torch.arange(spectrum.shape[1]).clamp(min=1).float()
        slope = _uniform(0.0, 2.0, batch, self.generator)[:, None]
        noise = torch.fft.irfft(spectrum / frequencies[None] ** (slope / 2), n=length)
        return _mix(audio, noise, self.snr_db, self.p, self.generator)


class RandomEqualizer(nn.Module):
    """A smooth random EQ curve (+-`max_db` over log frequency) and, with probability `phone_p`, the 300-3400 Hz
    telephone band; applied in the frequency domain."""

    def __init__(self, generator: torch.Generator, sample_rate: int = 16000, max_db: float = 9.0,
                 phone_p: float = 0.3, p: float = 0.7) -> None:
        super().__init__()
        self.generator, self.sample_rate, self.max_db, self.phone_p, self.p = generator, sample_rate, max_db, phone_p, p

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        batch, length = audio.shape
        spectrum = torch.fft.rfft(audio)
        hz = torch.linspace(0, self.sample_rate / 2, spectrum.shape[1])
        position = torch.log2(hz.clamp(min=50) / 50) / torch.log2(torch.tensor(self.sample_rate / 100))  # 0..1
        knots = _uniform(-self.max_db, self.max_db, batch * 6, self.generator).view(batch, 1, 6)
        curve_db = nn.functional.interpolate(knots, size=spectrum.shape[1], mode="linear", align_corners=True)[:, 0]
        curve_db = curve_db[:, (position * (spectrum.shape[1] - 1)).long()]
        apply = (torch.rand(batch, 1, generator=self.generator) < self.p).float()
        gain = 10 ** (apply * curve_db / 20)
        phone = (torch.rand(batch, 1, generator=self.generator) < self.phone_p).float()
        band = torch.sigmoid((hz - 300) / 40) * torch.sigmoid((3400 - hz) / 150)
        gain = gain * (phone * band[None] + (1 - phone))
        return torch.fft.irfft(spectrum * gain, n=length)


class BackgroundMix(nn.Module):
    """Mixes in another item of the batch (rolled) as background at 8-20 dB below, with probability p."""

    def __init__(self, generator: torch.Generator, snr_db: tuple[float, float] = (8.0, 20.0), p: float = 0.25) -> None:
        super().__init__()
        self.generator, self.snr_db, self.p = generator, snr_db, p

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return _mix(audio, audio.roll(1, dims=0), self.snr_db, self.p, self.generator)


class SpeedPerturb(nn.Module):
    """Resamples an item by a factor drawn from `factors`, with probability p: pitch and tempo move together,
    as in another voice or a transposed note. The length is kept (cropped, or repeated when sped up)."""

    def __init__(self, generator: torch.Generator, factors: tuple[float, float] = (0.89, 1.12), p: float = 0.3) -> None:
        super().__init__()
        self.generator, self.factors, self.p = generator, factors, p

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        batch, length = audio.shape
        out = audio.clone()
        apply = torch.rand(batch, generator=self.generator) < self.p
        factors = _uniform(*self.factors, batch, self.generator)
        for item in torch.nonzero(apply).flatten().tolist():
            size = max(2, round(length / float(factors[item])))
            stretched = nn.functional.interpolate(audio[item][None, None], size=size, mode="linear")[0, 0]
            out[item] = stretched.repeat(-(-length // size))[:length]
        return out


class Reverb(nn.Module):
    """Convolves an item with a synthetic room response (exponentially decaying noise, RT60 from `rt60_s`,
    mixed with the direct sound at a random ratio), with probability p."""

    def __init__(self, generator: torch.Generator, sample_rate: int = 16000, rt60_s: tuple[float, float] = (0.15, 0.9),
                 p: float = 0.3) -> None:
        super().__init__()
        self.generator, self.sample_rate, self.rt60_s, self.p = generator, sample_rate, rt60_s, p

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        batch, length = audio.shape
        taps = self.sample_rate // 2
        t = torch.arange(taps) / self.sample_rate
        rt60 = _uniform(*self.rt60_s, batch, self.generator)[:, None]
        response = torch.randn(batch, taps, generator=self.generator) * torch.exp(-6.9 * t[None] / rt60)
        response = response / response.norm(dim=1, keepdim=True)
        size = 1 << (length + taps - 1).bit_length()
        wet = torch.fft.irfft(torch.fft.rfft(audio, n=size) * torch.fft.rfft(response, n=size), n=size)[:, :length]
        wet = wet * audio.norm(dim=1, keepdim=True) / wet.norm(dim=1, keepdim=True).clamp(min=1e-8)
        dry = _uniform(0.2, 0.8, batch, self.generator)[:, None]
        apply = (torch.rand(batch, 1, generator=self.generator) < self.p).float()
        return audio + apply * ((dry * audio + (1 - dry) * wet) - audio)


class SpecAugment(nn.Module):
    """One frequency mask (up to `max_bands`) and one time mask (up to `max_frames`) per item, set to the
    item's mean, with probability p; input (batch, n_mels, frames)."""

    def __init__(self, generator: torch.Generator, max_bands: int = 8, max_frames: int = 12, p: float = 0.5) -> None:
        super().__init__()
        self.generator, self.max_bands, self.max_frames, self.p = generator, max_bands, max_frames, p

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        batch, bands, frames = features.shape
        out = features.clone()
        means = features.mean(dim=(1, 2))
        for item in range(batch):
            if torch.rand(1, generator=self.generator).item() >= self.p:
                continue
            width = int(torch.randint(1, self.max_bands + 1, (1,), generator=self.generator))
            start = int(torch.randint(0, bands - width + 1, (1,), generator=self.generator))
            out[item, start: start + width] = means[item]
            width = int(torch.randint(1, self.max_frames + 1, (1,), generator=self.generator))
            start = int(torch.randint(0, frames - width + 1, (1,), generator=self.generator))
            out[item, :, start: start + width] = means[item]
        return out


class WaveformAugment(nn.Sequential):
    """The default chain of waveform degradations: pitch and tempo, background, room, EQ and band-limiting, noise."""

    def __init__(self, generator: torch.Generator, sample_rate: int = 16000) -> None:
        super().__init__(SpeedPerturb(generator), BackgroundMix(generator), Reverb(generator, sample_rate),
                         RandomEqualizer(generator, sample_rate), ColouredNoise(generator))
