"""Labelling recordings: a softmax regression probe on recording vectors, cross-validated, calibrated, stored.

A recording is one vector, the re-normalised mean of its window vectors (`clustering.recording_vectors`),
so a classifier sees what a recording sounds like overall, whatever its length. The probe is multinomial
logistic regression on standardised vectors (torch, LBFGS, an L2 penalty on the weights): on a few dozen
examples per label a linear probe is what BirdNET's custom classifiers and perch-hoplite's agile loop train
too. Accuracy, macro-F1 and the confusion matrix come from stratified k-fold cross-validation; one
temperature fitted on the out-of-fold logits calibrates the probabilities of the model trained on every
example. A classifier is a torch file of tensors, lists, dicts and strings (loadable with
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

from .clustering import pooled_vector, recording_vectors
from .errors import ConfigMismatchError, SoundalikeError, UsageError
from .results import ClassifierReport, LabelProbability, Prediction
from .store import Store

FORMAT = "soundalike-classifier"
FORMAT_VERSION = 1
LABEL_SOURCES = ("parent",)  # else the path of a CSV file of path,label
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # no leading dot: no hidden or relative names
MIN_EXAMPLES = 2  # a label with fewer is left out: it cannot be both trained on and tested
FEW_EXAMPLES = 5  # a label with fewer gets a warning: its figures rest on a handful of takes
MAX_FOLDS = 5
WEIGHT_DECAY = 1e-2  # times the summed squared weights, beside the mean cross-entropy
LBFGS_ITERATIONS = 200
TOP = 3
UNKNOWN = "unknown"
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

    def predict(self, path: str, duration_s: float, window_vectors: np.ndarray,
                min_confidence: float = 0.0) -> Prediction:
        """The label of one file from its window vectors (windows, dimension); "unknown" below min_confidence."""
        if not len(window_vectors):
            raise SoundalikeError("nothing to classify: the file has no sound", path)
        probabilities = self.probabilities(pooled_vector(window_vectors))[0]
        order = np.argsort(-probabilities, kind="stable")[:TOP]
        confidence = round(float(probabilities[order[0]]), 4)
        return Prediction(path=path, duration_s=duration_s,
                          label=self.labels[order[0]] if confidence >= min_confidence else UNKNOWN,
                          confidence=confidence, classifier=self.name,
                          top=[LabelProbability(self.labels[i], round(float(probabilities[i]), 4)) for i in order])

    def save(self, path: Path) -> None:
        """Write the classifier to `path` atomically, as plain tensors and lists (weights_only-loadable)."""
        import torch

        contents = {"format": FORMAT, "format_version": FORMAT_VERSION, "name": self.name, "labels": list(self.labels),
                    "weight": torch.from_numpy(self.probe.weight), "bias": torch.from_numpy(self.probe.bias),
                    "mean": torch.from_numpy(self.probe.mean), "scale": torch.from_numpy(self.probe.scale),
                    "temperature": float(self.temperature), "encoder": dict(self.encoder),
                    "report": self.report.to_dict()}
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
                   report=ClassifierReport(**contents["report"]))


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


def check_confidence(min_confidence: float) -> None:
    if not 0.0 <= min_confidence <= 1.0:
        raise UsageError(f"--min-confidence must be between 0 and 1, not {min_confidence:g}")


def train_classifier(store: Store, encoder_id: int, encoder_config: dict, folder: Path, name: str = "default",
                     labels: str | Path = "parent", seed: int = 0) -> ClassifierReport:
    """Cross-validate a probe on the labelled recordings, train it on all of them and store it as `name`."""
    started = time.perf_counter()
    path = classifier_path(folder, name)
    vectors, names, warnings = labelled_examples(store, encoder_id, labels)
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
                            temperature=temperature, encoder=encoder, report=report)
    report.elapsed_s = round(time.perf_counter() - started, 3)
    classifier.save(path)
    return report


def labelled_examples(store: Store, encoder_id: int, labels: str | Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(recording vectors (n, dimension), their labels (n,), warnings) of the labels kept for training.

    `labels` is "parent" (the labels stored by `index --label-from parent`) or a CSV file of path,label.
    """
    recording_ids, vectors = recording_vectors(store, encoder_id)
    warnings: list[str] = []
    if str(labels) == "parent":
        stored = store.recording_labels()
        names = np.array([stored.get(int(recording_id)) or "" for recording_id in recording_ids], dtype=object)
    else:
        names, unknown = csv_labels(store, recording_ids, Path(labels))
        if unknown:
            shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
            warnings.append(f"{len(unknown)} path{'s' if len(unknown) != 1 else ''} of {labels} "
                            f"{'are' if len(unknown) != 1 else 'is'} not in the library and left out: {shown}")
    if not (names != "").any():
        raise UsageError("no labelled recordings: index with --label-from parent, or give --labels FILE.csv")
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
    return vectors[chosen], names[chosen].astype(str), warnings


def csv_labels(store: Store, recording_ids: np.ndarray, path: Path) -> tuple[np.ndarray, list[str]]:
    """Labels aligned with recording_ids ('' for none) from a CSV of path,label (a header row is allowed;
    relative paths are taken from the CSV's folder), and the CSV's paths that have no stored vectors."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except OSError as error:
        raise UsageError(f"cannot read the labels ({error.strerror})", path) from None
    except UnicodeDecodeError:
        raise UsageError("the labels file is not UTF-8 text", path) from None
    if rows and [cell.strip().lower() for cell in rows[0]] == ["path", "label"]:
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
    """Softmax regression of classes (n,) on vectors (n, dimension), standardised; LBFGS from zero weights."""
    import torch

    mean = vectors.astype(np.float64).mean(axis=0)
    scale = vectors.astype(np.float64).std(axis=0)
    scale[scale < 1e-8] = 1.0  # a constant dimension carries nothing: leave it at zero
    inputs = torch.from_numpy((vectors - mean) / scale)
    targets = torch.from_numpy(classes.astype(np.int64))
    linear = torch.nn.Linear(inputs.shape[1], labels, dtype=torch.float64)
    torch.nn.init.zeros_(linear.weight)
    torch.nn.init.zeros_(linear.bias)
    optimiser = torch.optim.LBFGS(linear.parameters(), lr=1.0, max_iter=LBFGS_ITERATIONS, history_size=20,
                                  tolerance_grad=1e-9, tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimiser.zero_grad()
        value = torch.nn.functional.cross_entropy(linear(inputs), targets) + WEIGHT_DECAY * linear.weight.square().sum()
        value.backward()
        return value

    optimiser.step(loss)
    return LinearProbe(linear.weight.detach().numpy().copy(), linear.bias.detach().numpy().copy(), mean, scale)


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
