"""MRMS training-flow overhead: the Prefect training flow vs the bare scikit-learn fit, same data and steps.

The bare trainer reads the same CSV, preprocesses it the same way and calls the estimator's partial_fit
once per step, with one thread, in a fresh process that has imported what a flow-run process imports
before its run goes RUNNING (as the DataFlow benchmark does; the old baseline, repeats in this warm
process, is shown too); like the flow it then computes the four metrics of
ml_result_json after every step on the same fixed rows (at most `mrms_metric_rows` per split, with the
flow's own `score_step`) and exports the same skops model. Those outputs are what the job produces, so
the baseline does that work too: until issue #5 it skipped them, which charged the flow for scoring and
export any trainer must do (the "fit only" column still shows read + preprocess + partial_fit alone).
The flow run is a real `mrms_training` run of the embedded stack's runner, started by
/mrms/insert_learn_hist: on top of that work it records results, eps and CPU through the metadata DB,
logs, updates its progress artifact and runs under Prefect's flow and task engine. Overhead = flow run
time (Prefect start to end) / bare trainer time - 1; the goal is under 15 % at 100k rows. Prefect
alone (the bare trainer as the one task of a minimal flow, fresh process, same server) shows what
Prefect itself adds before any of flowbridge's bookkeeping; the per-pair overhead (each run against the
bare run just before it) is less sensitive to the shared machine's drift than the ratio of medians. End-to-end
(the HTTP insert until get_sttus_cd answers 6, including the runner's poll and process start) is shown
as well. Bare and flow runs alternate and the medians are reported, since the 2-core machine is shared.

    .venv/bin/python bench/mrms_training_overhead.py [--rows 100000] [--steps 10] [--repeat 5]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import pandas as pd
from benchstack import RESULTS, embedded_stack, machine
from sklearn.datasets import make_classification
from threadpoolctl import threadpool_limits

ALGORITHMS = {"mlp_classifier": {"hidden_layer_sizes": [64]}, "sgd_classifier": {}}


def dataset(rows: int) -> pd.DataFrame:
    x, y = make_classification(
        n_samples=rows, n_features=20, n_informative=10, class_sep=0.8, flip_y=0.05, random_state=0
    )
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])])
    frame["label"] = y
    return frame


def bare_fit(csv: bytes, alg_id: str, hyper: dict, steps: int) -> tuple[float, float]:
    """(fit only, bare trainer) seconds: read + preprocess + `steps` partial_fit calls, and the same plus
    the per-step metrics and the model export: the least any trainer producing the job's outputs does."""
    from flowbridge.settings import get_settings
    from storage.mrms.domain import Purpose
    from tasks.mrms.training import (
        REGISTRY,
        ScoringSample,
        build_estimator,
        export_model,
        prepare_data,
        score_step,
    )

    scoring = 0.0
    started = time.perf_counter()
    with threadpool_limits(limits=1):
        frame = pd.read_csv(io.BytesIO(csv))
        data = prepare_data(frame, target="label", purpose=Purpose.CLASSIFICATION, validation_fraction=0.2)
        estimator = build_estimator(REGISTRY[alg_id], hyper)
        mark = time.perf_counter()
        sample = ScoringSample.of(data, get_settings().mrms_metric_rows)
        scoring += time.perf_counter() - mark
        for step in range(1, steps + 1):
            estimator.partial_fit(data.x_train, data.y_train, classes=data.classes)
            mark = time.perf_counter()
            score_step(estimator, sample, step)
            scoring += time.perf_counter() - mark
        mark = time.perf_counter()
        export_model(data, estimator)
        scoring += time.perf_counter() - mark
    total = time.perf_counter() - started
    return total - scoring, total


