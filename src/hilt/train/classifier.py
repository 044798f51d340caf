"""Text classifiers from reviewed labels (guardrail, violation, refusal).

Features: the L2-normalised MiniLM sentence embedding of the text (optionally the
prompt and the text together), plus a few standardised cheap refusal features
(:mod:`hilt.train.refusal`). Head (``ClassifierConfig.head``):

* ``stacked`` (default): :class:`hilt.train.stacking.StackedHead` — a logistic
  regression on the embedding, then a logistic regression on its out-of-fold logit
  and the cheap features (a Platt-style calibration that also sees those features);
* ``linear``: one L2-regularised logistic regression on all features, calibrated with
  Platt scaling (Platt, 1999) inside cross-validation
  (``sklearn.calibration.CalibratedClassifierCV``).

``predict_proba`` is a Platt-style probability calibrated under the head's class
weights: with the default ``class_weight="balanced"`` that is a probability for a 50/50
prior of the classes, not for the training prevalence (``class_weight=None`` gives the
latter). The calibrated 0.5 threshold below is then the point of equal class-conditional
likelihood, not the most-accurate cut at the training prevalence.

Options: ``context_similarity`` (with contexts, e.g. prompts) adds the cosine
similarity of the context to the text's opening and to its first ``max_length``
tokens to the cheap features instead of letting the encoder read the context;
``deduplicate`` gives identical training texts one unit of weight in all;
``harmful_request_negation`` (with one flag per text: was the request harmful?) adds
whether the reply's first two sentences hold a negation cue, for harmful requests only.
Whether a reply refuses depends on what was asked: "There is no reason why they should
not hold office" declines a request to argue for discrimination, but answers a
harmless trick question about cucumbers holding office, and XSTest's annotators label
the two that way.

Binary decision threshold: chosen on out-of-fold probabilities of the training data
(every item is scored by a model that did not see it, so they act as validation data).
The folds are grouped by text (copies of one text fall in one fold), and the threshold
and rates are computed over distinct rows (identical text, context, flag and label count
once), so ``validation`` reports ``n_distinct`` beside ``n``.
The rule is one of

* ``calibrated`` (default): 0.5 on that probability. Thresholds tuned for
  accuracy on one population of texts moved the wrong way on another in the XSTest
  cross-model runs (``docs/train.md``), so the default does not tune;
* ``accuracy``: the threshold with the highest out-of-fold accuracy;
* ``target_fpr = a``: the lowest threshold whose out-of-fold false-positive rate ≤ a
  (the fewest misses subject to the false-alarm budget);
* ``target_fnr = b``: the highest threshold whose out-of-fold false-negative rate ≤ b.

Both rates at the chosen threshold are stored with Wilson intervals.
"""

from __future__ import annotations

import json
import shutil
import weakref
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hilt.errors import InputError
from hilt.train.classifier_calibration import calibration_report
from hilt.train.encoder import DEFAULT_ENCODER, SentenceEncoder
from hilt.train.refusal import CHEAP_FEATURE_NAMES, cheap_refusal_features
from hilt.train.stats import rate

MODEL_FILE = "classifier.joblib"
CONFIG_FILE = "classifier.json"


@dataclass
class ClassifierConfig:
    encoder: str = DEFAULT_ENCODER
    max_length: int = 128
    opening_chars: int | None = None
    cheap_features: bool = True
    head: str = "stacked"
    regularisation_c: float = 1.0
    calibration: str = "sigmoid"
    folds: int = 5
    positive_label: str | None = None
    target_fpr: float | None = None
    target_fnr: float | None = None
    threshold_rule: str = "calibrated"
    finetune_epochs: int = 0
    finetune_learning_rate: float = 3e-5
    class_weight: str | None = "balanced"
    # add the sentence-level refusal lexicon (hilt.train.refusal_lexicon) to the cheap features
    refusal_lexicon: bool = False
    # with contexts: add the cosine similarity of the context to the text's opening and to
    # its first max_length tokens to the cheap features, instead of reading the context
    # with the text (a reply that does not address its request scores low)
    context_similarity: bool = False
    # identical training texts share one unit of weight (1 / their count)
    deduplicate: bool = False
    # with per-text harmful-request flags: add (the first two sentences hold a negation
    # cue) x (the request was harmful) to the cheap features
    harmful_request_negation: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        # a target rate is the threshold rule: record it as such, not as the default
        # rule that it replaces
        if self.threshold_rule == "calibrated":
            if self.target_fpr is not None:
                self.threshold_rule = "target_fpr"
            elif self.target_fnr is not None:
                self.threshold_rule = "target_fnr"


