"""MRMS estimator registry, step-wise training, the document's early stopping and the skops export."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes

from storage.mrms.domain import EarlyKey, EarlyType, Purpose
from storage.mrms.repository import EarlyStop
from tasks.mrms.profile import DatasetError, profile_frame
from tasks.mrms.training import (
    REGISTRY,
    StepReport,
    TrainingConfig,
    TrainingError,
    check_params,
    early_stop_reached,
    export_model,
    load_model,
    prepare_data,
    split_params,
    train_iteratively,
)


def _cancer() -> pd.DataFrame:
    return load_breast_cancer(as_frame=True).frame


def _history(values: list[float], key: str = "val_loss") -> list[dict[str, float]]:
    return [{key: v} for v in values]


@pytest.mark.parametrize(
    ("rule", "values", "expected"),
    [
        (EarlyStop(EarlyType.NONE), [0.0, 0.0], False),
        (EarlyStop(EarlyType.MIN, EarlyKey.VAL_LOSS, 0.3, 0), [0.3], True),
        (EarlyStop(EarlyType.MIN, EarlyKey.VAL_LOSS, 0.3, 3), [0.5, 0.2], False),  # before minsteps
        (EarlyStop(EarlyType.MIN, EarlyKey.VAL_LOSS, 0.3, 3), [0.5, 0.2, 0.25], True),
        (EarlyStop(EarlyType.MIN, EarlyKey.VAL_LOSS, 0.3, 3), [0.5, 0.2, 0.31], False),
        (EarlyStop(EarlyType.MAX, EarlyKey.VAL_LOSS, 0.9, 1), [0.89], False),
        (EarlyStop(EarlyType.MAX, EarlyKey.VAL_LOSS, 0.9, 1), [0.9], True),
        (EarlyStop(EarlyType.VARIANCE, EarlyKey.VAL_LOSS, 0.01, 0), [0.5], False),  # no change yet
        (EarlyStop(EarlyType.VARIANCE, EarlyKey.VAL_LOSS, 0.01, 0), [0.5, 0.495], True),
        (EarlyStop(EarlyType.VARIANCE, EarlyKey.VAL_LOSS, 0.01, 0), [0.5, 0.48], False),
        (EarlyStop(EarlyType.VARIANCE, EarlyKey.VAL_LOSS, 0.01, 4), [0.5, 0.5, 0.5], False),
    ],
)
def test_early_stop_rules(rule: EarlyStop, values: list[float], expected: bool) -> None:
    assert early_stop_reached(rule, _history(values)) is expected


def test_breast_cancer_trains_past_090_and_the_export_predicts() -> None:
    frame = _cancer()
    data = prepare_data(frame, target="target", purpose=Purpose.CLASSIFICATION, validation_fraction=0.2)
    reports: list[StepReport] = []
    config, hyper = split_params({"steps": 5, "alpha": 0.001}, TrainingConfig())
    outcome = train_iteratively(REGISTRY["sgd_classifier"], hyper, data, config, EarlyStop(), reports.append)
    assert [r.step for r in reports] == [1, 2, 3, 4, 5] and not outcome.stopped_early
    assert reports[-1].result["val_accuracy"] > 0.9
    assert all(r.eps > 0 and r.cpu_percent >= 0 for r in reports)
    assert set(reports[0].result) == {"loss", "accuracy", "val_loss", "val_accuracy", "step"}
    blob, sha256 = export_model(data, outcome.estimator)
    model = load_model(blob, sha256)
    predicted = model.predict(frame.drop(columns="target"))
    assert (predicted == frame["target"]).mean() > 0.9
    with pytest.raises(ValueError, match="checksum"):
        load_model(blob, "0" * 64)


def test_training_stops_at_the_first_step_meeting_the_rule_after_minsteps() -> None:
    data = prepare_data(_cancer(), target="target", purpose=Purpose.CLASSIFICATION, validation_fraction=0.2)
    rule = EarlyStop(EarlyType.MAX, EarlyKey.VAL_ACCURACY, 0.5, 3)
    outcome = train_iteratively(REGISTRY["sgd_classifier"], {}, data, TrainingConfig(steps=10), rule)
    assert outcome.stopped_early and outcome.steps_run == 3  # met from step 1, but minsteps is 3


def test_warm_start_models_grow_per_step() -> None:
    data = prepare_data(_cancer(), target="target", purpose=Purpose.CLASSIFICATION, validation_fraction=0.2)
    config = TrainingConfig(steps=3, estimators_per_step=4)
    outcome = train_iteratively(REGISTRY["random_forest_classifier"], {}, data, config, EarlyStop())
    assert len(outcome.estimator.estimators_) == 12


def test_trend_regression_exports_a_model_in_target_units() -> None:
    frame = load_diabetes(as_frame=True).frame
    data = prepare_data(frame, target="target", purpose=Purpose.TREND, validation_fraction=0.2)
    outcome = train_iteratively(REGISTRY["sgd_regressor"], {}, data, TrainingConfig(steps=5), EarlyStop())
    assert outcome.history[-1]["val_accuracy"] > 0.3  # R² on held-out rows
    blob, sha256 = export_model(data, outcome.estimator)
    predicted = load_model(blob, sha256).predict(frame.drop(columns="target"))
    assert abs(predicted.mean() - frame["target"].mean()) < 0.1 * frame["target"].std() + 5


def test_categorical_features_and_missing_values_are_handled() -> None:
    rng = np.random.default_rng(0)
    n = 400
    color = rng.choice(["red", "blue", None], size=n)
    x = rng.normal(size=n)
    x[::17] = np.nan
    label = np.where((color == "red") | (np.nan_to_num(x) > 1), "yes", "no")
    frame = pd.DataFrame({"color": color, "x": x, "label": label})
    data = prepare_data(frame, target="label", purpose=Purpose.CLASSIFICATION, validation_fraction=0.25)
    outcome = train_iteratively(REGISTRY["mlp_classifier"], {}, data, TrainingConfig(steps=3), EarlyStop())
    model = load_model(*export_model(data, outcome.estimator))
    assert set(model.predict(frame.drop(columns="label"))) <= {"yes", "no"}


def test_parameter_checks() -> None:
    defaults = TrainingConfig()
    check_params("sgd_classifier", {"alpha": 0.01, "steps": 3}, Purpose.CLASSIFICATION, defaults)
    with pytest.raises(TrainingError, match="purpose"):
        check_params("sgd_regressor", {}, Purpose.CLASSIFICATION, defaults)
    with pytest.raises(TrainingError):
        check_params("sgd_classifier", {"no_such_param": 1}, Purpose.CLASSIFICATION, defaults)
    with pytest.raises(TrainingError):
        check_params("sgd_classifier", {"steps": 0}, Purpose.CLASSIFICATION, defaults)
    with pytest.raises(TrainingError):
        check_params("sgd_classifier", {"steps": "many"}, Purpose.CLASSIFICATION, defaults)


def test_single_class_target_is_a_dataset_error() -> None:
    frame = pd.DataFrame({"x": range(10), "y": ["a"] * 10})
    with pytest.raises(DatasetError):
        prepare_data(frame, target="y", purpose=Purpose.CLASSIFICATION, validation_fraction=0.2)


def test_profile_reports_types_missing_values_balance_and_trend() -> None:
    frame = _cancer()
    frame.loc[:9, "mean radius"] = np.nan
    profile = profile_frame(frame, target="target", purpose=Purpose.CLASSIFICATION)
    assert profile["rows"] == 569 and profile["missing_cells"] == 10
    assert profile["column_profiles"]["mean radius"]["missing"] == 10
    assert profile["class_balance"]["classes"] == {"1": 357, "0": 212}
    assert profile["class_balance"]["balance_ratio"] == pytest.approx(212 / 357, abs=1e-6)
    rising = pd.DataFrame({"t": pd.date_range("2024-01-01", periods=50, freq="D")[::-1], "v": range(50)})
    trend = profile_frame(rising, target="v", purpose=Purpose.TREND, time_column="t")["trend"]
    assert trend["direction"] == "down" and trend["r2"] == pytest.approx(1.0)
    with pytest.raises(DatasetError):
        profile_frame(pd.DataFrame({"v": ["a", "b", "c"]}), target="v", purpose=Purpose.TREND)


def test_step_recorder_batches_steps_in_order_and_reports_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    from flows.mrms import training as flow_module

    batches: list[list[int]] = []
    events: list[str] = []

    def record_steps(hist_no: str, steps: list, *, run_id: str | None = None) -> None:
        assert hist_no == "h1"
        batches.append([s.result["step"] for s in steps])
        events.extend(f"step {s.result['step']}" for s in steps)

    monkeypatch.setattr(flow_module.records, "record_steps", record_steps)
    logger = logging.getLogger("test-step-recorder")

    def report(step: int) -> StepReport:
        metrics = {"loss": 0.1, "accuracy": 0.9, "val_loss": 0.2, "val_accuracy": 0.8, "step": step}
        return StepReport(step, metrics, 1e3, 99.0)

    class FakeProgress:
        def advance(self, fraction: float, message: str | None = None) -> None:
            events.append(f"progress {fraction:.1f} {message}")

    with flow_module.StepRecorder("h1", 5, logger, FakeProgress(), interval=60.0) as recorder:  # type: ignore[arg-type]
        for step in (1, 2, 3, 4):
            recorder(report(step))
    # step 1 at once; the others waited for the interval, cut short by the end of training
    assert batches == [[1], [2, 3, 4]] or batches == [[1, 2, 3, 4]]
    assert events[-2:] == ["step 4", "progress 0.8 step 4/5"]
    assert [e for e in events if e.startswith("step")] == ["step 1", "step 2", "step 3", "step 4"]

    def broken(_hist_no: str, _steps: list, **_: object) -> None:
        raise RuntimeError("database gone")

    monkeypatch.setattr(flow_module.records, "record_steps", broken)
    with (
        pytest.raises(RuntimeError, match="database gone"),
        flow_module.StepRecorder("h1", 5, logger, None) as recorder,
    ):
        recorder(report(1))
    with (
        pytest.raises(KeyError),  # a training error wins over a recording error
        flow_module.StepRecorder("h1", 5, logger, None) as recorder,
    ):
        recorder(report(1))
        raise KeyError("training failed")
