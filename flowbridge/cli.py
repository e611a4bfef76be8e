"""`flowbridge` command: start the embedded stack or one part of it, and try a job from the shell."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import httpx


def _up(_args: argparse.Namespace) -> int:
    from flowbridge.settings import get_settings
    from flowbridge.stack import EmbeddedStack

    settings = get_settings()
    stack = EmbeddedStack(settings, log_dir=settings.data_dir / "logs")
    print(
        f"flowbridge: data in {settings.data_dir}; component logs in {settings.data_dir / 'logs'}", flush=True
    )
    try:
        stack.start()
    except BaseException:
        stack.stop()
        raise
    print(
        "\nflowbridge is up:\n"
        f"  legacy APIs (bridge)  {stack.bridge_url}   (OpenAPI: {stack.bridge_url}/docs)\n"
        f"  GasFlux web page      {stack.bridge_url}/\n"
        f"  Prefect UI            {stack.prefect_ui_url}\n"
        f"  Prefect API           {stack.prefect_api_url}\n"
        + (
            f"  001 dev token         {settings.api_tokens[0].get_secret_value()}\n"
            if settings.api_tokens
            else ""
        )
        + "Ctrl-C stops everything.",
        flush=True,
    )
    return stack.wait()


def _serve(_args: argparse.Namespace) -> int:
    from deployments.serve import main

    main()
    return 0


def _worker(args: argparse.Namespace) -> int:
    """A warm process worker for a work pool (the scale-out path; see README "More workers")."""
    import asyncio

    from deployments.warm_worker import serve_pool

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_pool(args.pool, args.limit, args.name))
    return 0


def _bridge(args: argparse.Namespace) -> int:
    import uvicorn

    from flowbridge.settings import get_settings

    settings = get_settings()
    uvicorn.run(
        "api_bridge.app:create_app", factory=True, host=settings.host, port=args.port or settings.port
    )
    return 0


def _db(_args: argparse.Namespace) -> int:
    from storage.metadata import migrate

    migrate()
    print("metadata database is up to date")
    return 0


def _submit(args: argparse.Namespace) -> int:
    """Upload a CSV through the 000 API and start its forecast, as a legacy client would."""
    base = args.url.rstrip("/")
    with Path(args.file).open("rb") as handle:
        upload = httpx.post(f"{base}/upload_file", files={"flow_file": handle}, timeout=60).json()
    print(json.dumps(upload, ensure_ascii=False))
    if upload.get("ret") != "6000":
        return 1
    started = httpx.post(f"{base}/get_flow", data={"work_id": upload["work_id"]}, timeout=60).json()
    print(json.dumps(started, ensure_ascii=False))
    if started.get("ret") != "4000":
        return 1
    return _wait_with_progress(base, started["work_id"]) if args.wait else 0


def _progress(answer: dict) -> float:
    text = str(answer.get("process", "0")).rstrip("%")
    try:
        return float(text)
    except ValueError:
        return 0.0


def _wait_with_progress(base: str, work_id: str, poll_seconds: float = 0.5) -> int:
    """A live bar (percentage, elapsed, ETA from the job's own pace) on stderr until the job ends; then the
    final answer and, on success, the result links on stdout."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as bar:
        job = bar.add_task(f"forecast {work_id[:8]}", total=100)
        while True:
            answer = httpx.post(f"{base}/get_resu_process", data={"work_id": work_id}, timeout=30).json()
            bar.update(job, completed=_progress(answer))
            if answer.get("ret") != "5000" or answer.get("process") == "100%":
                break
            time.sleep(poll_seconds)
    print(json.dumps(answer, ensure_ascii=False), flush=True)
    if answer.get("ret") != "5000":
        return 1
    print(f"forecast: {base}/static/download/{work_id}.csv", flush=True)
    print(f"bounds:   {base}/static/download/{work_id}_bounds.csv", flush=True)
    return 0


def _status(args: argparse.Namespace) -> int:
    base = args.url.rstrip("/")
    if args.wait:
        return _wait_with_progress(base, args.work_id)
    answer = httpx.post(f"{base}/get_resu_process", data={"work_id": args.work_id}, timeout=30).json()
    print(json.dumps(answer, ensure_ascii=False), flush=True)
    return 0 if answer.get("ret") == "5000" else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flowbridge", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "up", help="start Prefect server, runner and bridge (what `make run` does)"
    ).set_defaults(func=_up)
    commands.add_parser("serve", help="start only a runner for every deployment").set_defaults(func=_serve)
    worker = commands.add_parser(
        "worker", help="a warm process worker for a work pool (runs fork from a preloaded template)"
    )
    worker.add_argument("--pool", default="flowbridge-process")
    worker.add_argument("--limit", type=int, default=None, help="flow runs at once (default: no limit)")
    worker.add_argument("--name", default=None)
    worker.set_defaults(func=_worker)
    bridge = commands.add_parser("bridge", help="start only the bridge")
    bridge.add_argument("--port", type=int)
    bridge.set_defaults(func=_bridge)
    commands.add_parser("db-upgrade", help="migrate the metadata database").set_defaults(func=_db)
    submit = commands.add_parser("submit", help="upload a traffic CSV and start its forecast (000 API)")
    submit.add_argument("file")
    submit.add_argument("--url", default="http://127.0.0.1:8000")
    submit.add_argument("--wait", action="store_true", help="show a progress bar until the forecast is done")
    submit.set_defaults(func=_submit)
    status = commands.add_parser("status", help="poll a 000 job's progress")
    status.add_argument("work_id")
    status.add_argument("--url", default="http://127.0.0.1:8000")
    status.add_argument("--wait", action="store_true", help="show a progress bar until 100% or an error")
    status.set_defaults(func=_status)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