ENCODER_DIR = "encoder"

# settings that only a two-class model uses: refused for more classes rather than
# silently ignored (and then recorded in the manifest as if they had been applied)
BINARY_ONLY = ("positive_label", "target_fpr", "target_fnr", "threshold_rule")


class TrainingInputError(ValueError):
    """Training data or settings that :func:`train_classifier` cannot use. ``setting``
    names the :class:`ClassifierConfig` field at fault; None means the labels."""

    def __init__(self, message: str, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


def binary_only_settings(config: ClassifierConfig) -> list[str]:
    """The two-class settings that ``config`` sets away from their defaults."""
    defaults = ClassifierConfig()
    return [name for name in BINARY_ONLY
            if getattr(config, name) != getattr(defaults, name)]


def join_context(texts: Sequence[str], contexts: Sequence[str] | None,
                 opening_chars: int | None = None) -> list[str]:
    """What the encoder reads: the text (or its opening), after the context if any."""
    if opening_chars is not None:
        texts = [t[:opening_chars] for t in texts]
    if contexts is None:
        return list(texts)
    return [f"{c}\n\n{t}" for c, t in zip(contexts, texts, strict=True)]


class TextClassifier:
    """A fitted classifier: ``predict``, ``predict_proba`` and ``classes_`` like scikit-learn."""

    def __init__(self, config: ClassifierConfig, estimator: Any, classes: list[str],
                 cheap_mean: np.ndarray, cheap_std: np.ndarray, threshold: float | None,
                 uses_context: bool, validation: dict[str, Any],
                 encoder_path: str | None = None) -> None:
        self.config = config
        # A fine-tuned encoder lives in the model folder; otherwise the named encoder.
        self.encoder_path = encoder_path
        self.estimator = estimator
        self.classes_ = np.asarray(classes)
        self.cheap_mean, self.cheap_std = cheap_mean, cheap_std
        self.threshold = threshold
        self.uses_context = uses_context
        self.validation = validation
        # a bar over the encoding batches on stderr while texts are encoded
        self.progress = False
        self._encoder: SentenceEncoder | None = None

    @property
    def encoder(self) -> SentenceEncoder:
        if self._encoder is None:
            self._encoder = SentenceEncoder(self.encoder_path or self.config.encoder,
                                            self.config.max_length,
                                            use_cache=self.encoder_path is None)
        self._encoder.progress = self.progress
        return self._encoder

    @property
    def uses_harmful(self) -> bool:
        """Whether predictions need a harmful-request flag per text."""
        return self.config.harmful_request_negation and self.config.cheap_features

    @property
    def positive_label(self) -> str | None:
        return str(self.classes_[1]) if len(self.classes_) == 2 else None

    def features(self, texts: Sequence[str], contexts: Sequence[str] | None = None,
                 harmful: Sequence[bool] | None = None) -> np.ndarray:
        if self.uses_context and contexts is None:
            raise ValueError("this classifier was trained with a context field; pass contexts")
        return build_features(self.encoder, self.config, texts,
                              contexts if self.uses_context else None,
                              self.cheap_mean, self.cheap_std, harmful)

    def predict_proba(self, texts: Sequence[str], contexts: Sequence[str] | None = None,
                      harmful: Sequence[bool] | None = None) -> np.ndarray:
        """Calibrated class probabilities, columns in the order of ``classes_``."""
        if len(texts) == 0:
            return np.zeros((0, len(self.classes_)))
        return np.asarray(self.estimator.predict_proba(self.features(texts, contexts, harmful)))

    def predict(self, texts: Sequence[str], contexts: Sequence[str] | None = None,
                harmful: Sequence[bool] | None = None) -> list[str]:
        """Labels; binary models apply the stored threshold to P(positive label)."""
        return self.decide(self.predict_proba(texts, contexts, harmful))

    def decide(self, proba: np.ndarray) -> list[str]:
        """Labels from :meth:`predict_proba`'s output, as :meth:`predict` gives them."""
        if self.threshold is not None and len(self.classes_) == 2:
            picks = (proba[:, 1] >= self.threshold).astype(int)
        else:
            picks = proba.argmax(axis=1) if len(proba) else np.zeros(0, dtype=int)
        return [str(self.classes_[i]) for i in picks]

    def save(self, folder: str | Path) -> None:
        import joblib

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        joblib.dump(self.estimator, folder / MODEL_FILE)
        if self.encoder_path is not None:
            target = folder / ENCODER_DIR
            if Path(self.encoder_path).resolve() != target.resolve():
                shutil.copytree(self.encoder_path, target, dirs_exist_ok=True)
        meta = {"config": asdict(self.config), "classes": [str(c) for c in self.classes_],
                "cheap_mean": self.cheap_mean.tolist(), "cheap_std": self.cheap_std.tolist(),
                "cheap_feature_names": cheap_feature_names(self.config),
                "threshold": self.threshold,
                "uses_context": self.uses_context, "validation": self.validation,
                "encoder_dir": ENCODER_DIR if self.encoder_path is not None else None}
        (folder / CONFIG_FILE).write_text(json.dumps(meta, indent=2))


def load_classifier(model_dir: str | Path, *, field: str | None = None,
                    progress: bool = False) -> TextClassifier:
    """Load a classifier written by :func:`train_classifier` / ``hilt train classifier``.

    A damaged folder is an :class:`InputError` naming the file that could not be read
    (``field``: the option or setting that named the folder, when there is one).
    ``progress`` shows a bar over the encoding batches of its predictions on stderr."""
    import pickle

    import joblib

    folder = Path(model_dir)
    config_file, model_file = folder / CONFIG_FILE, folder / MODEL_FILE
    if not config_file.exists() or not model_file.exists():
        raise InputError("not a classifier folder (classifier.json / classifier.joblib missing)",
                         file=str(folder), field=field)
    try:
        meta = json.loads(config_file.read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
        config = ClassifierConfig(**meta["config"])
        classes = [str(c) for c in meta["classes"]]
        settings = (np.asarray(meta["cheap_mean"], dtype=float),
                    np.asarray(meta["cheap_std"], dtype=float), meta["threshold"],
                    bool(meta["uses_context"]), meta["validation"])
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg} (line {exc.lineno})",
                         file=str(config_file), field=field) from None
    except KeyError as exc:
        raise InputError(f"missing key {exc.args[0]!r}", file=str(config_file),
                         field=field) from None
    except (OSError, ValueError, TypeError) as exc:
        raise InputError(f"cannot read the classifier settings: {exc}",
                         file=str(config_file), field=field) from None
    try:
        estimator = joblib.load(model_file)
    except (OSError, ValueError, KeyError, EOFError, IndexError, AttributeError,
            ImportError, pickle.UnpicklingError) as exc:
        # a truncated or foreign file fails inside the unpickler, with its own wording
        raise InputError(f"cannot load the fitted model ({type(exc).__name__}: {exc})",
                         file=str(model_file), field=field) from None
    classifier = TextClassifier(config, estimator, classes, *settings,
                                str(folder / meta["encoder_dir"]) if meta.get("encoder_dir")
                                else None)
    classifier.progress = progress
    return classifier


