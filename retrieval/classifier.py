"""Labelling recordings: a softmax regression probe on recording vectors, cross-validated, calibrated, stored.

A recording is one vector, the re-normalised mean of its window vectors (`clustering.recording_vectors`),
so a classifier sees what a recording sounds like overall, whatever its length. The probe is multinomial
logistic regression on standardised vectors (L-BFGS, an L2 penalty on the weights): on a few dozen
examples per label a linear probe is what BirdNET's custom classifiers and perch-hoplite's agile loop train
too. Accuracy, macro-F1 and the confusion matrix come from stratified k-fold cross-validation; one
temperature fitted on the out-of-fold logits calibrates the probabilities of the model trained on every
example.

Two guards keep the probe from answering confidently about what it never saw (softmax probabilities say only
which side of a boundary a vector falls): a silent or too-short file is "no signal", and a file far from
every training example (`novelty_threshold`: relative to how close the training examples lie to one
another, within a tenth and a half of the encoder's unrelated distance) is "unknown", whatever its probability. A
recording much longer than the training recordings is also cut into segments of their typical length, each
pooled and classified like a recording; each window takes the mean probabilities of the segments that cover
it, and runs of one label above the threshold become labelled time ranges (`exports.Span`).

A classifier is a torch file of tensors, lists, dicts and strings (loadable with
`weights_only=True`) that names the encoder it was trained on; another encoder's vectors are refused.
"""
from __future__ import annotations

import csv
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.files import atomic_write

from .clustering import pooled_vector, recording_vectors, unit_rows
from .errors import ConfigMismatchError, UsageError
from .exports import Span
from .marks import VERDICTS, marked_labels
from .results import ClassifierReport, LabelProbability, Prediction
from .store import Store
from .windows import Windows

FORMAT = "soundalike-classifier"
FORMAT_VERSION = 2  # 2: the training vectors, the encoder's unrelated distance and the segment length
LABEL_SOURCES = ("parent", "marks")  # else the path of a CSV file of path,label
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # no leading dot: no hidden or relative names
MIN_EXAMPLES = 2  # a label with fewer is left out: it cannot be both trained on and tested
FEW_EXAMPLES = 5  # a label with fewer gets a warning: its figures rest on a handful of takes
MAX_FOLDS = 5
WEIGHT_DECAY = 1e-2  # times the summed squared weights, beside the mean cross-entropy
LBFGS_ITERATIONS = 200
TOP = 3
UNKNOWN = "unknown"
NO_SIGNAL = "no signal"
# Distances to the nearest training example on the two-class test set (leave-one-out within the training set:
# at most 0.016 with logmel-stats, 0.012 with the shipped CNN): new takes 0.05-0.07 and 0.01-0.02, a take in
# some hiss 0.13 (logmel-stats); a 1 kHz tone 0.92 and 0.43 (the probe: 'clean' at 0.986 and 0.997), 0.2 s of a
# take 0.77 and 0.51. A fixed half of the unrelated distance (0.25, 0.50) let the CNN call the tone 'clean';
# 16 times the leave-one-out spread (0.25, 0.19) separates both.
NOVELTY_SPREAD = 16.0
NOVELTY_FLOOR, NOVELTY_CEILING = 0.1, 0.5  # of the encoder's unrelated distance (scores 90 and 50)
NOVELTY_SAMPLE = 2000  # training examples whose nearest neighbour measures the spread
SILENT_PEAK = 10 ** (-60 / 20)  # -60 dBFS
MIN_SIGNAL_S = 0.1
LONG_SEGMENTS = 2  # a file longer than this many training-length segments also gets labelled time ranges
MIN_RANGE_WINDOWS = 4
# Temperatures tried on the out-of-fold logits: calibration only softens. When every held-out example is
# right the likelihood keeps improving as the temperature falls, without end; allowing 0.25 made a 1 kHz tone,
# unlike both classes of the two-class test set, 'clean' with probability 1.0000 (0.986 at 1).
TEMPERATURES = np.geomspace(1.0, 20.0, 121)


