"""SeaweedFS, the S3 store, for the tests: one ``weed mini`` per test session, started exactly as the
embedded stack starts it (``deploy.local.stack.seaweedfs_command``) but on free 127.0.0.1 ports with
its state in a temporary directory, its buckets created; stopped at the end of the session.

Not a test module. The session fixture ``seaweedfs`` (tests/conftest.py) gives a ``SeaweedFS``:
``settings`` are the ``Settings`` fields that point a service at it (``Settings(**seaweedfs.settings,
...)``), ``store`` is a real ``ObjectStore`` on it. Every test of the session writes to the same
server, so a test writes keys of its own: the services' keys name an order number (``new_id``, unique)
or the like; a test whose keys are fixed (a certificate's badge is named by its number, which starts
at 1 in each test's database) takes buckets of its own with ``own_buckets``.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from botocore.exceptions import BotoCoreError, ClientError

from deploy.local.stack import WEED_PORTS, free_ports, seaweedfs_command
from shared.settings import Settings
from shared.storage import ObjectStore, ensure_buckets, s3_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

BUCKET_FIELDS = ("bucket_photos", "bucket_certificates", "bucket_vouchers", "bucket_invoices")
START_TIMEOUT = 60.0  # seconds; it answers in about one
STOP_TIMEOUT = 10.0  # seconds; it stops in about two


@dataclass(frozen=True)
class SeaweedFS:
    """A running SeaweedFS: where it is, and a store and a client on it."""

    endpoint_url: str
    settings: dict[str, Any]  # Settings overrides: the endpoint, the access keys, the buckets created
    store: ObjectStore
    client: S3Client

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """The keys in ``bucket`` under ``prefix``, sorted."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def delete(self, bucket: str, key: str) -> None:
        """The object is gone (as if the store had lost it)."""
        self.client.delete_object(Bucket=bucket, Key=key)

    def empty(self, bucket: str) -> None:
        """Every object in ``bucket`` is gone."""
        for key in self.keys(bucket):
            self.delete(bucket, key)

    @contextlib.contextmanager
    def own_buckets(self) -> Iterator[dict[str, str]]:
        """Empty buckets of the caller's own, as ``bucket_*`` Settings overrides; deleted, with what
        is in them, on exit. (SeaweedFS gives each bucket storage of its own on its first write, in a
        fifth of a second: a module whose tests all need their own buckets can share them and ``empty``
        them before each test.)"""
        suffix = secrets.token_hex(4)
        buckets = {name: f"{self.settings[name]}-{suffix}" for name in BUCKET_FIELDS}
        for bucket in buckets.values():
            self.client.create_bucket(Bucket=bucket)
        try:
            yield buckets
        finally:
            for bucket in buckets.values():
                self.empty(bucket)
                self.client.delete_bucket(Bucket=bucket)


def _settings(endpoint_url: str) -> Settings:
    return Settings(s3_endpoint_url=endpoint_url, s3_public_endpoint_url=None)


def _wait_until_serving(process: subprocess.Popen[bytes], settings: Settings, log: Path) -> None:
    """S3 answers (its port opens first), then the buckets can be created (it serves a moment later)."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"weed mini exited at start ({process.returncode}); see {log}")
        try:
            if httpx.get(f"{settings.s3_endpoint_url}/", timeout=2).status_code < 500:
                ensure_buckets(settings)
                return
        except (httpx.HTTPError, BotoCoreError, ClientError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"SeaweedFS not serving S3 after {START_TIMEOUT}s; see {log}")
        time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to its process group (it is the group's leader), SIGKILL if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _remove_sockets(argv: list[str]) -> None:
    """SeaweedFS names its local sockets /tmp/seaweedfs-<server>-<port>.sock whatever TMPDIR says, and
    leaves some behind: those of this run's ports go."""
    ports = {m.group(1) for arg in argv if (m := re.fullmatch(r"-[\w.]*port(?:\.grpc)?=(\d+)", arg))}
    for sock in Path("/tmp").glob("seaweedfs-*.sock"):
        if sock.stem.rsplit("-", 1)[-1] in ports:
            sock.unlink(missing_ok=True)


@contextlib.contextmanager
def running_seaweedfs(directory: Path) -> Iterator[SeaweedFS]:
    """SeaweedFS on free 127.0.0.1 ports, its state and log (``weed.log``) in ``directory``, serving
    S3 with the project's buckets; its process group stopped on exit."""
    ports = free_ports(list(WEED_PORTS))
    settings = _settings(f"http://127.0.0.1:{ports['s3']}")
    argv, env = seaweedfs_command(directory / "objects", ports, settings)
    log = directory / "weed.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            # Its glog files go to TMPDIR: here, not /tmp.
            env={**os.environ, **env, "TMPDIR": str(directory)},
            start_new_session=True,
            cwd=directory,
        )
    try:
        _wait_until_serving(process, settings, log)
        yield SeaweedFS(
            endpoint_url=settings.s3_endpoint_url,
            settings={
                "s3_endpoint_url": settings.s3_endpoint_url,
                "s3_public_endpoint_url": None,
                "s3_region": settings.s3_region,
                "s3_access_key": settings.s3_access_key,
                "s3_secret_key": settings.s3_secret_key,
                **{name: getattr(settings, name) for name in BUCKET_FIELDS},
            },
            store=ObjectStore(settings),
            client=s3_client(settings),
        )
    finally:
        _stop(process)
        _remove_sockets(argv)
