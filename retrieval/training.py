"""Contrastive training of the CNN encoder on a set of recordings, with or without labels.

Two degraded views of the same window are positives (NT-Xent). With labels (`supervised`), windows of
the same label are positives too (a supervised contrastive term added to the instance term, so the
encoder keeps telling copies of one clip from other clips of its label). Views differ by time shift,
codec (re-encoded copies of every clip: AAC, MP3, Opus at low bit rates), background mix, EQ and
telephone band, coloured noise and SpecAugment masks. A held-out part of the clips picks the best epoch.
"""
from __future__ import annotations

import copy
import math
import os
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import av
import numpy as np
import torch

from .audio import load_audio, reencode
from .augment import SpecAugment, WaveformAugment
from .encoders.cnn import CNNEncoder
from .encoders.networks import MelCNN
from .errors import SoundalikeError, UsageError
from .features import FeatureConfig, MelPower, compress
from .pipeline import repeat_to

CODECS = (("mp4", "aac", 32000), ("mp3", "libmp3lame", 32000), ("ogg", "libopus", 12000))
MINED_NEIGHBOURS = 3  # a mined positive is among each other's this many nearest clips
JUDGED_CLIPS = 20  # other-moment top-1 decides when this many clips have two separate windows


@dataclass(frozen=True)
class TrainingConfig:
    """How to train; the defaults fine-tune the shipped encoder on a 1,000-clip library in minutes."""

    epochs: int = 10
    steps_per_epoch: int = 50
    batch_size: int = 64  # pairs per step
    learning_rate: float = 3e-4
    temperature: float = 0.1
    supervised: bool = False
    validation_fraction: float = 0.1
    patience: int = 3
    max_seconds_per_clip: float = 10.0  # training windows come from each clip's first seconds
    shift_s: float = 0.25  # views of a window differ by up to this time shift
    # Self-supervised fine-tuning also keeps embeddings near the starting encoder's (1 - cosine), so that
    # adapting to a library's sound undoes less of what "alike" meant: label mAP@10 on the benchmark went
    # 0.560 -> 0.518 without it, 0.526 with it (robustness rose either way; benchmarks/README.md).
    anchor_weight: float = 1.0
    # Self-supervised: the share of pairs whose second view is cut from a mined neighbour of the clip (a mutual
    # nearest neighbour under the starting encoder, among MINED_NEIGHBOURS) instead of from the clip itself, so
    # the library's own "same kind" pairs are pulled together, not only copies of one clip.
    neighbour_positives: float = 0.0
    seed: int = 0
    time_budget_s: float | None = None  # stop after the epoch that passes this much training time


@dataclass
class TrainingReport:
    """Loss and held-out top-1 per epoch, which epoch was kept, and whether it beats the starting encoder."""

    epochs: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_top1: float = 0.0
    start_top1: float = 0.0  # the starting encoder's held-out top-1
    clips: int = 0
    validation_clips: int = 0
    elapsed_s: float = 0.0
    judged_by: str = ""  # the label-free figure (or, supervised, held-out label accuracy) that decided
    start_figure: float = 0.0
    trained_figure: float = 0.0
    improved: bool = False  # the trained encoder beats the starting one on that figure

    def to_dict(self) -> dict:
        return asdict(self)


def _load_clip(path: str, sample_rate: int, window: int, max_seconds: float) -> list[np.ndarray] | None:
    """A clip peak-normalised to 0.5 and its codec copies, or None when unreadable or silent."""
    try:
        samples = load_audio(path, sample_rate, max_duration_s=max_seconds)
    except SoundalikeError:
        return None
    if len(samples) < window:
        samples = repeat_to(samples, window)
    peak = float(np.max(np.abs(samples)))
    if peak < 1e-4:
        return None
    samples = samples / peak * 0.5
    copies = [samples]
    for container_format, codec, bit_rate in CODECS:
        try:
            copies.append(reencode(samples, sample_rate, container_format, codec, bit_rate))
        except (av.FFmpegError, ValueError):
            continue
    return copies