@dataclass
class LinearProbe:
    """Softmax regression on standardised vectors: logits = ((vectors - mean) / scale) @ weight.T + bias."""

    weight: np.ndarray  # (labels, dimension) float64
    bias: np.ndarray  # (labels,)
    mean: np.ndarray  # (dimension,)
    scale: np.ndarray  # (dimension,)

    def logits(self, vectors: np.ndarray) -> np.ndarray:
        """(n, labels) logits of recording vectors (n, dimension)."""
        return ((vectors.astype(np.float64) - self.mean) / self.scale) @ self.weight.T + self.bias


@dataclass
class Classifier:
    """A trained probe with its labels, calibration temperature, encoder and cross-validation report."""

    name: str
    labels: list[str]
    probe: LinearProbe
    temperature: float
    encoder: dict  # {"name", "version"}
    report: ClassifierReport
    examples: np.ndarray  # (n, dimension) float32: the training recordings' unit vectors
    novelty_distance: float  # farther than this from every training example: unknown (novelty_threshold)
    segment_s: float  # median duration of the training recordings: the length of a long file's segments

    def nearest_distance(self, vectors: np.ndarray) -> np.ndarray:
        """(n,) cosine distance from each unit vector (n, dimension) to its nearest training example."""
        return np.clip(1.0 - (vectors.astype(np.float32) @ self.examples.T).max(axis=1), 0.0, 2.0)

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """(n, labels) calibrated probabilities of recording vectors (n, dimension)."""
        return softmax(self.probe.logits(vectors) / self.temperature)

    def check_encoder(self, config: dict) -> None:
        """Refuse vectors of an encoder other than the one this classifier was trained on."""
        active = {"name": config["name"], "version": str(config["version"])}
        if active != self.encoder:
            raise ConfigMismatchError(
                f"classifier {self.name!r} was trained on encoder {self.encoder['name']} v{self.encoder['version']}, "
                f"the library now uses {active['name']} v{active['version']}; train it again "
                f"(soundalike classify train --name {self.name})")

    def predict(self, path: str, duration_s: float, windows: Windows | None, min_confidence: float = 0.0,
                no_signal: str | None = None) -> Prediction:
        """The label of one file from its windows; "unknown" below min_confidence or far from every training
        example, "no signal" when `no_signal` gives a reason (signal_problem) or there are no windows. A file
        longer than LONG_SEGMENTS training recordings also gets its labelled time ranges."""
        if no_signal or windows is None or not len(windows):
            return Prediction(path=path, duration_s=duration_s, label=NO_SIGNAL, confidence=0.0, top=[],
                              classifier=self.name, note=f"no signal: {no_signal or 'no windows to classify'}")
        vector = pooled_vector(windows.vectors)
        probabilities = self.probabilities(vector)[0]
        distance = float(self.nearest_distance(vector)[0])
        order = np.argsort(-probabilities, kind="stable")[:TOP]
        confidence = round(float(probabilities[order[0]]), 4)
        label, note = self.labels[order[0]] if confidence >= min_confidence else UNKNOWN, None
        if distance > self.novelty_distance:
            label, note = UNKNOWN, (f"unlike every training example: distance {distance:.3f} to the nearest, "
                                    f"beyond {self.novelty_distance:.3f}")
        return Prediction(path=path, duration_s=duration_s, label=label, confidence=confidence, classifier=self.name,
                          top=[LabelProbability(self.labels[i], round(float(probabilities[i]), 4)) for i in order],
                          nearest_distance=round(distance, 4), note=note,
                          ranges=self.time_ranges(path, duration_s, windows, min_confidence))

    def time_ranges(self, path: str, duration_s: float, windows: Windows, min_confidence: float = 0.0) -> list[Span]:
        """Labelled time ranges of a long file (none for a file as short as LONG_SEGMENTS training recordings).

        Segments of `segment_s` (n windows) are pooled and classified like recordings; each window takes the
        mean probabilities and novelty of the segments that cover it, which smooths the labels over n windows.
        Runs of windows with one label, at least min_confidence and not novel become spans, each window owning
        the time from midway to the previous window's centre to midway to the next one's.
        """
        if duration_s <= LONG_SEGMENTS * self.segment_s or len(windows) < MIN_RANGE_WINDOWS:
            return []
        n = segment_windows(windows, self.segment_s)
        sums = np.cumsum(np.vstack([np.zeros((1, windows.vectors.shape[1])), windows.vectors.astype(np.float64)]), 0)
        segments = unit_rows(sums[n:] - sums[:-n])  # (len - n + 1, dimension): windows i..i+n-1 pooled
        per_segment = np.hstack([self.probabilities(segments), self.nearest_distance(segments)[:, None]])
        covered = np.cumsum(np.vstack([np.zeros((1, per_segment.shape[1])), per_segment]), axis=0)
        first = np.maximum(np.arange(len(windows)) - n + 1, 0)  # window j is covered by segments first..last
        last = np.minimum(np.arange(len(windows)), len(segments) - 1)
        per_window = (covered[last + 1] - covered[first]) / (last - first + 1)[:, None]
        probabilities, distances = per_window[:, :-1], per_window[:, -1]
        best, confidence = probabilities.argmax(axis=1), probabilities.max(axis=1)
        kept = (confidence >= min_confidence) & (distances <= self.novelty_distance)
        centres = (windows.start_s + windows.end_s) / 2
        edges = np.concatenate([[windows.start_s[0]], (centres[1:] + centres[:-1]) / 2,
                                [min(float(windows.end_s[-1]), duration_s)]])
        spans, start = [], 0
        for end in range(1, len(windows) + 1):  # runs [start, end) of one kept label
            if end < len(windows) and kept[end] == kept[start] and best[end] == best[start]:
                continue
            if kept[start]:
                spans.append(Span(path, round(float(edges[start]), 3), round(float(edges[end]), 3),
                                  self.labels[best[start]], round(float(confidence[start:end].mean()), 4)))
            start = end
        return spans

    def save(self, path: Path) -> None:
        """Write the classifier to `path` atomically, as plain tensors and lists (weights_only-loadable)."""
        import torch

        contents = {"format": FORMAT, "format_version": FORMAT_VERSION, "name": self.name, "labels": list(self.labels),
                    "weight": torch.from_numpy(self.probe.weight), "bias": torch.from_numpy(self.probe.bias),
                    "mean": torch.from_numpy(self.probe.mean), "scale": torch.from_numpy(self.probe.scale),
                    "temperature": float(self.temperature), "encoder": dict(self.encoder),
                    "report": self.report.to_dict(), "examples": torch.from_numpy(self.examples.astype(np.float32)),
                    "novelty_distance": float(self.novelty_distance), "segment_s": float(self.segment_s)}
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as file:
            torch.save(contents, file)

    @classmethod
    def load(cls, path: Path) -> "Classifier":
        import torch

        try:
            contents = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise
        except Exception as error:  # a damaged file: torch says pickle, zip or runtime error
            raise ConfigMismatchError(f"not a readable classifier file ({error.__class__.__name__})", path) from None
        if not isinstance(contents, dict) or contents.get("format") != FORMAT:
            raise ConfigMismatchError("not a classifier file", path)
        if contents.get("format_version") != FORMAT_VERSION:
            raise ConfigMismatchError(f"classifier format version {contents.get('format_version')} is not "
                                      f"{FORMAT_VERSION}, the one this Soundalike reads; train it again", path)
        probe = LinearProbe(*(contents[key].numpy() for key in ("weight", "bias", "mean", "scale")))
        return cls(name=contents["name"], labels=list(contents["labels"]), probe=probe,
                   temperature=float(contents["temperature"]), encoder=dict(contents["encoder"]),
                   report=ClassifierReport(**contents["report"]), examples=contents["examples"].numpy(),
                   novelty_distance=float(contents["novelty_distance"]), segment_s=float(contents["segment_s"]))