SIMILARITY_FEATURE_NAMES = ("context_similarity_opening", "context_similarity_text")
HARMFUL_FEATURE_NAMES = ("opening_negation_if_harmful",)


def cheap_feature_names(config: ClassifierConfig) -> list[str]:
    from hilt.train.refusal_lexicon import LEXICON_FEATURE_NAMES

    return [*CHEAP_FEATURE_NAMES, *(LEXICON_FEATURE_NAMES if config.refusal_lexicon else ()),
            *(SIMILARITY_FEATURE_NAMES if config.context_similarity else ()),
            *(HARMFUL_FEATURE_NAMES if config.harmful_request_negation else ())]


def cheap_feature_matrix(texts: Sequence[str], config: ClassifierConfig) -> np.ndarray:
    """The cheap refusal features, plus the sentence-level lexicon when configured."""
    base = cheap_refusal_features(texts)
    if not config.refusal_lexicon:
        return base
    from hilt.train.refusal_lexicon import lexicon_refusal_features

    return np.hstack([base, lexicon_refusal_features(texts)])


def _reads_context(config: ClassifierConfig, contexts: Sequence[str] | None) -> bool:
    """Whether the encoder reads the context with the text (not with context_similarity)."""
    return contexts is not None and not config.context_similarity


def _harmful_column(texts: Sequence[str], harmful: Sequence[bool] | None) -> np.ndarray:
    from hilt.train.refusal_lexicon import opening_negation

    if harmful is None:
        raise ValueError("this classifier reads a harmful-request flag per text; pass harmful")
    if len(harmful) != len(texts):
        raise ValueError(f"{len(harmful)} harmful-request flags for {len(texts)} texts")
    flags = np.asarray([bool(h) for h in harmful], dtype=np.float64)
    return (opening_negation(texts) * flags)[:, None]