class ClipBank:
    """Decoded training clips (and their codec copies) with the window offsets worth sampling.

    `cache` (a .npz path) keeps the decoded bank between runs: a corpus of hours takes longer to decode
    and re-encode than an hour of training, so a resumed or repeated pretraining loads it instead.
    """

    def __init__(self, paths: Sequence[str], labels: Sequence[str | None], features: FeatureConfig,
                 window: int, max_seconds: float, progress: Callable[[str], None] | None = None,
                 cache: Path | None = None) -> None:
        self.variants: list[list[np.ndarray]] = []
        self.labels: list[str | None] = []
        self.window = window
        rate = features.sample_rate
        # What the cache was made from: another list of clips or clip length needs a new cache.
        self.source = f"{zlib.crc32(chr(0).join(map(str, paths)).encode()):08x}:{len(paths)}:{max_seconds}:{window}"
        if cache is not None and Path(cache).exists():
            self._load(Path(cache), progress)
        else:
            jobs = [(str(path), rate, window, max_seconds) for path in paths]
            # Decoding and re-encoding dominate start-up; PyAV releases the GIL in its codecs, so two threads
            # do it about twice as fast (a process pool once hung at its last chunk on a 19,099-clip corpus).
            with ThreadPoolExecutor(min(2, os.cpu_count() or 1)) as pool:
                self._collect(pool.map(lambda job: _load_clip(*job), jobs), labels, progress, len(jobs))
            if cache is not None:
                self._save(Path(cache))
        # Offsets (in samples) of windows that are not silent, on a 0.1 s grid.
        self.offsets = []
        for copies in self.variants:
            clean = copies[0]
            starts = np.arange(0, len(clean) - window + 1, rate // 10)
            rms = np.array([np.sqrt(np.mean(clean[s: s + window] ** 2)) for s in starts])
            loud = starts[rms > 0.05 * rms.max()] if len(starts) else np.zeros(1, int)
            self.offsets.append(loud if len(loud) else starts[:1])

    def _collect(self, loaded, labels: Sequence[str | None], progress, total: int) -> None:
        for number, (copies, label) in enumerate(zip(loaded, labels)):
            if copies is not None:
                self.variants.append(copies)
                self.labels.append(label)
            if progress and (number + 1) % 500 == 0:
                progress(f"decoded {number + 1}/{total} clips")

    def _save(self, path: Path) -> None:
        """All copies as float16 in one array, with their lengths; written to a temporary file, then renamed."""
        lengths = np.array([len(audio) for copies in self.variants for audio in copies], dtype=np.int64)
        counts = np.array([len(copies) for copies in self.variants], dtype=np.int64)
        audio = np.concatenate([audio for copies in self.variants for audio in copies]).astype(np.float16)
        labels = np.array(["" if label is None else label for label in self.labels], dtype=str)
        partial = path.with_name(path.name + ".partial.npz")
        np.savez(partial, audio=audio, lengths=lengths, counts=counts, labels=labels, labelled=np.array(
            [label is not None for label in self.labels]), source=np.array(self.source))
        os.replace(partial, path)

    def _load(self, path: Path, progress) -> None:
        with np.load(path) as saved:
            if str(saved["source"]) != self.source:
                raise UsageError(f"{path}: a cache of other clips or settings; delete it to decode these clips")
            audio, lengths, counts = saved["audio"], saved["lengths"], saved["counts"]
            labels, labelled = saved["labels"], saved["labelled"]
        pieces = np.split(audio, np.cumsum(lengths)[:-1])
        at = 0
        for count, label, has_label in zip(counts, labels, labelled):
            self.variants.append([piece.astype(np.float32) for piece in pieces[at: at + count]])
            self.labels.append(str(label) if has_label else None)
            at += count
        if progress:
            progress(f"loaded {len(self.variants)} decoded clips from {path}")

    def __len__(self) -> int:
        return len(self.variants)

    def views(self, clip_ids: np.ndarray, rng: np.random.Generator, shift: int,
              partners: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Two views (batch, window) of one random window of each clip: shifted, from random codec copies.
        With `partners` (a clip id per item), the second view is a random window of the partner instead."""
        def cut(copies: list[np.ndarray], start: int) -> np.ndarray:  # a window of a random copy, shifted
            audio = copies[rng.integers(len(copies))]
            at = int(np.clip(start + rng.integers(-shift, shift + 1), 0, len(audio) - self.window))
            return audio[at: at + self.window]

        first, second = [], []
        for number, clip in enumerate(clip_ids):
            start = int(rng.choice(self.offsets[clip]))
            first.append(cut(self.variants[clip], start))
            partner = clip if partners is None else int(partners[number])
            if partner != clip:
                start = int(rng.choice(self.offsets[partner]))
            second.append(cut(self.variants[partner], start))
        return np.stack(first), np.stack(second)


def contrastive_loss(embeddings: torch.Tensor, groups: torch.Tensor, temperature: float) -> torch.Tensor:
    """Supervised-contrastive loss over (n, d) unit embeddings: same-group pairs are positives.

    With groups that only pair each view with its twin, this is NT-Xent (SimCLR).
    """
    logits = embeddings @ embeddings.T / temperature
    eye = torch.eye(len(embeddings), dtype=torch.bool)
    logits = logits.masked_fill(eye, -1e9)
    positives = (groups[:, None] == groups[None, :]) & ~eye
    log_probability = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    return -(log_probability * positives).sum(dim=1).div(positives.sum(dim=1).clamp(min=1)).mean()


class Trainer:
    """Trains a MelCNN from a starting state; `fit` returns the best checkpoint by held-out top-1."""

    def __init__(self, network: MelCNN, features: FeatureConfig, config: TrainingConfig, window_s: float = 1.0) -> None:
        self.network, self.features, self.config = network, features, config
        self.window = round(window_s * features.sample_rate)
        generator = torch.Generator().manual_seed(config.seed)
        self.augment = WaveformAugment(generator, features.sample_rate)
        self.spec_augment = SpecAugment(generator)
        self.mel = MelPower(features)
        self.rng = np.random.default_rng(config.seed)
        self.anchor = None
        if config.anchor_weight > 0 and not config.supervised:
            self.anchor = copy.deepcopy(network).eval()
            self.anchor.requires_grad_(False)

    def featurize(self, audio: np.ndarray, augment: bool) -> torch.Tensor:
        waves = torch.from_numpy(audio)
        if augment:
            waves = self.augment(waves)
        features = compress(self.mel(waves), self.features)
        return self.spec_augment(features) if augment else features

    def fit(self, bank: ClipBank, progress: Callable[[dict], None] | None = None,
            epoch_end: Callable[[MelCNN, dict], None] | None = None) -> TrainingReport:
        """Train; `progress(state)` after every step ({"epoch", "epochs", "step", "steps", "loss", "elapsed_s"}) and
        after each epoch's validation (the same with "record": that epoch's report entry); `epoch_end(network,
        record)` then too (a recipe's snapshots)."""
        config = self.config
        if len(bank) < 4:
            raise UsageError(f"training needs at least 4 readable clips, found {len(bank)}")
        label_ids = {label: number for number, label in enumerate(sorted({l for l in bank.labels if l is not None}))}
        labels = np.array([label_ids.get(label, -1) for label in bank.labels])
        validation, training = self.split(labels)
        optimizer = torch.optim.AdamW(self.network.parameters(), lr=config.learning_rate, weight_decay=1e-4)
        total_steps = config.epochs * config.steps_per_epoch
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: min(1.0, (step + 1) / 20) * 0.5 * (1 + math.cos(math.pi * step / total_steps)))
        report = TrainingReport(clips=len(training), validation_clips=len(validation))
        started = time.perf_counter()
        best_state = {key: value.clone() for key, value in self.network.state_dict().items()}
        best = self.validate(bank, validation, training, labels)
        report.best_top1 = report.start_top1 = best["top1"]
        self.start_validation = best
        stale = 0
        shift = round(config.shift_s * self.features.sample_rate)
        mined = self.mine(bank, training) if config.neighbour_positives > 0 and not config.supervised else {}
        for epoch in range(1, config.epochs + 1):
            self.network.train()
            losses = []
            for step in range(config.steps_per_epoch):
                clips = self.rng.choice(training, size=min(config.batch_size, len(training)), replace=False)
                first, second = bank.views(clips, self.rng, shift, self.partners(clips, mined) if mined else None)
                views = torch.cat([self.featurize(first, True), self.featurize(second, True)])
                embeddings = torch.nn.functional.normalize(self.network(views), dim=1)
                loss = self.loss(embeddings, torch.from_numpy(clips), labels[clips])
                if self.anchor is not None:
                    with torch.no_grad():
                        anchored = torch.nn.functional.normalize(self.anchor(views), dim=1)
                    loss = loss + config.anchor_weight * (1 - (embeddings * anchored).sum(dim=1)).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                scheduler.step()
                losses.append(loss.item())
                state = {"epoch": epoch, "epochs": config.epochs, "step": step + 1, "steps": config.steps_per_epoch,
                         "loss": float(np.mean(losses[-10:])), "elapsed_s": time.perf_counter() - started}
                if progress:
                    progress(state)
            held_out = self.validate(bank, validation, training, labels)
            report.epochs.append({"epoch": epoch, "loss": round(float(np.mean(losses)), 4),
                                  **{f"validation_{key}": round(value, 4) for key, value in held_out.items()}})
            if progress:
                progress({**state, "elapsed_s": time.perf_counter() - started, "record": report.epochs[-1]})
            if epoch_end:
                epoch_end(self.network, report.epochs[-1])
            if self.better(held_out, best):
                best, report.best_top1, report.best_epoch, stale = held_out, held_out["top1"], epoch, 0
                best_state = {key: value.clone() for key, value in self.network.state_dict().items()}
            else:
                stale += 1
                if stale >= config.patience:
                    break
            if config.time_budget_s is not None and time.perf_counter() - started > config.time_budget_s:
                break
        self.network.load_state_dict(best_state)
        self.network.eval()
        report.elapsed_s = round(time.perf_counter() - started, 1)
        return report

    def other_moment_top1(self, bank: ClipBank, clips: np.ndarray) -> tuple[float, int]:
        """(top-1, clips measured): how often a window of a clip finds a later, non-overlapping window of the same
        clip among such windows of every clip long enough to have two: "same source, other audio", the
        label-free neighbour of label retrieval. Windows are the loudest on each side of the clip's middle."""
        firsts, seconds = [], []
        for clip in clips:
            clean, window = bank.variants[clip][0], bank.window
            if len(clean) < 2 * window:
                continue
            starts = np.arange(0, len(clean) - window + 1, window // 4)
            rms = np.array([np.mean(clean[at: at + window] ** 2) for at in starts])
            middle = (len(clean) - window) / 2
            early, late = starts <= middle - window / 2, starts >= middle + window / 2
            if not early.any() or not late.any():
                continue
            first = starts[early][np.argmax(rms[early])]
            second = starts[late][np.argmax(rms[late])]
            if second - first < window:
                continue
            firsts.append(clean[first: first + window])
            seconds.append(clean[second: second + window])
        if len(firsts) < 2:
            return float("nan"), len(firsts)
        query, gallery = self.embed(np.stack(firsts), False), self.embed(np.stack(seconds), False)
        found = torch.argmax(query @ gallery.T, dim=1)
        return float((found == torch.arange(len(firsts))).float().mean()), len(firsts)

    def mine(self, bank: ClipBank, clips: np.ndarray) -> dict[int, np.ndarray]:
        """Mutual nearest neighbours among `clips` under the current network: clip -> its mined partners.

        Each clip is the mean of three clean windows; two clips are partners when each is among the other's
        MINED_NEIGHBOURS nearest."""
        rng = np.random.default_rng(4321)
        vectors = sum(self.embed(bank.views(clips, rng, 0)[0], augment=False) for _ in range(3))
        vectors = torch.nn.functional.normalize(vectors, dim=1)
        similarity = vectors @ vectors.T
        similarity.fill_diagonal_(-2.0)
        nearest = torch.topk(similarity, min(MINED_NEIGHBOURS, len(clips) - 1), dim=1).indices.numpy()
        near = np.zeros((len(clips), len(clips)), dtype=bool)
        near[np.repeat(np.arange(len(clips)), nearest.shape[1]), nearest.ravel()] = True
        mutual = near & near.T
        return {int(clips[row]): clips[np.flatnonzero(mutual[row])] for row in range(len(clips)) if mutual[row].any()}

    def partners(self, clips: np.ndarray, mined: dict[int, np.ndarray]) -> np.ndarray:
        """For each clip, with probability neighbour_positives, a random one of its mined partners; else itself."""
        chosen = clips.copy()
        for number, clip in enumerate(clips):
            found = mined.get(int(clip))
            if found is not None and self.rng.random() < self.config.neighbour_positives:
                chosen[number] = self.rng.choice(found)
        return chosen

    @torch.no_grad()
    def embed(self, audio: np.ndarray, augment: bool) -> torch.Tensor:
        self.network.eval()
        return torch.cat([torch.nn.functional.normalize(self.network(self.featurize(audio[i: i + 256], augment)), dim=1)
                          for i in range(0, len(audio), 256)])

    def split(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(held-out, training) clip indices. Supervised: one clip of each label with 3+ clips, so held-out
        clips can be matched to their label's training clips; otherwise a stable pseudo-random part."""
        order = sorted(range(len(labels)), key=lambda clip: zlib.crc32(str(clip).encode()) ^ self.config.seed)
        held = max(2, int(len(labels) * self.config.validation_fraction))
        if self.config.supervised:
            counts = np.bincount(labels[labels >= 0]) if (labels >= 0).any() else np.zeros(0, int)
            chosen, seen = [], set()
            for clip in order:
                if labels[clip] >= 0 and counts[labels[clip]] >= 3 and labels[clip] not in seen and len(chosen) < held:
                    chosen.append(clip)
                    seen.add(labels[clip])
            if len(chosen) >= 2:
                rest = [clip for clip in order if clip not in set(chosen)]
                return np.array(chosen), np.array(rest)
        return np.array(order[:held]), np.array(order[held:])

    def better(self, candidate: dict, best: dict) -> bool:
        """Supervised: higher held-out label accuracy (ties: lower loss); otherwise lower held-out loss."""
        if self.config.supervised and candidate["label_top1"] != best["label_top1"]:
            return candidate["label_top1"] > best["label_top1"]
        return candidate["loss"] < best["loss"]

    def validate(self, bank: ClipBank, clips: np.ndarray, training: np.ndarray, labels: np.ndarray) -> dict:
        """Held-out measures, with the same degraded views every epoch (fixed seed).

        loss: the training objective on held-out pairs. top1: degraded views finding a clean window of their
        own clip among 4 windows of every held-out clip (it saturates quickly on small libraries). label_top1
        (supervised): held-out clips whose nearest training clip has their label.
        """
        state = self.rng.bit_generator.state
        generator_state = self.augment[0].generator.get_state()
        rng = np.random.default_rng(1234)
        self.augment[0].generator.manual_seed(1234)
        repeated = np.repeat(clips, 4)
        clean, degraded = bank.views(repeated, rng, round(self.config.shift_s * self.features.sample_rate / 2))
        reference = self.embed(clean, augment=False)
        queries = self.embed(degraded, augment=True)
        found = torch.from_numpy(repeated)[torch.argmax(queries @ reference.T, dim=1)]
        top1 = float((found == torch.from_numpy(repeated)).float().mean())
        loss = float(self.loss(torch.cat([reference, queries]), torch.from_numpy(repeated), labels[repeated]))
        measures = {"loss": loss, "top1": top1}
        if self.config.supervised:
            known = training[labels[training] >= 0][:2000]
            train_clean, _ = bank.views(known, rng, 0)
            nearest = torch.argmax(reference @ self.embed(train_clean, augment=False).T, dim=1).numpy()
            measures["label_top1"] = float(np.mean(labels[known][nearest] == labels[repeated]))
        self.rng.bit_generator.state = state
        self.augment[0].generator.set_state(generator_state)
        return measures

    def loss(self, embeddings: torch.Tensor, clips: torch.Tensor, clip_labels: np.ndarray) -> torch.Tensor:
        """Instance term (views of one clip are positives), plus the label term when supervised."""
        instance = clips.repeat(2)
        loss = contrastive_loss(embeddings, instance, self.config.temperature)
        if self.config.supervised:
            labelled = torch.from_numpy(clip_labels).repeat(2)
            groups = torch.where(labelled >= 0, labelled, -1 - instance)
            loss = loss + contrastive_loss(embeddings, groups, self.config.temperature)
        return loss

    def unrelated_distance(self, bank: ClipBank, clips: np.ndarray) -> float:
        """Median cosine distance between windows of different clips (of different labels when labelled)."""
        rng = np.random.default_rng(99)
        clean, _ = bank.views(clips, rng, 0)
        embeddings = self.embed(clean, augment=False)
        distances = 1 - embeddings @ embeddings.T
        labels = np.array([bank.labels[clip] for clip in clips], dtype=object)
        different = ~np.eye(len(clips), dtype=bool) & ~((labels[:, None] == labels[None, :]) & (labels[:, None] != None))  # noqa: E711
        return float(torch.median(distances[torch.from_numpy(different)]))


def train(start: CNNEncoder, paths: Sequence[str], labels: Sequence[str | None], config: TrainingConfig, name: str,
          version: str, window_s: float = 1.0, progress: Callable[[dict], None] | None = None,
          log: Callable[[str], None] | None = None, bank_cache: Path | None = None,
          epoch_end: Callable[[MelCNN, dict], None] | None = None) -> tuple[CNNEncoder, TrainingReport]:
    """Train a copy of `start` on the clips at `paths` (labels used when `config.supervised`).

    `bank_cache`: a .npz that keeps the decoded clips for the next run (see ClipBank).

    Returns the trained encoder, called `name` at `version`, and the report; `start` is left as it was.
    """
    torch.manual_seed(config.seed)
    features = start.features
    network = copy.deepcopy(start.network)
    bank = ClipBank(paths, labels, features, round(window_s * features.sample_rate), config.max_seconds_per_clip, log,
                    bank_cache)
    trainer = Trainer(network, features, config, window_s)
    report = trainer.fit(bank, progress, epoch_end)
    judge(report, trainer, Trainer(copy.deepcopy(start.network), features, config, window_s), bank)
    sample = np.random.default_rng(0).choice(len(bank), size=min(len(bank), 400), replace=False)
    unrelated = trainer.unrelated_distance(bank, sample)
    trained = CNNEncoder.from_network(network, features, name, version, unrelated,
                                      {"clips": len(bank), "supervised": config.supervised, "config": asdict(config),
                                       "report": report.to_dict()})
    return trained, report


def judge(report: TrainingReport, trained: Trainer, start: Trainer, bank: ClipBank) -> None:
    """Fill in whether training beat the starting encoder, and by which figure.

    Supervised: held-out label accuracy (early stopping starts from the starting encoder's, so a kept epoch
    beats it). Otherwise other-moment top-1 over the whole library (Trainer.other_moment_top1: a window
    finding another moment of its own clip, which training never pairs), when JUDGED_CLIPS clips are long
    enough; else the held-out top-1 of degraded copies.
    """
    if trained.config.supervised and "label_top1" in trained.start_validation:
        report.judged_by = "held-out label accuracy"
        report.start_figure = trained.start_validation["label_top1"]
        kept = next((epoch for epoch in report.epochs if epoch["epoch"] == report.best_epoch), None)
        report.trained_figure = kept["validation_label_top1"] if kept else report.start_figure
        report.improved = report.best_epoch > 0
        return
    everything = np.arange(len(bank))
    before, clips = start.other_moment_top1(bank, everything)
    if clips >= JUDGED_CLIPS:
        after, _ = trained.other_moment_top1(bank, everything)
        report.judged_by = f"other-moment top-1 over {clips} clips"
    else:
        before, after = report.start_top1, report.best_top1
        report.judged_by = "held-out copy top-1"
    report.start_figure, report.trained_figure = round(before, 4), round(after, 4)
    report.improved = after > before
