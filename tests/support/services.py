"""Real network services the stack talks to: an S3 server (moto) and an SMTP server (aiosmtpd) for the
offline platform, and an OpenLineage consumer (tests/support/openlineage.py) for DataFlow runs.

The pytest controller starts them before the shared stack, because the runner (which sends mail and
reads S3) must know their addresses from its start; test workers find them through SERVICES_ENV. The
S3 server checks signatures (moto's IAM auth), so a wrong secret key really fails; mails are written to a
Maildir folder any xdist worker can read.
"""

from __future__ import annotations

import json
import logging
import mailbox
import os
import time
from dataclasses import asdict, dataclass
from email.message import Message
from pathlib import Path

from tests.support.openlineage import LineageCollector

SERVICES_ENV = "FLOWBRIDGE_TEST_SERVICES"
REGION = "us-east-1"
API_TOKEN = "test-token-1"  # the token tests/support/stack.py puts in the stack's settings


@dataclass(frozen=True)
class ServicesInfo:
    s3_host: str
    s3_port: int
    access_key: str
    secret_key: str
    smtp_host: str
    smtp_port: int
    maildir: str
    openlineage_url: str
    openlineage_dir: str

    @property
    def s3_url(self) -> str:
        return f"http://{self.s3_host}:{self.s3_port}"

    def s3_client(self, secret_key: str | None = None):  # type: ignore[no-untyped-def]
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.s3_url,
            region_name=REGION,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            config=Config(s3={"addressing_style": "path"}),
        )

    def mails(self) -> list[Message]:
        return list(mailbox.Maildir(self.maildir, create=False))

    def wait_mail(self, predicate: object, timeout: float = 60) -> Message:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.mails():
                if predicate(message):  # type: ignore[operator]
                    return message
            time.sleep(0.3)
        raise AssertionError(f"no matching mail within {timeout:.0f} s; got {len(self.mails())} mail(s)")

    def stack_env(self) -> dict[str, str]:
        """What the stack's processes need: the SMTP server, and the API token the tests send."""
        return {
            "FLOWBRIDGE_SMTP_HOST": self.smtp_host,
            "FLOWBRIDGE_SMTP_PORT": str(self.smtp_port),
            "FLOWBRIDGE_API_TOKENS": API_TOKEN,
            "FLOWBRIDGE_OPENLINEAGE_URL": self.openlineage_url,
        }


class TestServices:
    """Start both servers on free 127.0.0.1 ports; `stop()` ends them."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._moto = None
        self._smtp = None
        self._lineage: LineageCollector | None = None

    def start(self) -> ServicesInfo:
        try:
            s3_host, s3_port, key, secret = self._start_s3()
            smtp_host, smtp_port = self._start_smtp()
            self._lineage = LineageCollector(self.folder / "openlineage").start()
        except BaseException:
            self.stop()
            raise
        return ServicesInfo(
            s3_host,
            s3_port,
            key,
            secret,
            smtp_host,
            smtp_port,
            str(self.folder / "mail"),
            self._lineage.url,
            str(self._lineage.folder),
        )

    def _start_s3(self) -> tuple[str, int, str, str]:
        import boto3
        from moto import settings as moto_settings
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._moto.start()
        host, port = self._moto.get_host_and_port()
        iam = boto3.client(
            "iam",
            endpoint_url=f"http://{host}:{port}",
            region_name=REGION,
            aws_access_key_id="setup",
            aws_secret_access_key="setup",
        )
        iam.create_user(UserName="ceph-user")
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        iam.put_user_policy(UserName="ceph-user", PolicyName="all", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="ceph-user")["AccessKey"]
        moto_settings.INITIAL_NO_AUTH_ACTION_COUNT = 0  # from now on every request's signature is checked
        return host, int(port), key["AccessKeyId"], key["SecretAccessKey"]

    def _start_smtp(self) -> tuple[str, int]:
        from aiosmtpd.controller import Controller
        from aiosmtpd.handlers import Mailbox

        from flowbridge.stack import free_port

        maildir = self.folder / "mail"
        maildir.parent.mkdir(parents=True, exist_ok=True)
        port = free_port()
        self._smtp = Controller(Mailbox(str(maildir)), hostname="127.0.0.1", port=port)
        self._smtp.start()
        return "127.0.0.1", port

    def stop(self) -> None:
        if self._lineage is not None:
            self._lineage.stop()
            self._lineage = None
        if self._smtp is not None:
            self._smtp.stop()
            self._smtp = None
        if self._moto is not None:
            self._moto.stop()
            self._moto = None


def encode(info: ServicesInfo) -> str:
    return json.dumps(asdict(info))


def shared_services() -> ServicesInfo | None:
    raw = os.environ.get(SERVICES_ENV)
    return ServicesInfo(**json.loads(raw)) if raw else None


_local: tuple[TestServices, ServicesInfo] | None = None


def session_services(folder: Path) -> ServicesInfo:
    """The controller's services when there are any, else ones started in this process (unit runs)."""
    global _local
    shared = shared_services()
    if shared is not None:
        return shared
    if _local is None:
        import atexit

        started = TestServices(folder)
        _local = (started, started.start())
        atexit.register(started.stop)
    return _local[1]