def _raw_features(encoder: SentenceEncoder, config: ClassifierConfig, texts: Sequence[str],
                  contexts: Sequence[str] | None, harmful: Sequence[bool] | None = None,
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """(embedding, unstandardised cheap features or None)."""
    read = contexts if _reads_context(config, contexts) else None
    embedded = encoder.encode(join_context(texts, read, config.opening_chars))
    embedded = embedded.astype(np.float64)
    if not config.cheap_features:
        return embedded, None
    cheap = cheap_feature_matrix(texts, config)
    if config.context_similarity:
        if contexts is None:
            raise ValueError("context_similarity needs contexts")
        # embeddings are L2-normalised, so the dot product is the cosine similarity
        context = encoder.encode(list(contexts)).astype(np.float64)
        whole = (embedded if config.opening_chars is None
                 else encoder.encode(list(texts)).astype(np.float64))
        cheap = np.hstack([cheap, (context * embedded).sum(1, keepdims=True),
                           (context * whole).sum(1, keepdims=True)])
    if config.harmful_request_negation:
        cheap = np.hstack([cheap, _harmful_column(texts, harmful)])
    return embedded, cheap


def build_features(encoder: SentenceEncoder, config: ClassifierConfig, texts: Sequence[str],
                   contexts: Sequence[str] | None, cheap_mean: np.ndarray,
                   cheap_std: np.ndarray, harmful: Sequence[bool] | None = None) -> np.ndarray:
    embedded, cheap = _raw_features(encoder, config, texts, contexts, harmful)
    if cheap is None:
        return embedded
    return np.hstack([embedded, (cheap - cheap_mean) / cheap_std])


def duplicate_weights(texts: Sequence[str]) -> np.ndarray:
    """1 / (number of identical texts) per text: each distinct text weighs one in all."""
    from collections import Counter

    counts = Counter(texts)
    return np.array([1.0 / counts[t] for t in texts])


def text_groups(texts: Sequence[str]) -> np.ndarray:
    """One group id per text, equal for identical texts (for grouped cross-validation)."""
    ids: dict[str, int] = {}
    return np.array([ids.setdefault(t, len(ids)) for t in texts])


def distinct_rows(texts: Sequence[str], y: np.ndarray, contexts: Sequence[str] | None = None,
                  harmful: Sequence[bool] | None = None) -> np.ndarray:
    """Indices of the first of each set of identical rows (text, context, flag, label)."""
    seen: set[tuple[Any, ...]] = set()
    keep = []
    for i, text in enumerate(texts):
        key = (text, contexts[i] if contexts is not None else None,
               harmful[i] if harmful is not None else None, int(y[i]))
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return np.array(keep, dtype=int)


def _estimator(config: ClassifierConfig, n_min_class: int) -> Any:
    """A fresh head. The linear head chooses its calibration folds when fitted, from the
    class counts of the rows it is given: an outer grouped fold may hold far fewer rows
    of a class than ``n_min_class`` (the estimate from the whole data) suggests."""
    if config.head == "stacked" and config.cheap_features:
        from hilt.train.stacking import StackedHead

        return StackedHead(n_cheap=len(cheap_feature_names(config)),
                           regularisation_c=config.regularisation_c,
                           class_weight=config.class_weight,
                           folds=max(2, min(config.folds, n_min_class)), seed=config.seed)
    from hilt.train.stacking import CalibratedLinearHead

    return CalibratedLinearHead(regularisation_c=config.regularisation_c,
                                class_weight=config.class_weight,
                                method=config.calibration, folds=config.folds)


def choose_threshold(positive_proba: np.ndarray, is_positive: np.ndarray,
                     target_fpr: float | None = None, target_fnr: float | None = None,
                     rule: str = "accuracy") -> float:
    """Decision threshold on P(positive) by the rule in the module docstring."""
    if target_fpr is None and target_fnr is None and rule == "calibrated":
        return 0.5
    # A threshold just above the highest score flags nothing, so FPR 0 is always
    # reachable (at the cost of every miss).
    top = float(positive_proba.max()) if positive_proba.size else 0.5
    candidates = np.unique(np.concatenate([positive_proba, [0.5, np.nextafter(top, np.inf)]]))
    pos, neg = is_positive.sum(), (~is_positive).sum()
    best, best_score = 0.5, -np.inf
    for t in candidates:
        pred = positive_proba >= t
        fpr = (pred & ~is_positive).sum() / neg if neg else 0.0
        fnr = (~pred & is_positive).sum() / pos if pos else 0.0
        if target_fpr is not None:
            score = -fnr if fpr <= target_fpr else -np.inf
        elif target_fnr is not None:
            score = -fpr if fnr <= target_fnr else -np.inf
        else:
            score = float((pred == is_positive).mean())
        # Ties go to the threshold closest to 0.5: the calibrated default.
        if score > best_score or (score == best_score and abs(t - 0.5) < abs(best - 0.5)):
            best, best_score = float(t), score
    if best_score == -np.inf:
        raise TrainingInputError("no threshold meets the target rate on the validation data",
                                 "target_fpr" if target_fpr is not None else "target_fnr")
    return best


def error_rates(predicted_positive: np.ndarray, is_positive: np.ndarray) -> dict[str, Any]:
    """False-positive and false-negative rates with Wilson intervals."""
    neg, pos = ~is_positive, is_positive
    return {"false_positive_rate": rate(int((predicted_positive & neg).sum()), int(neg.sum())),
            "false_negative_rate": rate(int((~predicted_positive & pos).sum()), int(pos.sum()))}


def train_classifier(texts: Sequence[str], labels: Sequence[str], config: ClassifierConfig,
                     contexts: Sequence[str] | None = None, workdir: Path | None = None,
                     progress: bool = False,
                     harmful: Sequence[bool] | None = None) -> TextClassifier:
    """Fit features → calibrated logistic regression, then pick the decision threshold.

    With ``config.finetune_epochs > 0`` the encoder is fine-tuned first (saved under
    ``workdir``); the out-of-fold threshold then comes from an encoder that has seen
    every training text, so the stored validation rates are optimistic. Without a
    ``workdir`` the fine-tuned encoder (about 90 MB) goes to a temporary folder that
    lives as long as the classifier reading it (:meth:`TextClassifier.save` copies it)
    and is removed when training fails.
    """
    scratch: Path | None = None
    if config.finetune_epochs > 0 and workdir is None:
        import tempfile

        scratch = Path(tempfile.mkdtemp(prefix="hilt-encoder-"))
    try:
        classifier = _train_classifier(texts, labels, config, contexts, workdir or scratch,
                                       progress, harmful)
    except BaseException:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        raise
    if scratch is not None:
        weakref.finalize(classifier, shutil.rmtree, scratch, True)
    return classifier


def _train_classifier(texts: Sequence[str], labels: Sequence[str], config: ClassifierConfig,
                      contexts: Sequence[str] | None, workdir: Path | None, progress: bool,
                      harmful: Sequence[bool] | None) -> TextClassifier:
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict

    classes = sorted({str(x) for x in labels})
    if len(classes) < 2:
        raise TrainingInputError("need at least two distinct labels to train a classifier")
    if len(classes) > 2 and binary_only_settings(config):
        setting = binary_only_settings(config)[0]
        raise TrainingInputError(f"applies to two classes only; the labels hold "
                                 f"{len(classes)}: {classes}", setting)
    if config.positive_label is not None and len(classes) == 2:
        if config.positive_label not in classes:
            raise TrainingInputError(f"positive label {config.positive_label!r} not among "
                                     f"{classes}", "positive_label")
        # classes_[1] is the positive class, as in scikit-learn's binary convention.
        classes = [c for c in classes if c != config.positive_label] + [config.positive_label]
    y = np.array([classes.index(str(x)) for x in labels])
    counts = np.bincount(y, minlength=len(classes))
    if counts.min() < 2:
        found = {c: int(n) for c, n in zip(classes, counts, strict=True)}
        raise TrainingInputError(f"every label needs at least 2 examples; got {found}")
    # Copies of one text share a group, so no fold trains on a copy of a text it scores.
    groups = text_groups(texts)
    distinct = [len(set(groups[y == c].tolist())) for c in range(len(classes))]
    if min(distinct) < 2:
        found = dict(zip(classes, distinct, strict=True))
        raise TrainingInputError(f"every label needs at least 2 distinct texts; got {found}")
    encoder_path: str | None = None
    if config.finetune_epochs > 0:
        from hilt.train.classifier_finetune import finetune_encoder

        assert workdir is not None  # train_classifier gives a temporary folder
        target = workdir / ENCODER_DIR
        read = contexts if _reads_context(config, contexts) else None
        encoder_path = finetune_encoder(join_context(texts, read, config.opening_chars),
                                        y, len(classes),
                                        encoder=config.encoder, out_dir=target,
                                        max_length=config.max_length,
                                        epochs=config.finetune_epochs,
                                        learning_rate=config.finetune_learning_rate,
                                        seed=config.seed, progress=progress)
    encoder = SentenceEncoder(encoder_path or config.encoder, config.max_length,
                              use_cache=encoder_path is None, progress=progress)
    embedded, cheap = _raw_features(encoder, config, texts, contexts, harmful)
    if cheap is None:
        cheap_mean, cheap_std = np.zeros(0), np.ones(0)
        X = embedded
    else:
        cheap_mean, cheap_std = cheap.mean(0), np.where(cheap.std(0) > 0, cheap.std(0), 1.0)
        X = np.hstack([embedded, (cheap - cheap_mean) / cheap_std])
    fit_params = {"sample_weight": duplicate_weights(texts)} if config.deduplicate else {}

    folds = max(2, min(config.folds, min(distinct)))
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=config.seed)
    # The stacked head's own stage-1 folds stay row folds: grouping them too (its
    # ``groups``) was measured on XSTest and did not help (docs/train.md). The grouping
    # here is what keeps the reported out-of-fold rates honest.
    cv_params = fit_params
    oof = cross_val_predict(_estimator(config, int(counts.min() * (folds - 1) / folds)), X, y,
                            cv=splitter, groups=groups, method="predict_proba",
                            params=cv_params)
    # Rates over distinct rows: identical rows (same text, context, flag and label) share
    # one out-of-fold score, and counting each copy would shrink the intervals.
    keep = distinct_rows(texts, y, contexts, harmful)
    oof_d, y_d = oof[keep], y[keep]
    threshold: float | None = None
    validation: dict[str, Any] = {"n": int(len(y)), "n_distinct": int(keep.size),
                                  "folds": folds}
    if len(classes) == 2:
        is_positive = y_d == 1
        threshold = choose_threshold(oof_d[:, 1], is_positive, config.target_fpr,
                                     config.target_fnr, config.threshold_rule)
        predicted = oof_d[:, 1] >= threshold
        validation.update(error_rates(predicted, is_positive))
        validation["accuracy"] = rate(int((predicted == is_positive).sum()), int(keep.size))
        validation["threshold_rule"] = ("target_fpr" if config.target_fpr is not None else
                                        "target_fnr" if config.target_fnr is not None
                                        else config.threshold_rule)
    else:
        predicted_idx = oof_d.argmax(1)
        validation["accuracy"] = rate(int((predicted_idx == y_d).sum()), int(keep.size))
    # how well the out-of-fold probabilities are calibrated (the model is called so)
    validation.update(calibration_report(oof_d, y_d))
    estimator = _estimator(config, int(counts.min())).fit(X, y, **fit_params)
    classifier = TextClassifier(config, estimator, classes, cheap_mean, cheap_std, threshold,
                                contexts is not None, validation, encoder_path)
    classifier.progress = progress
    return classifier
