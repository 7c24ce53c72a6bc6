"""A real S3 endpoint for tests and benchmarks: moto's standalone server on a loopback port.

Reached over HTTP by the real clients (pyarrow, boto3, MLflow); nothing is mocked in-process.
With `auth` (the default), authentication is enforced (moto's INITIAL_NO_AUTH_ACTION_COUNT:
only the first requests, which create the admin user, go unchecked), so wrong credentials
and missing permissions are refused as S3 refuses them. Users: `admin` (everything) and
`reader` (get and list only). The server runs under the project's tether, so it ends with
the test process.

Without `auth` (any credentials pass), the server keeps a write-ahead journal
(tests/s3_journal_server.py), so `kill()` then `start()` on the same port brings back what
the store held. (With auth, replayed IAM requests would make new access keys, so a server
with auth is never restarted.)
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from process_tether import tethered

ALLOW_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
READ_ONLY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["s3:Get*", "s3:List*", "s3:Head*"], "Resource": "*"}],
}
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Keys:
    access_key: str
    secret_key: str


@dataclass
class LocalS3:
    """One moto server (module docstring); `bucket` is created at start."""

    folder: Path
    auth: bool = True
    bucket: str = "compact-reid-test"
    port: int = field(default_factory=free_port)
    admin: Keys | None = None
    reader: Keys | None = None
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, keys: Keys | None = None) -> dict[str, str]:
        """The variables every client reads (AWS_ENDPOINT_URL: pyarrow via this project, boto3, MLflow)."""
        keys = keys or self.admin
        assert keys is not None
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": keys.access_key,
            "AWS_SECRET_ACCESS_KEY": keys.secret_key,
            "AWS_DEFAULT_REGION": REGION,
        }

    def client(self, service: str = "s3", keys: Keys | None = None):
        import boto3

        keys = keys or self.admin
        return boto3.client(
            service,
            endpoint_url=self.url,
            aws_access_key_id=keys.access_key if keys else "setup",
            aws_secret_access_key=keys.secret_key if keys else "setup",
            region_name=REGION,
        )

    # Lifetime --------------------------------------------------------------------------------
    def start(self) -> "LocalS3":
        self.folder.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        if self.auth:
            if self.admin is not None:
                raise RuntimeError("a server with auth cannot be restarted (module docstring)")
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = "4"  # the requests that create the admin
            cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        else:
            env.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)
            journal = self.folder / "journal.jsonl"
            cmd = [sys.executable, str(Path(__file__).with_name("s3_journal_server.py"))]
            cmd += ["--port", str(self.port), "--journal", str(journal)]
        log = open(self.folder / "moto.log", "ab")
        self.process = subprocess.Popen(
            tethered(cmd, grace=2), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        self._wait_listening()
        if self.admin is not None:
            return self  # restarted: the journal brought the bucket back
        if self.auth:
            self._setup()
        else:
            self.admin = self.reader = Keys("testing", "testing")
            self.client().create_bucket(Bucket=self.bucket)
        return self

    def _wait_listening(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return
            except OSError:
                if self.process is not None and self.process.poll() is not None:
                    log = (self.folder / "moto.log").read_text()[-2000:]
                    raise RuntimeError(f"moto server exited: {log}") from None
                time.sleep(0.1)
        raise RuntimeError(f"moto server did not listen on {self.port} within {timeout:.0f}s")

    def _setup(self) -> None:
        iam = self.client("iam", keys=None)  # the 4 unchecked requests
        iam.create_user(UserName="admin")
        key = iam.create_access_key(UserName="admin")["AccessKey"]
        policy = iam.create_policy(PolicyName="all", PolicyDocument=json.dumps(ALLOW_ALL))
        iam.attach_user_policy(UserName="admin", PolicyArn=policy["Policy"]["Arn"])
        self.admin = Keys(key["AccessKeyId"], key["SecretAccessKey"])
        iam = self.client("iam")
        iam.create_user(UserName="reader")
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        policy = iam.create_policy(PolicyName="read-only", PolicyDocument=json.dumps(READ_ONLY))
        iam.attach_user_policy(UserName="reader", PolicyArn=policy["Policy"]["Arn"])
        self.reader = Keys(key["AccessKeyId"], key["SecretAccessKey"])
        self.client().create_bucket(Bucket=self.bucket)

    def kill(self) -> None:
        """SIGKILL the server (its tether's whole group): the store is down until `start()`."""
        if self.process is not None:
            import signal

            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(10)
            self.process = None
        deadline = time.monotonic() + 30  # the server itself dies a moment after its tether
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
            except OSError:
                return
            time.sleep(0.1)

    def stop(self) -> None:
        self.kill()
