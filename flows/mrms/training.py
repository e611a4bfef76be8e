"""003 MRMS training of one learning history as a Prefect flow run.

The flow reports through the same domain functions (storage.mrms.repository) an external worker reaches over
the legacy endpoints: status 5 with task_idx "0" and the start time, then per step ml_result_json, eps
and CPU percent, then the end time and status 6, or 7 with the error and its stack trace. Several
histories of one project are separate flow runs, so they train concurrently on the runner.
"""

from __future__ import annotations

import contextlib
import math
import queue
import threading
import time
import traceback
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from pydantic import BaseModel, Field
from threadpoolctl import threadpool_limits

from storage.filesystems import get_storage
from storage.mrms import repository as records
from storage.mrms.domain import NO_MESSAGE, WORKER_IDX, LearnStatus, Purpose, TimeType
from tasks.mrms.profile import read_dataset
from tasks.mrms.training import (
    MODEL_FILE,
    REGISTRY,
    StepReport,
    TrainingError,
    default_config,
    export_model,
    prepare_data,
    split_params,
    train_iteratively,
)
from tasks.progress import Progress
from tasks.run_logs import flush_run_logs, start_log_flush

STAGES = ["prepare", "train", "export"]


class MrmsTrainingParams(BaseModel):
    learn_hist_no: str = Field(description="The learning history to train (its row holds everything else).")


@task(name="train_worker", cache_policy=NO_CACHE)
def train_worker(learn_hist_no: str, run_id: str, progress: Progress | None = None) -> dict[str, Any]:
    """Worker "0": report status 5, load, train step by step recording every step, export the model
    beside the run.

    Not retried: a second attempt would re-record steps an external reader has already seen.
    """
    logger = get_run_logger()
    job = records.begin_training(learn_hist_no, task_idx=WORKER_IDX, when=datetime.now(UTC), run_id=run_id)
    hist, project, dataset = job.hist, job.project, job.dataset
    algorithm = REGISTRY.get(hist["alg_id"] or "")
    if algorithm is None:
        raise TrainingError(f"algorithm {hist['alg_id']!r} is not in flowbridge's registry")
    if not project["dataset_id"]:
        raise TrainingError(f"project {hist['project_id']!r} has no dataset_id")
    if dataset is None:
        raise TrainingError(f"dataset {project['dataset_id']!r} of project {hist['project_id']!r} not found")
    config, hyper = split_params(hist["params"], default_config())
    storage = get_storage()
    with threadpool_limits(limits=1):
        frame = read_dataset(storage, dataset)
        data = prepare_data(
            frame,
            target=dataset["target"],
            purpose=Purpose(project["purpose"]),
            validation_fraction=config.validation_fraction,
            time_column=dataset["time_column"],
        )
        logger.info(
            "worker %s: %s on %d training and %d validation rows, %d features, up to %d steps",
            WORKER_IDX,
            algorithm.alg_id,
            len(data.y_train),
            len(data.y_val),
            data.x_train.shape[1],
            config.steps,
        )
        if progress:
            progress.stage("train", f"{algorithm.alg_id}: {config.steps} steps")
        # Every step is recorded (DB rows, log line, progress) by a background thread, so the training
        # thread never waits for the database, the Prefect API or the log handler.
        with StepRecorder(learn_hist_no, config.steps, logger, progress, run_id=run_id) as recorder:
            outcome = train_iteratively(algorithm, hyper, data, config, project["early_stop"], recorder)
            blob, sha256 = export_model(data, outcome.estimator)
    if outcome.stopped_early:
        logger.info("early stopping after step %d: %s", outcome.steps_run, project["early_stop"].as_json())
    storage.write_result(run_id, MODEL_FILE, blob)
    model_path = f"runs/{run_id}/{MODEL_FILE}"
    records.finish_training(
        learn_hist_no,
        model_path=model_path,
        model_sha256=sha256,
        stopped_early=outcome.stopped_early,
        run_id=run_id,
    )
    logger.info("model exported to %s (skops, sha256 %s)", model_path, sha256)
    return {
        "steps": outcome.steps_run,
        "stopped_early": outcome.stopped_early,
        "final": outcome.history[-1],
        "model": model_path,
        "sha256": sha256,
    }