def classifier_path(folder: Path, name: str) -> Path:
    """`folder`/`name`.pt, for a name of letters, digits, '-', '_' and '.'."""
    if not NAME_PATTERN.fullmatch(name):
        raise UsageError(f"classifier name {name!r}: use letters, digits, '-', '_' and '.' (not first)")
    return folder / f"{name}.pt"


def load_classifier(folder: Path, name: str) -> Classifier:
    """The stored classifier called `name`; an unknown name is a usage error naming the ones there are."""
    try:
        return Classifier.load(classifier_path(folder, name))
    except FileNotFoundError:
        known = sorted(path.stem for path in folder.glob("*.pt")) if folder.is_dir() else []
        raise UsageError(f"no classifier named {name!r}; " + (f"trained: {', '.join(known)}" if known else
                         "train one with `soundalike classify train`")) from None


def signal_problem(samples: np.ndarray, rate: int) -> str | None:
    """Why decoded mono samples carry nothing to classify ("silent ...", "too short ..."), or None."""
    if len(samples) < MIN_SIGNAL_S * rate:
        return f"too short ({len(samples) / rate:.3f} s; {MIN_SIGNAL_S:g} s at least)"
    peak = float(np.abs(samples).max())
    if peak < SILENT_PEAK:
        return "silent (peak " + (f"{20 * np.log10(peak):.0f} dBFS)" if peak > 0 else "-inf dBFS, digital silence)")
    return None


