"""Failure mails of the offline platform (001): the document promises one when a task fails or is cancelled.

Sending is best effort by design: a mail problem is logged and never raised, so it can never change a
task's state. Times are rendered as the document shows them ('YYYY-MM-DD HH:MM:SS') in the configured
time zone, the same way the status API renders them.
"""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from zoneinfo import ZoneInfo

from flowbridge.settings import Settings, get_settings

log = logging.getLogger("flowbridge.notify")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def legacy_time(value: datetime | None, settings: Settings | None = None) -> str | None:
    if value is None:
        return None
    zone = ZoneInfo((settings or get_settings()).offline_time_zone)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(zone).strftime(TIME_FORMAT)


@dataclass(frozen=True)
class TaskReport:
    task_id: int
    algorithm: str
    status: str
    reason: str
    add_time: datetime | None
    start_time: datetime | None
    finish_time: datetime | None


def compose(report: TaskReport, recipient: str, settings: Settings) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = f"[flowbridge] offline task {report.task_id} ({report.algorithm}): {report.status}"
    message["From"] = settings.smtp_from
    message["To"] = recipient
    lines = [
        f"taskId:     {report.task_id}",
        f"algorithm:  {report.algorithm}",
        f"status:     {report.status}",
        f"reason:     {report.reason}",
        f"addTime:    {legacy_time(report.add_time, settings) or '-'}",
        f"startTime:  {legacy_time(report.start_time, settings) or '-'}",
        f"finishTime: {legacy_time(report.finish_time, settings) or '-'}",
        f"(times in {settings.offline_time_zone})",
    ]
    message.set_content("\n".join(lines) + "\n")
    return message


def send_task_mail(report: TaskReport, recipient: str, settings: Settings | None = None) -> bool:
    """Mail `report` to `recipient`; True when the SMTP server accepted it. Never raises."""
    settings = settings or get_settings()
    if not settings.smtp_host:
        log.warning("task %s: no SMTP server configured; failure mail not sent", report.task_id)
        return False
    try:
        message = compose(report, recipient, settings)
        timeout = settings.smtp_timeout_seconds
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout) as smtp:
            if settings.smtp_starttls:
                smtp.starttls()
            if settings.smtp_user and settings.smtp_password:
                smtp.login(settings.smtp_user, settings.smtp_password.get_secret_value())
            smtp.send_message(message)
    except Exception as exc:  # best effort: a mail problem must not change the task's status
        log.warning("task %s: failure mail to %s not sent: %s", report.task_id, recipient, exc)
        return False
    log.info("task %s: failure mail sent to %s", report.task_id, recipient)
    return True