def in_fresh_process(mode: str, csv_path: Path, alg_id: str, steps: int) -> tuple[float, float]:
    """The two numbers `--bare` or `--prefect-alone` prints, from a new process that first imports what
    the runner's flow-run process imports before the run goes RUNNING (flows.mrms.training): the same
    first-call costs the flow run pays.

    --bare: (fit only, bare trainer) seconds of `bare_fit`. --prefect-alone: (flow run seconds, bare
    trainer seconds inside it) of the bare trainer as the one task of a minimal flow on the same server,
    i.e. what Prefect alone adds to this work (its flow and task engine, background services, the server
    sharing the machine) before any of flowbridge's bookkeeping."""
    out = subprocess.run(
        [sys.executable, __file__, mode, str(csv_path), alg_id, str(steps)],
        check=True,
        capture_output=True,
        text=True,
    )
    first, second = out.stdout.strip().splitlines()[-1].split()
    return float(first), float(second)


def run_prefect_alone(csv: bytes, alg_id: str, steps: int) -> tuple[float, float]:
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE
    from prefect.client.orchestration import get_client

    @task(cache_policy=NO_CACHE)
    def train() -> float:
        return bare_fit(csv, alg_id, ALGORITHMS[alg_id], steps)[1]

    @flow(name="bench-prefect-alone")
    def training() -> float:
        return train()

    state = training(return_state=True)
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert run.start_time is not None and run.end_time is not None
    return (run.end_time - run.start_time).total_seconds(), state.result()