def segment_windows(windows: Windows, segment_s: float) -> int:
    """How many consecutive windows span `segment_s` seconds (1 at least, all of them at most)."""
    window_s = float(np.median(windows.end_s - windows.start_s))
    hop_s = float(np.median(np.diff(windows.start_s))) if len(windows) > 1 else window_s
    return int(min(len(windows), max(1, round((segment_s - window_s) / max(hop_s, 1e-6)) + 1)))


def check_confidence(min_confidence: float) -> None:
    if not 0.0 <= min_confidence <= 1.0:
        raise UsageError(f"--min-confidence must be between 0 and 1, not {min_confidence:g}")


def train_classifier(store: Store, encoder_id: int, encoder_config: dict, unrelated_distance: float, folder: Path,
                     name: str = "default", labels: str | Path = "parent", seed: int = 0) -> ClassifierReport:
    """Cross-validate a probe on the labelled recordings, train it on all of them and store it as `name`."""
    started = time.perf_counter()
    path = classifier_path(folder, name)
    recording_ids, vectors, names, warnings = labelled_examples(store, encoder_id, labels)
    durations = [row.duration_s for row in store.recordings(recording_ids.tolist()) if row.duration_s]
    label_names, classes = np.unique(names, return_inverse=True)
    counts = np.bincount(classes)
    folds = int(max(2, min(MAX_FOLDS, counts.min())))
    fold_of = stratified_folds(classes, folds, seed)
    out_of_fold = np.zeros((len(classes), len(label_names)))
    for fold in range(folds):
        held_out = fold_of == fold
        out_of_fold[held_out] = fit_probe(vectors[~held_out], classes[~held_out], len(label_names)).logits(vectors[held_out])
    confusion = np.zeros((len(label_names), len(label_names)), dtype=np.int64)
    np.add.at(confusion, (classes, out_of_fold.argmax(axis=1)), 1)
    temperature = fit_temperature(out_of_fold, classes)
    encoder = {"name": encoder_config["name"], "version": str(encoder_config["version"])}
    report = ClassifierReport(
        name=name, path=str(path), encoder=encoder, labels=[str(label) for label in label_names],
        examples={str(label): int(count) for label, count in zip(label_names, counts)}, folds=folds,
        accuracy=round(float(np.trace(confusion) / confusion.sum()), 4), macro_f1=round(macro_f1(confusion), 4),
        confusion=confusion.tolist(), temperature=round(temperature, 4), warnings=warnings)
    classifier = Classifier(name=name, labels=report.labels, probe=fit_probe(vectors, classes, len(label_names)),
                            temperature=temperature, encoder=encoder, report=report, examples=vectors,
                            novelty_distance=novelty_threshold(vectors, unrelated_distance, seed),
                            segment_s=float(np.median(durations)) if durations else 0.0)
    report.elapsed_s = round(time.perf_counter() - started, 3)
    classifier.save(path)
    return report


