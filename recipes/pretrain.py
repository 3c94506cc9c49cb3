"""Pretrain the shipped CNN encoder from scratch on a corpus built by recipes/build_corpus.py.

    python recipes/build_corpus.py /tmp/corpus/train --split train --install
    python recipes/pretrain.py /tmp/corpus/train [--epochs 30] [--out retrieval/encoders/weights/cnn.pt]

Supervised contrastive on the corpus labels (speech phrase, instrument, drum, effect, synth family) plus
the instance term (two degraded views of one window), so the encoder learns both "same kind of sound"
and "same recording, degraded". Clips are labelled by their folder: <source>/<label>/<clip>.wav.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from retrieval.audio import iter_media_files  # noqa: E402
from retrieval.encoders.cnn import CNNEncoder  # noqa: E402
from retrieval.encoders.networks import MelCNN  # noqa: E402
from retrieval.features import FeatureConfig  # noqa: E402
from retrieval.training import TrainingConfig, train  # noqa: E402


def bfloat16_agreement(trained: CNNEncoder, paths: list[str]) -> float:
    """The lowest cosine between fp32 and bf16 embeddings of the windows of `paths`."""
    from retrieval.ingest import Embedder
    from retrieval.pipeline import PipelineConfig

    encoder = CNNEncoder(trained.checkpoint())
    windower = Embedder(PipelineConfig(), encoder).windower
    features = torch.cat([batch.features for path in paths for batch in windower.file(path)])
    encoder.bfloat16 = False
    full = encoder.embed(features)
    encoder.bfloat16 = True
    half = encoder.embed(features)
    return float((full * half).sum(axis=1).min())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--out", type=Path, default=Path("retrieval/encoders/weights/cnn.pt"))
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--steps-per-epoch", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--widths", default="32,64,128,256")
    parser.add_argument("--dimension", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--patience", type=int, default=6, help="stop after this many epochs without a better held-out figure")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--init", type=Path, help="start from this checkpoint (continued pretraining) instead of random weights")
    parser.add_argument("--max-seconds-per-clip", type=float, default=10.0)
    parser.add_argument("--minutes", type=float, help="stop after the epoch that passes this much training time")
    parser.add_argument("--snapshots", type=Path, help="also write every epoch's network to DIR/epoch-N.pt (to compare them later)")
    parser.add_argument("--bank-cache", type=Path, help="keep the decoded clips in this .npz for the next run (made if missing)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    paths = [str(path) for path, is_media in iter_media_files([args.corpus]) if is_media]
    labels = [f"{Path(path).parent.parent.name}/{Path(path).parent.name}" for path in paths]
    widths = tuple(int(width) for width in args.widths.split(","))
    config = TrainingConfig(epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, batch_size=args.batch_size,
                            learning_rate=args.learning_rate, supervised=True, patience=args.patience, seed=args.seed,
                            max_seconds_per_clip=args.max_seconds_per_clip,
                            time_budget_s=args.minutes * 60 if args.minutes else None)
    started = time.perf_counter()
    print(f"{len(paths)} clips, {len(set(labels))} labels; network widths {widths}, {args.dimension}-d", flush=True)

    def progress(state: dict) -> None:
        if state["step"] == config.steps_per_epoch and "record" not in state:
            print(f"epoch {state['epoch']}: loss {state['loss']:.3f} ({time.perf_counter() - started:.0f} s)", flush=True)

    if args.init:
        start = CNNEncoder.load(args.init)
        print(f"continuing from {args.init} (widths {start.widths}, {start.dimension}-d)", flush=True)
    else:
        start = CNNEncoder.from_network(MelCNN(args.dimension, widths), FeatureConfig(), "untrained", "0", 1.0, {})

    def snapshot(network, record: dict) -> None:
        print(record, flush=True)
        if args.snapshots:
            args.snapshots.mkdir(parents=True, exist_ok=True)
            CNNEncoder.from_network(network, start.features, "cnn", f"epoch-{record['epoch']}", start.unrelated_distance,
                                    {"epoch": record}).save(args.snapshots / f"epoch-{record['epoch']}.pt")

    trained, report = train(start, paths, labels, config, name="cnn", version="2" if args.init else "1", progress=progress,
                            log=lambda line: print(line, flush=True), bank_cache=args.bank_cache,
                            epoch_end=snapshot)
    for epoch in report.epochs:
        print(epoch)
    agreement = bfloat16_agreement(trained, paths[:200])
    trained.inference_precision = "bf16" if agreement >= 0.999 else "fp32"
    print(f"bf16 vs fp32 cosine on corpus windows: min {agreement:.5f} -> {trained.inference_precision}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    trained.save(args.out)
    print(f"kept epoch {report.best_epoch} (held-out top-1 {report.best_top1:.3f}), unrelated distance "
          f"{trained.unrelated_distance:.3f}; wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB) "
          f"in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