class StepRecorder:
    """Records training steps in order on one background thread, batched.

    Each flush writes every step queued since the previous flush in one transaction (exactly the rows an
    external worker's learn_result_update, eps_update and model_resources calls leave), then logs the
    steps and advances the progress artifact. Flushes are at least `interval` seconds apart, so a reader
    sees a step at most that much later however fast steps come; leaving the context flushes the rest
    and re-raises a recording error (unless training itself failed).
    """

    def __init__(
        self,
        learn_hist_no: str,
        total_steps: int,
        logger: Any,
        progress: Progress | None,
        interval: float = 1.0,
        run_id: str | None = None,
    ) -> None:
        self.learn_hist_no = learn_hist_no
        self.run_id = run_id
        self.total_steps = total_steps
        self.logger = logger
        self.progress = progress
        self.interval = interval
        self._queue: queue.SimpleQueue[StepReport | None] = queue.SimpleQueue()
        self._wake = threading.Event()  # the end of training cuts a pause short
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="mrms-record", daemon=True)

    def __enter__(self) -> StepRecorder:
        self._thread.start()
        return self

    def __call__(self, report: StepReport) -> None:
        self._queue.put(report)

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self._queue.put(None)
        self._wake.set()
        self._thread.join()
        if self._error is not None and exc_type is None:
            raise self._error

    def _run(self) -> None:
        last_flush = -math.inf
        while True:
            batch = [self._queue.get()]
            pause = last_flush + self.interval - time.monotonic()
            if batch[0] is not None and pause > 0:
                self._wake.wait(pause)
            with contextlib.suppress(queue.Empty):
                while True:
                    batch.append(self._queue.get_nowait())
            reports = [r for r in batch if r is not None]
            if reports and self._error is None:
                try:
                    self._record(reports)
                except BaseException as exc:  # raised on the training thread when the context closes
                    self._error = exc
            last_flush = time.monotonic()
            if len(reports) < len(batch):
                return

    def _record(self, reports: list[StepReport]) -> None:
        records.record_steps(
            self.learn_hist_no,
            [records.StepRecord(r.result, r.eps, r.cpu_percent) for r in reports],
            run_id=self.run_id,
        )
        for report in reports:
            self.logger.info(
                "step %d: loss=%.4f accuracy=%.4f val_loss=%.4f val_accuracy=%.4f eps=%.0f cpu=%.0f%%",
                report.step,
                report.result["loss"],
                report.result["accuracy"],
                report.result["val_loss"],
                report.result["val_accuracy"],
                report.eps,
                report.cpu_percent,
            )
        if self.progress:
            step = reports[-1].step
            self.progress.advance(step / self.total_steps, f"step {step}/{self.total_steps}")


def _report_state(hist_no: str, status: LearnStatus, message: str, kind: TimeType, run_id: str) -> None:
    """Worker "0"'s status with its start or end time now: update_learn_status + update_time, one commit."""
    records.update_learn_status_and_time(
        hist_no, status, message, task_idx=WORKER_IDX, kind=kind, when=datetime.now(UTC), run_id=run_id
    )


def _mark_failed(_flow: Any, run: Any, state: Any) -> None:
    """A crashed or cancelled run never reached the flow's own error handling: close the history."""
    hist_no = (run.parameters or {}).get("learn_hist_no")
    if hist_no:
        records.close_lost_run(hist_no, state.name, state.message, datetime.now(UTC), run_id=str(run.id))


@flow(
    name="mrms-training",
    on_failure=[_mark_failed],
    on_crashed=[_mark_failed],
    on_cancellation=[_mark_failed],
)
def mrms_training(learn_hist_no: str) -> dict[str, Any]:
    params = MrmsTrainingParams(learn_hist_no=learn_hist_no)
    hist_no = params.learn_hist_no
    run_id = str(flow_run.get_id())
    progress = Progress(STAGES, min_interval=2.0, background=True)  # no round trip on the training path
    try:
        progress.stage("prepare", "reading the dataset")
        try:
            summary = train_worker(hist_no, run_id, progress)
        except records.ForeignRun:
            raise  # another run's history: leave it alone
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
            flush_run_logs()  # a client seeing status 6 or 7 finds every step's line
            _report_state(hist_no, LearnStatus.ERROR, message, TimeType.END, run_id)
            raise
        progress.finish("trained")  # sent in the background while the logs and the summary go out
        logs_sent = start_log_flush()
        get_storage().write_summary(run_id, {"learn_hist_no": hist_no, **summary})
        logs_sent()
        _report_state(hist_no, LearnStatus.DONE, NO_MESSAGE, TimeType.END, run_id)
    finally:
        progress.close()
    return summary