def novelty_threshold(vectors: np.ndarray, unrelated_distance: float, seed: int = 0) -> float:
    """NOVELTY_SPREAD times the largest distance from a training example (unit rows (n, dimension); a seeded
    sample of NOVELTY_SAMPLE) to its nearest other one, kept within the floor and ceiling of the unrelated distance."""
    sample = np.random.default_rng(seed).permutation(len(vectors))[:NOVELTY_SAMPLE]
    similarities = vectors[sample].astype(np.float32) @ vectors.astype(np.float32).T  # (sample, n)
    similarities[np.arange(len(sample)), sample] = -np.inf  # not itself
    spread = float(np.clip(1.0 - similarities.max(axis=1), 0.0, 2.0).max()) if len(vectors) > 1 else 0.0
    return float(np.clip(NOVELTY_SPREAD * spread, NOVELTY_FLOOR * unrelated_distance,
                         NOVELTY_CEILING * unrelated_distance))


def labelled_examples(store: Store, encoder_id: int,
                      labels: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(recording ids (n,), vectors (n, dimension), their labels (n,), warnings) of the labels kept for training.

    `labels` is "parent" (the labels stored by `index --label-from parent`), "marks" (those labels corrected
    by the marks: marks.py) or a CSV file of path,label.
    """
    recording_ids, vectors = recording_vectors(store, encoder_id)
    warnings: list[str] = []
    if str(labels) in LABEL_SOURCES:
        stored = store.recording_labels()
        if str(labels) == "marks":
            stored = marked_labels(stored, store.marks())
        names = np.array([stored.get(int(recording_id)) or "" for recording_id in recording_ids], dtype=object)
    else:
        names, unknown = csv_labels(store, recording_ids, Path(labels))
        if unknown:
            shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
            warnings.append(f"{len(unknown)} path{'s' if len(unknown) != 1 else ''} of {labels} "
                            f"{'are' if len(unknown) != 1 else 'is'} not in the library and left out: {shown}")
    if not (names != "").any():
        raise UsageError("no labelled recordings: index with --label-from parent, mark some, or give --labels FILE.csv")
    found, counts = np.unique(names[names != ""], return_counts=True)
    for label, count in zip(found, counts):
        if count < MIN_EXAMPLES:
            warnings.append(f"label {label!r} has {count} example: left out ({MIN_EXAMPLES} at least are needed)")
        elif count < FEW_EXAMPLES:
            warnings.append(f"label {label!r} has only {count} examples: its figures are rough "
                            f"({FEW_EXAMPLES} or more advised)")
    kept = [str(label) for label, count in zip(found, counts) if count >= MIN_EXAMPLES]
    if len(kept) < 2:
        raise UsageError(f"a classifier needs two labels with {MIN_EXAMPLES} examples each at least; found "
                         + (", ".join(f"{label} ({count})" for label, count in zip(found, counts))))
    chosen = np.isin(names, kept)
    return recording_ids[chosen], vectors[chosen], names[chosen].astype(str), warnings


def csv_labels(store: Store, recording_ids: np.ndarray, path: Path) -> tuple[np.ndarray, list[str]]:
    """Labels aligned with recording_ids ('' for none) from a CSV of path,label (a header row is allowed;
    relative paths are taken from the CSV's folder), and the CSV's paths that have no stored vectors.

    A CSV of exported marks (header path,label,verdict,...) is read too: its 'wrong' rows are left out."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except OSError as error:
        raise UsageError(f"cannot read the labels ({error.strerror})", path) from None
    except UnicodeDecodeError:
        raise UsageError("the labels file is not UTF-8 text", path) from None
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    if header[:3] == ["path", "label", "verdict"]:  # marks.write_marks_csv
        rows = [row[:2] for row in rows[1:] if len(row) >= 3 and VERDICTS.get(row[2].strip().lower())]
    elif header == ["path", "label"]:
        rows = rows[1:]
    position = {int(recording_id): number for number, recording_id in enumerate(recording_ids)}
    ids_by_path = {stored: recording_id for recording_id, stored in store.all_paths()}
    names = np.full(len(recording_ids), "", dtype=object)
    unknown = []
    for line, row in enumerate(rows, start=1):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != 2:
            raise UsageError(f"row {line} has {len(row)} columns, not 2 (path,label)", path)
        given, label = Path(row[0].strip()).expanduser(), row[1].strip()
        resolved = str((given if given.is_absolute() else path.parent / given).resolve())
        recording_id = ids_by_path.get(resolved)
        if recording_id is None or recording_id not in position:
            unknown.append(row[0].strip())
        elif label:
            names[position[recording_id]] = label
    return names, unknown


def stratified_folds(classes: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """The fold (0..folds-1) of each example (n,): each label's examples shuffled (seeded) and dealt round."""
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(classes), dtype=np.int64)
    dealt = 0
    for label in np.unique(classes):
        members = rng.permutation(np.flatnonzero(classes == label))
        fold_of[members] = (dealt + np.arange(len(members))) % folds  # go on where the last label stopped
        dealt += len(members)
    return fold_of


def fit_probe(vectors: np.ndarray, classes: np.ndarray, labels: int) -> LinearProbe:
    """Softmax regression of classes (n,) on vectors (n, dimension), standardised; L-BFGS from zero weights.

    SciPy's L-BFGS-B drives a loss and gradient computed by torch on one thread. Not torch.optim: an
    optimiser's first use imports torch._dynamo, 9 s of a 14 s training on 1,000 recordings (2 busy cores).
    One thread: products this small only lose by sharing (1,000 x 128 fit, 50 labels: 4.0 s with NumPy's
    threaded BLAS on the busy machine, 0.3 s on one thread).
    """
    import torch
    from scipy.optimize import minimize

    mean = vectors.astype(np.float64).mean(axis=0)
    scale = vectors.astype(np.float64).std(axis=0)
    scale[scale < 1e-8] = 1.0  # a constant dimension carries nothing: leave it at zero
    inputs = torch.from_numpy((vectors.astype(np.float64) - mean) / scale)  # (n, dimension)
    count, dimension = inputs.shape
    targets = torch.nn.functional.one_hot(torch.from_numpy(classes.astype(np.int64)), labels).double()

    def loss(parameters: np.ndarray) -> tuple[float, np.ndarray]:
        """Mean cross-entropy + WEIGHT_DECAY * squared weights, and its gradient."""
        weight = torch.from_numpy(parameters[:-labels].reshape(labels, dimension))
        log_probabilities = torch.log_softmax(inputs @ weight.T + torch.from_numpy(parameters[-labels:]), dim=1)
        value = -(log_probabilities * targets).sum() / count + WEIGHT_DECAY * weight.square().sum()
        residual = (log_probabilities.exp() - targets) / count  # (n, labels)
        gradient = torch.cat([(residual.T @ inputs + 2 * WEIGHT_DECAY * weight).ravel(), residual.sum(dim=0)])
        return float(value), gradient.numpy()

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = minimize(loss, np.zeros(labels * (dimension + 1)), jac=True, method="L-BFGS-B",
                          options={"maxiter": LBFGS_ITERATIONS, "maxcor": 20, "gtol": 1e-9, "ftol": 1e-12})
    finally:
        torch.set_num_threads(threads)
    return LinearProbe(result.x[:-labels].reshape(labels, dimension).copy(), result.x[-labels:].copy(), mean, scale)


def fit_temperature(logits: np.ndarray, classes: np.ndarray) -> float:
    """The temperature (of TEMPERATURES) that gives the out-of-fold logits (n, labels) the least cross-entropy."""
    losses = [-np.log(softmax(logits / temperature)[np.arange(len(classes)), classes] + 1e-300).mean()
              for temperature in TEMPERATURES]
    return float(TEMPERATURES[int(np.argmin(losses))])


def macro_f1(confusion: np.ndarray) -> float:
    """Mean over labels of F1 = 2 TP / (2 TP + FP + FN), from a confusion matrix [true][predicted]."""
    true_positives = np.diag(confusion).astype(np.float64)
    denominators = confusion.sum(axis=0) + confusion.sum(axis=1)
    return float(np.mean(np.where(denominators > 0, 2 * true_positives / np.maximum(denominators, 1), 0.0)))


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)
