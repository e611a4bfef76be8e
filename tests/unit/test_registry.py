"""prefect.yaml (work-pool deployments) and the runner must declare exactly the registry's job types."""

from __future__ import annotations

from pathlib import Path

import yaml

from flows.registry import DEPLOYMENT, JOB_TYPES

ROOT = Path(__file__).resolve().parents[2]


def test_prefect_yaml_declares_every_registered_job_type() -> None:
    declared = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    by_flow = {d["flow_name"]: d for d in declared}
    assert set(by_flow) == {job.flow_name for job in JOB_TYPES.values()}
    for job in JOB_TYPES.values():
        entry = by_flow[job.flow_name]
        assert entry["name"] == DEPLOYMENT
        assert entry["entrypoint"] == job.entrypoint
        assert entry["work_pool"]["name"] == "flowbridge-process"
        assert (ROOT / job.entrypoint.split(":")[0]).is_file()
        schedule = entry.get("schedules") or []
        assert bool(schedule) == bool(job.interval_seconds), job.name
        if job.interval_seconds:
            assert schedule[0]["interval"] == job.interval_seconds


def test_every_flow_loads_with_its_registered_name() -> None:
    for job in JOB_TYPES.values():
        assert job.load_flow().name == job.flow_name
        model = job.parameter_model()
        assert model is None or model.model_json_schema()["properties"]