def flow_run(
    client: httpx.Client, project_id: str, alg_id: str, hyper: dict, steps: int
) -> tuple[float, float]:
    """(flow run seconds from Prefect's start/end, end-to-end seconds seen by a polling client)."""
    from api_bridge.gateway import get_gateway
    from storage.mrms.repository import learn_hist

    hist_no = f"bench-{uuid.uuid4().hex[:8]}"
    body = {
        "learn_hist_no": hist_no,
        "project_id": project_id,
        "alg_id": alg_id,
        "param_id": json.dumps({"steps": steps, **hyper}),
        "learn_sttus_cd": "5",
    }
    started = time.perf_counter()
    assert client.post("/mrms/insert_learn_hist", json=body).text == "1"
    while (status := client.post("/mrms/get_sttus_cd", json={"hist_no": hist_no}).text) not in {"6", "7"}:
        time.sleep(0.5)
    end_to_end = time.perf_counter() - started
    assert status == "6", f"training {hist_no} failed"
    run_id = learn_hist(hist_no)["flow_run_id"]
    # Status 6 is written just before the flow returns: wait for Prefect's end time, or the duration
    # would be measured up to "now" instead.
    while (run := get_gateway().status(run_id, fresh=True)).ended is None:
        time.sleep(0.05)
    assert run.duration_seconds is not None
    return run.duration_seconds, end_to_end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    csv = dataset(args.rows).to_csv(index=False).encode()
    csv_path = Path(tempfile.mkdtemp(prefix="mrms-bench-")) / "bench.csv"
    csv_path.write_bytes(csv)
    rows_out = []
    loads = [os.getloadavg()]
    print(f"load average at start: {' / '.join(f'{v:.1f}' for v in loads[0])}", flush=True)
    with (
        embedded_stack(runner_limit=1) as stack,
        httpx.Client(base_url=stack.bridge_url, timeout=60) as client,
    ):
        upload = client.post(
            "/mrms/dataset_upload", files={"file": ("bench.csv", csv)}, data={"target": "label"}
        )
        dataset_id = upload.text
        project_id = f"bench-{uuid.uuid4().hex[:8]}"
        created = client.post(
            "/mrms/project_create",
            json={
                "project_id": project_id,
                "project_purpose_cd": "1",
                "dataset_id": dataset_id,
                "status": "3",
            },
        )
        assert created.text == "1"
        for alg_id, hyper in ALGORITHMS.items():
            runs: dict[str, list[float]] = {}
            bare_fit(csv, alg_id, hyper, args.steps)  # warm-up of this process's repeats
            for _ in range(args.repeat):
                fit_seconds, bare_seconds = in_fresh_process("--bare", csv_path, alg_id, args.steps)
                alone_seconds, alone_inner = in_fresh_process("--prefect-alone", csv_path, alg_id, args.steps)
                flow_seconds, end_to_end = flow_run(client, project_id, alg_id, hyper, args.steps)
                warm_seconds = bare_fit(csv, alg_id, hyper, args.steps)[1]
                sample = {
                    "fit": fit_seconds,
                    "bare": bare_seconds,
                    "warm": warm_seconds,
                    "alone": alone_seconds,
                    "alone_inner": alone_inner,
                    "flow": flow_seconds,
                    "e2e": end_to_end,
                }
                for key, value in sample.items():
                    runs.setdefault(key, []).append(value)
                print(
                    f"  {alg_id}: bare trainer {bare_seconds:.2f}s Prefect alone {alone_seconds:.2f}s"
                    f" (trainer inside {alone_inner:.2f}s) flow {flow_seconds:.2f}s"
                    f" end-to-end {end_to_end:.2f}s (load {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
                loads.append(os.getloadavg())
            rows_out.append((alg_id, runs))
    lines = [
        "# MRMS training-flow overhead",
        "",
        f"Machine: {machine()}. {args.rows:,} rows x 20 features, {args.steps} steps, 20 % validation,"
        f" one thread, median of {args.repeat} alternating runs. Goal: flow run under 15 % over the bare"
        " trainer.",
        "",
        "| algorithm | fit only (s) | bare trainer (s) | warm repeat (s) | Prefect alone (s) | Prefect alone"
        " overhead | flow run (s) | extra (s) | overhead | per-pair overhead | end-to-end via API (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for alg_id, runs in rows_out:
        med = {key: statistics.median(values) for key, values in runs.items()}
        pair = statistics.median(f / b - 1 for f, b in zip(runs["flow"], runs["bare"], strict=True))
        alone_pair = statistics.median(a / b - 1 for a, b in zip(runs["alone"], runs["bare"], strict=True))
        lines.append(
            f"| {alg_id} | {med['fit']:.2f} | {med['bare']:.2f} | {med['warm']:.2f} | {med['alone']:.2f}"
            f" | {100 * alone_pair:+.1f} % | {med['flow']:.2f} | {med['flow'] - med['bare']:+.2f}"
            f" | {100 * (med['flow'] / med['bare'] - 1):+.1f} % | {100 * pair:+.1f} % | {med['e2e']:.2f} |"
        )
        print(
            f"{alg_id}: trainer inside the Prefect-alone task {med['alone_inner']:.2f}s vs bare"
            f" {med['bare']:.2f}s",
            flush=True,
        )
    one_minute = [load[0] for load in loads]
    lines += [
        "",
        "Fit only: read + preprocess + partial_fit per step. Bare trainer: the same plus the four metrics"
        " of every step on the flow's fixed scoring rows (at most 5,000 per split) and the skops export,"
        " i.e. the job's outputs without any bookkeeping, timed in a fresh process after the flow module's"
        " imports, as the runner runs every flow run (the baseline). Warm repeat: the bare trainer"
        " repeated in the benchmark's own warm process. Prefect alone: the bare trainer as the one task of"
        " a minimal flow, in a fresh process on the same server, Prefect start to end: Prefect's own share."
        " The flow run adds the per-step DB records"
        " (result, eps, CPU; batched, on a background thread), logs, the progress artifact and the"
        " status reports. Per-pair overhead: the median of each run's ratio to the bare trainer timed"
        " just before it. End-to-end adds the runner's poll interval and the flow-run subprocess"
        " start (its imports).",
        f"1-minute load average while measuring: {min(one_minute):.1f} to {max(one_minute):.1f} on"
        f" {os.cpu_count()} cores: other work shares this machine, so compare the extra seconds too.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{Path(__file__).stem}.md").write_text(text)


if __name__ == "__main__":
    if sys.argv[1:2] in (["--bare"], ["--prefect-alone"]):
        import flows.mrms.training  # noqa: F401  (what the flow-run process has imported before RUNNING)

        path, alg, steps = Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
        if sys.argv[1] == "--bare":
            fit_s, bare_s = bare_fit(path.read_bytes(), alg, ALGORITHMS[alg], steps)
            print(f"{fit_s} {bare_s}")
        else:
            flow_s, inner_s = run_prefect_alone(path.read_bytes(), alg, steps)
            print(f"{flow_s} {inner_s}")
    else:
        main()
