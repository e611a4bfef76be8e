"""003 MRMS training: the scikit-learn estimator registry, step-wise training with the document's early
stopping, and the exported model file.

A step is one pass of the estimator over the training split: one `partial_fit` epoch, or for warm-start
ensembles `estimators_per_step` more trees. After each step the four metrics of ml_result_json are
computed (classification: log loss and accuracy; trend analysis: mean squared error of the standardized
target as loss and R² as accuracy) on at most `metric_rows` fixed rows of each split, then handed to a
callback that records them. Models are exported with skops (no pickle): preprocessing and estimator in
one Pipeline that loads back with only scikit-learn and numpy types trusted.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import psutil
import skops.io as sio  # imported with the flow, not inside a run: it indexes every sklearn type
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import SGDClassifier, SGDRegressor
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.naive_bayes import GaussianNB
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from storage.mrms.domain import EarlyType, Purpose
from storage.mrms.repository import EarlyStop
from tasks.mrms.profile import DatasetError

MODEL_FILE = "model.skops"
MAX_CATEGORIES = 50
# Training controls a parameter set may carry next to the estimator's own hyperparameters.
CONTROL_KEYS = ("steps", "validation_fraction", "estimators_per_step")


class TrainingError(ValueError):
    """A parameter set or dataset the algorithm cannot train on."""


@dataclass(frozen=True)
class Algorithm:
    alg_id: str
    purpose: Purpose
    estimator: Callable[[], BaseEstimator]
    mode: Literal["partial_fit", "warm_start"]
    defaults: dict[str, Any] = field(default_factory=dict)


def _algorithms() -> dict[str, Algorithm]:
    c, r = Purpose.CLASSIFICATION, Purpose.TREND
    entries = [
        Algorithm("sgd_classifier", c, SGDClassifier, "partial_fit", {"loss": "log_loss", "random_state": 0}),
        Algorithm("mlp_classifier", c, MLPClassifier, "partial_fit", {"random_state": 0}),
        Algorithm("gaussian_nb", c, GaussianNB, "partial_fit"),
        Algorithm("random_forest_classifier", c, RandomForestClassifier, "warm_start", {"random_state": 0}),
        Algorithm("gradient_boosting_classifier", c, GradientBoostingClassifier, "warm_start"),
        Algorithm("sgd_regressor", r, SGDRegressor, "partial_fit", {"random_state": 0}),
        Algorithm("mlp_regressor", r, MLPRegressor, "partial_fit", {"random_state": 0}),
        Algorithm("random_forest_regressor", r, RandomForestRegressor, "warm_start", {"random_state": 0}),
        Algorithm("gradient_boosting_regressor", r, GradientBoostingRegressor, "warm_start"),
    ]
    return {a.alg_id: a for a in entries}


REGISTRY: dict[str, Algorithm] = _algorithms()


@dataclass(frozen=True)
class TrainingConfig:
    steps: int = 20
    validation_fraction: float = 0.2
    estimators_per_step: int = 10
    metric_rows: int = 5_000


def default_config() -> TrainingConfig:
    """Training controls from settings, for parameter sets that do not name them."""
    from flowbridge.settings import get_settings

    settings = get_settings()
    return TrainingConfig(
        steps=settings.mrms_train_steps,
        validation_fraction=settings.mrms_validation_fraction,
        estimators_per_step=settings.mrms_estimators_per_step,
        metric_rows=settings.mrms_metric_rows,
    )


def split_params(params: dict[str, Any], defaults: TrainingConfig) -> tuple[TrainingConfig, dict[str, Any]]:
    """Separate training controls from estimator hyperparameters and check the controls."""
    controls = {k: params[k] for k in CONTROL_KEYS if k in params}
    hyper = {k: v for k, v in params.items() if k not in CONTROL_KEYS}
    try:
        config = TrainingConfig(
            steps=int(controls.get("steps", defaults.steps)),
            validation_fraction=float(controls.get("validation_fraction", defaults.validation_fraction)),
            estimators_per_step=int(controls.get("estimators_per_step", defaults.estimators_per_step)),
            metric_rows=defaults.metric_rows,
        )
    except (TypeError, ValueError, OverflowError):
        raise TrainingError(f"training controls must be finite numbers: {controls}") from None
    if not 1 <= config.steps <= 10_000:
        raise TrainingError("steps must be between 1 and 10000")
    if not 0.05 <= config.validation_fraction <= 0.5:
        raise TrainingError("validation_fraction must be between 0.05 and 0.5")
    if not 1 <= config.estimators_per_step <= 1000:
        raise TrainingError("estimators_per_step must be between 1 and 1000")
    return config, hyper


def build_estimator(algorithm: Algorithm, hyper: dict[str, Any]) -> BaseEstimator:
    """The estimator with the registry's defaults overridden by the parameter set (unknown names fail)."""
    estimator = algorithm.estimator()
    try:
        estimator.set_params(**{**algorithm.defaults, **hyper})
    except (ValueError, TypeError) as exc:
        raise TrainingError(f"{algorithm.alg_id}: {exc}") from None
    if algorithm.mode == "warm_start":
        estimator.set_params(warm_start=True)
    return estimator


