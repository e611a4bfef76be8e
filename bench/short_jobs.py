"""Short jobs through flowbridge against the same work as a hand-written script (issue 11's goal).

For MRMS training (100k rows x 20 features, 10 steps, SGD and MLP) and the DataFlow 1M-row CSV -> filter ->
aggregate -> Parquet, one run measures, alternating:
- flowbridge: submit -> done through the legacy endpoints (insert_learn_hist until get_sttus_cd answers 6;
  execute-dataflow until get-dataflow-status answers completed), on a fresh embedded stack;
- bare: the same work as a plain Python script in a fresh process, imports included (pandas, scikit-learn,
  skops; pandas and pyarrow), timed from outside the process: what running the code by hand costs.
Both modes of the runner are measured (FLOWBRIDGE_WARM_START true and false), each on its own stack.
Writes bench/results/short_jobs.md.

    .venv/bin/python bench/short_jobs.py [--rows 100000] [--steps 10] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import httpx
from benchstack import RESULTS, embedded_stack, machine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.dataflow_pipeline import BASE, make_csv, pipeline_config
from bench.mrms_training_overhead import ALGORITHMS, dataset

# A hand-written trainer producing the job's outputs: the same split, preprocessing, one partial_fit per
# step with the four metrics on at most 5,000 rows per split, and a skops export, on one thread as the flow.
MRMS_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np, pandas as pd, skops.io as sio
    from threadpoolctl import threadpool_limits
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import SGDClassifier
    from sklearn.metrics import accuracy_score, log_loss
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import StandardScaler

    path, alg, steps, hyper = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
    with threadpool_limits(limits=1):
        frame = pd.read_csv(path)
        y = frame.pop("label").to_numpy()
        x_tr, x_va, y_tr, y_va = train_test_split(frame, y, test_size=0.2, random_state=0, stratify=y)
        pre = ColumnTransformer([("n", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                                  list(frame.columns))])
        x_tr, x_va = pre.fit_transform(x_tr), pre.transform(x_va)
        classes = np.unique(y)
        if alg == "sgd_classifier":
            model = SGDClassifier(loss="log_loss", random_state=0, **hyper)
        else:
            model = MLPClassifier(random_state=0, **hyper)
        for step in range(steps):
            model.partial_fit(x_tr, y_tr, classes=classes)
            for xs, ys in ((x_tr[:5000], y_tr[:5000]), (x_va[:5000], y_va[:5000])):
                proba = model.predict_proba(xs)
                log_loss(ys, proba, labels=classes), accuracy_score(ys, classes[proba.argmax(1)])
        sio.dumps(Pipeline([("preprocess", pre), ("model", model)]))
    """
)

DATAFLOW_SCRIPT = textwrap.dedent(
    """
    import sys
    import pandas as pd
    frame = pd.read_csv(sys.argv[1])
    frame = frame.query("amount > 10", engine="python")
    frame = frame.groupby(["region"], as_index=False, sort=True).agg(amount=("amount", "sum"),
                                                                     qty=("qty", "mean"))
    frame.to_parquet(sys.argv[2], index=False)
    """
)


def script_seconds(script: str, *args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", script, *args], check=True, capture_output=True)
    return time.perf_counter() - started


def mrms_job(client: httpx.Client, project_id: str, alg_id: str, hyper: dict, steps: int) -> float:
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
        time.sleep(0.05)
    assert status == "6", f"training {hist_no} failed"
    return time.perf_counter() - started


def dataflow_job(client: httpx.Client, dataflow_id: int) -> float:
    started = time.perf_counter()
    answer = client.post(f"{BASE}/execute-dataflow/{dataflow_id}", json={}).json()
    assert answer["code"] == 200, answer
    while True:
        status = client.get(f"{BASE}/get-dataflow-status/{dataflow_id}").json()["data"]
        if status["status"] in {"completed", "failed"}:
            break
        time.sleep(0.05)
    assert status["status"] == "completed", status
    return time.perf_counter() - started


def measure(
    warm: bool, folder: Path, csv_path: Path, sales: Path, steps: int, repeat: int
) -> dict[str, list]:
    """{job: [(flowbridge seconds, bare seconds), ...]} alternating the order of the two."""
    pairs: dict[str, list] = {}
    with (
        embedded_stack(warm_start=warm) as stack,
        httpx.Client(base_url=stack.bridge_url, timeout=120) as client,
    ):
        upload = client.post(
            "/mrms/dataset_upload",
            files={"file": ("bench.csv", csv_path.read_bytes())},
            data={"target": "label"},
        )
        project_id = f"bench-{uuid.uuid4().hex[:8]}"
        body = {"project_id": project_id, "project_purpose_cd": "1", "dataset_id": upload.text, "status": "3"}
        assert client.post("/mrms/project_create", json=body).text == "1"
        config = pipeline_config(sales, folder / "flow.parquet")
        created = client.post(
            f"{BASE}/add-dataflow", json={"name": f"bench {warm}", "description": "bench", "config": config}
        ).json()
        dataflow_id = created["data"]["id"]
        jobs = {
            **{
                f"MRMS {alg}": (
                    lambda alg=alg, hyper=hyper: mrms_job(client, project_id, alg, hyper, steps),
                    lambda alg=alg, hyper=hyper: script_seconds(
                        MRMS_SCRIPT, str(csv_path), alg, str(steps), json.dumps(hyper)
                    ),
                )
                for alg, hyper in ALGORITHMS.items()
            },
            "DataFlow 1M rows": (
                lambda: dataflow_job(client, dataflow_id),
                lambda: script_seconds(DATAFLOW_SCRIPT, str(sales), str(folder / "bare.parquet")),
            ),
        }
        for name, (through_flowbridge, by_hand) in jobs.items():
            through_flowbridge(), by_hand()  # warm-up: page cache, the runner's first run of this flow
            for index in range(repeat):
                if index % 2:
                    flow_seconds, bare_seconds = through_flowbridge(), by_hand()
                else:
                    bare_seconds, flow_seconds = by_hand(), through_flowbridge()
                pairs.setdefault(name, []).append((flow_seconds, bare_seconds))
                print(
                    f"  warm={warm} {name}: flowbridge {flow_seconds:.2f}s bare {bare_seconds:.2f}s",
                    flush=True,
                )
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        csv_path = folder / "mrms.csv"
        dataset(args.rows).to_csv(csv_path, index=False)
        sales = folder / "sales.csv"
        make_csv(sales)
        cold = measure(False, folder, csv_path, sales, args.steps, args.repeat)
        warm = measure(True, folder, csv_path, sales, args.steps, args.repeat)
    med = statistics.median
    lines = [
        f"Machine: {machine()}; load average at start {load:.1f}. Median of {args.repeat} alternating pairs;",
        "bare = a hand-written script in a fresh process, imports included, timed from outside.",
        "",
        "| job | bare script (s) | flowbridge cold start (s) | ratio | flowbridge warm start (s) | ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in warm:
        bare = med([b for _, b in warm[name] + cold[name]])
        cold_s, warm_s = med([f for f, _ in cold[name]]), med([f for f, _ in warm[name]])
        lines.append(
            f"| {name} | {bare:.2f} | {cold_s:.2f} | {cold_s / bare:.2f}× | {warm_s:.2f} "
            f"| {warm_s / bare:.2f}× |"
        )
    text = "\n".join([*lines, ""])
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "short_jobs.md").write_text(text)


if __name__ == "__main__":
    main()
