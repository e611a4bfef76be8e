"""Failure mails through a real SMTP server (aiosmtpd); a dead server is logged, never raised."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from flowbridge.settings import Settings
from flowbridge.stack import free_port
from tasks.offline.notify import TaskReport, send_task_mail
from tasks.offline.notify import offline_local_time as legacy_time
from tests.support.services import session_services

REPORT = TaskReport(
    task_id=42,
    algorithm="traffic_forecast",
    status="ERROR (failed)",
    reason="input path bucket-1#in does not exist on CEPH http://127.0.0.1:9000",
    add_time=datetime(2024, 3, 1, 7, 0, 0, tzinfo=UTC),
    start_time=datetime(2024, 3, 1, 7, 0, 5, tzinfo=UTC),
    finish_time=None,
)


def test_times_render_in_the_configured_zone() -> None:
    value = datetime(2022, 8, 8, 7, 51, 23, tzinfo=UTC)
    assert legacy_time(value, Settings(offline_time_zone="Asia/Shanghai")) == "2022-08-08 15:51:23"
    assert legacy_time(value, Settings(offline_time_zone="UTC")) == "2022-08-08 07:51:23"
    assert legacy_time(None) is None


def test_mail_reaches_the_smtp_server_with_every_fact(tmp_path: Path) -> None:
    services = session_services(tmp_path)
    settings = Settings(smtp_host=services.smtp_host, smtp_port=services.smtp_port, offline_time_zone="UTC")
    recipient = f"unit-{tmp_path.name}@example.com"
    assert send_task_mail(REPORT, recipient, settings)
    mail = services.wait_mail(lambda m: m["To"] == recipient, timeout=10)
    body = mail.get_payload(decode=True).decode()
    assert "42" in mail["Subject"] and "ERROR" in mail["Subject"]
    for fact in ("traffic_forecast", "ERROR (failed)", "bucket-1#in does not exist", "2024-03-01 07:00:05"):
        assert fact in body


def test_a_dead_smtp_server_is_reported_not_raised() -> None:
    settings = Settings(smtp_host="127.0.0.1", smtp_port=free_port(), smtp_timeout_seconds=2)
    assert send_task_mail(REPORT, "a@example.com", settings) is False
    assert send_task_mail(REPORT, "a@example.com", Settings(smtp_host=None)) is False