def check_params(alg_id: str, params: dict[str, Any], purpose: Purpose, defaults: TrainingConfig) -> None:
    """Reject at insert time what would certainly fail: wrong purpose, unknown names, bad controls."""
    algorithm = REGISTRY[alg_id]
    if algorithm.purpose is not purpose:
        raise TrainingError(f"{alg_id} does not fit project purpose {purpose.value}")
    _, hyper = split_params(params, defaults)
    build_estimator(algorithm, hyper)


# --- data -------------------------------------------------------------------------------------------
@dataclass
class PreparedData:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    preprocessor: ColumnTransformer
    classes: np.ndarray | None
    target_scaler: StandardScaler | None


def _preprocessor(features: pd.DataFrame) -> ColumnTransformer:
    numeric = [c for c in features.columns if pd.api.types.is_numeric_dtype(features[c])]
    categorical = [
        c for c in features.columns if c not in numeric and features[c].nunique(dropna=True) <= MAX_CATEGORIES
    ]
    if not numeric and not categorical:
        raise DatasetError("no usable feature columns (numeric, or categorical with few values)")
    parts: list[tuple[str, Any, list[str]]] = []
    if numeric:
        parts.append(("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric))
    if categorical:
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        imputer = SimpleImputer(strategy="most_frequent")
        parts.append(("categorical", make_pipeline(imputer, encoder), categorical))
    return ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)


def prepare_data(
    frame: pd.DataFrame,
    *,
    target: str,
    purpose: Purpose,
    validation_fraction: float,
    time_column: str | None = None,
    random_state: int = 0,
) -> PreparedData:
    frame = frame[frame[target].notna()]
    drop = [target] + ([time_column] if time_column and time_column in frame.columns else [])
    features = frame.drop(columns=drop)
    if purpose is Purpose.CLASSIFICATION:
        y = frame[target].to_numpy()
        if len(np.unique(y)) < 2:
            raise DatasetError("classification needs at least two classes in the target")
        counts = pd.Series(y).value_counts()
        stratify = y if counts.min() >= 2 else None
        x_tr, x_va, y_tr, y_va = train_test_split(
            features, y, test_size=validation_fraction, random_state=random_state, stratify=stratify
        )
    else:
        numeric_y = pd.to_numeric(frame[target], errors="coerce")
        if numeric_y.isna().any():
            raise DatasetError(f"trend analysis needs a numeric target; {target!r} has non-numbers")
        if time_column and time_column in frame.columns:  # hold out the latest part, as a forecast would
            order = np.asarray(pd.to_datetime(frame[time_column], errors="coerce").argsort(kind="stable"))
            features, numeric_y = features.iloc[order], numeric_y.iloc[order]
            x_tr, x_va, y_tr, y_va = train_test_split(
                features, numeric_y.to_numpy(float), test_size=validation_fraction, shuffle=False
            )
        else:
            x_tr, x_va, y_tr, y_va = train_test_split(
                features, numeric_y.to_numpy(float), test_size=validation_fraction, random_state=random_state
            )
    if len(x_tr) < 2 or len(x_va) < 1:
        raise DatasetError("too few rows to split into training and validation")
    preprocessor = _preprocessor(x_tr)
    x_train = np.ascontiguousarray(preprocessor.fit_transform(x_tr), dtype=float)
    x_val = np.ascontiguousarray(preprocessor.transform(x_va), dtype=float)
    if purpose is Purpose.CLASSIFICATION:
        return PreparedData(x_train, y_tr, x_val, y_va, preprocessor, np.unique(y_tr), None)
    scaler = StandardScaler().fit(np.asarray(y_tr).reshape(-1, 1))
    scale = scaler.transform
    return PreparedData(
        x_train,
        scale(np.asarray(y_tr).reshape(-1, 1)).ravel(),
        x_val,
        scale(np.asarray(y_va).reshape(-1, 1)).ravel(),
        preprocessor,
        None,
        scaler,
    )


# --- training ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StepReport:
    step: int
    result: dict[str, Any]  # ml_result_json: loss, accuracy, val_loss, val_accuracy, step
    eps: float  # training samples per second of this step
    cpu_percent: float  # this process's CPU use during the step (100 = one core)


@dataclass
class TrainingOutcome:
    estimator: BaseEstimator
    steps_run: int
    stopped_early: bool
    history: list[dict[str, Any]]


def early_stop_reached(rule: EarlyStop, history: list[dict[str, Any]]) -> bool:
    """The document's early_stop_param after the latest step (history holds every step so far).

    Never before `minsteps` steps. 1 (min): the key's value is at or below early_value; 2 (max): at or
    above it; 3 (variance): it changed by at most early_value since the previous step.
    """
    step = len(history)
    if rule.early_type is EarlyType.NONE or rule.key is None or step < max(rule.minsteps, 1):
        return False
    current = history[-1].get(rule.key.value)
    if current is None:
        return False
    if rule.early_type is EarlyType.MIN:
        return current <= rule.value
    if rule.early_type is EarlyType.MAX:
        return current >= rule.value
    if step < 2 or history[-2].get(rule.key.value) is None:
        return False
    return abs(current - history[-2][rule.key.value]) <= rule.value


def _sample(n: int, limit: int, seed: int) -> np.ndarray:
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


@dataclass(frozen=True)
class ScoringSample:
    """The rows the metrics are computed on after every step: chosen and copied once per training."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    classes: np.ndarray | None

    @classmethod
    def of(cls, data: PreparedData, metric_rows: int) -> ScoringSample:
        train_rows = _sample(len(data.y_train), metric_rows, 1)
        val_rows = _sample(len(data.y_val), metric_rows, 2)
        return cls(
            np.ascontiguousarray(data.x_train[train_rows]),
            np.asarray(data.y_train)[train_rows],
            np.ascontiguousarray(data.x_val[val_rows]),
            np.asarray(data.y_val)[val_rows],
            data.classes,
        )


def _log_loss(classes: np.ndarray, y: np.ndarray, proba: np.ndarray) -> float:
    """sklearn's log_loss(y, clip(proba, 1e-15, 1), labels=classes) without its per-call validation
    (which costs more than the prediction on a few thousand rows); sklearn's own for unknown labels."""
    index = np.searchsorted(classes, y)
    inside = index < len(classes)
    if not inside.all() or not np.array_equal(classes[index], y):
        return float(log_loss(y, np.clip(proba, 1e-15, 1.0), labels=classes))
    eps = np.finfo(proba.dtype).eps
    picked = np.clip(proba[np.arange(len(y)), index], max(1e-15, eps), 1.0 - eps)
    return float(-np.log(picked).mean())


def _metrics(estimator: BaseEstimator, x: np.ndarray, y: np.ndarray, classes: np.ndarray | None) -> tuple:
    if classes is None:  # trend analysis: MSE of the standardized target and R²
        predicted = np.asarray(estimator.predict(x), dtype=float)
        y = np.asarray(y, dtype=float)
        squared = float(((y - predicted) ** 2).sum())
        total = float(((y - y.mean()) ** 2).sum())
        r2 = 1.0 - squared / total if total > 0 else (1.0 if squared == 0 else 0.0)  # sklearn's r2_score
        return squared / len(y), r2
    if not hasattr(estimator, "predict_proba"):  # e.g. a hinge-loss SGD: the zero-one loss is honest then
        accuracy = float(np.mean(estimator.predict(x) == y))
        return 1.0 - accuracy, accuracy
    proba = estimator.predict_proba(x)  # one pass gives both metrics
    accuracy = float(np.mean(estimator.classes_[proba.argmax(axis=1)] == y))
    return _log_loss(estimator.classes_, y, proba), accuracy


def score_step(estimator: BaseEstimator, sample: ScoringSample, step: int) -> dict[str, Any]:
    """ml_result_json of one step: loss and accuracy on the training sample, val_* on the validation one."""
    loss, accuracy = _metrics(estimator, sample.x_train, sample.y_train, sample.classes)
    val_loss, val_accuracy = _metrics(estimator, sample.x_val, sample.y_val, sample.classes)
    return {
        "loss": loss,
        "accuracy": accuracy,
        "val_loss": val_loss,
        "val_accuracy": val_accuracy,
        "step": step,
    }


def fit_step(algorithm: Algorithm, estimator: BaseEstimator, data: PreparedData, n_estimators: int) -> None:
    """One step: a partial_fit epoch over the training split, or a warm-start fit up to n_estimators."""
    if algorithm.mode == "partial_fit":
        if data.classes is not None:
            estimator.partial_fit(data.x_train, data.y_train, classes=data.classes)
        else:
            estimator.partial_fit(data.x_train, data.y_train)
    else:
        estimator.set_params(n_estimators=n_estimators)
        estimator.fit(data.x_train, data.y_train)


def train_iteratively(
    algorithm: Algorithm,
    hyper: dict[str, Any],
    data: PreparedData,
    config: TrainingConfig,
    early_stop: EarlyStop,
    on_step: Callable[[StepReport], None] = lambda _report: None,
) -> TrainingOutcome:
    """Train step by step; `on_step` runs on this thread, so it should hand slow work elsewhere."""
    estimator = build_estimator(algorithm, hyper)
    sample = ScoringSample.of(data, config.metric_rows)
    process = psutil.Process()
    history: list[dict[str, Any]] = []
    stopped = False
    base_estimators = int(hyper.get("n_estimators", 0)) if algorithm.mode == "warm_start" else 0
    for step in range(1, config.steps + 1):
        cpu_before, wall_before = sum(process.cpu_times()[:2]), time.perf_counter()
        fit_step(algorithm, estimator, data, base_estimators + step * config.estimators_per_step)
        wall = max(time.perf_counter() - wall_before, 1e-9)
        cpu = 100.0 * (sum(process.cpu_times()[:2]) - cpu_before) / wall
        result = score_step(estimator, sample, step)
        history.append(result)
        on_step(StepReport(step, result, len(data.y_train) / wall, round(cpu, 2)))
        if early_stop_reached(early_stop, history):
            stopped = True
            break
    return TrainingOutcome(estimator, len(history), stopped, history)


# --- export -----------------------------------------------------------------------------------------
def _fitted_target_regressor(estimator: BaseEstimator, scaler: StandardScaler) -> TransformedTargetRegressor:
    """Wrap a regressor trained on the standardized target so the exported model predicts real units."""
    wrapper = TransformedTargetRegressor(regressor=estimator, transformer=scaler)
    wrapper.regressor_ = estimator
    wrapper.transformer_ = scaler
    wrapper._training_dim = 1
    return wrapper


def export_model(data: PreparedData, estimator: BaseEstimator) -> tuple[bytes, str]:
    """skops bytes of Pipeline(preprocessing, model) and their sha256."""
    scaler = data.target_scaler
    model = estimator if scaler is None else _fitted_target_regressor(estimator, scaler)
    pipeline = Pipeline([("preprocess", data.preprocessor), ("model", model)])
    blob = sio.dumps(pipeline)
    return blob, hashlib.sha256(blob).hexdigest()


def load_model(blob: bytes, sha256: str | None = None) -> Pipeline:
    """Load an exported model, refusing a changed file or any type outside scikit-learn and numpy."""
    if sha256 is not None and hashlib.sha256(blob).hexdigest() != sha256:
        raise ValueError("model file checksum mismatch")
    untrusted = sio.get_untrusted_types(data=blob)
    foreign = [t for t in untrusted if not t.startswith(("sklearn.", "numpy.", "builtins."))]
    if foreign:
        raise ValueError(f"model file holds types outside scikit-learn/numpy: {foreign}")
    return sio.loads(blob, trusted=untrusted)
