"""The embedded stack: every part of the system on one machine, started and stopped as one.

    expo-stack                  # ./expo start: the fixed ports below, state under var/
    expo-stack --free-ports     # any free ports (what the full-stack test does)

Infrastructure: the Temporal dev server (with its Web UI, state in var/temporal.db, the project's
search attributes registered), SeaweedFS as the S3 store (buckets created), a local SMTP server with a
web inbox. Then the migrations, and each service's HTTP API and activity worker as separate processes,
the workflow worker, and the payment gateway and courier sandboxes. Ctrl-C stops everything in reverse
order; the next start continues the workflows that were open.
"""

from __future__ import annotations

import argparse
import compileall
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from deploy.processes import CREATE_ADMIN, IMPORT_SHIPPED, MIGRATE, PROCESSES
from shared.catalogue import load_edition, years_until_open
from shared.db import utcnow
from shared.settings import Settings
from shared.storage import ensure_buckets
from shared.temporal import SEARCH_ATTRIBUTES

PROJECT = Path(__file__).resolve().parents[2]

BIN = Path(sys.executable).parent
API_PORTS = {"registration": 8001, "review": 8002, "payment": 8003, "certificate": 8004, "notification": 8005}
DEFAULT_PORTS = {
    **API_PORTS,
    "gateway": 8010,
    "courier": 8011,
    "temporal": 7233,
    "temporal_ui": 8233,
    "temporal_http": 7243,
    "temporal_metrics": 7244,
    "s3": 8333,
    "weed_master": 9333,
    "weed_volume": 8080,
    "weed_filer": 8888,
    "weed_admin": 23646,
    "smtp": 1025,
    "mail_web": 1080,
}
# SeaweedFS's ports (names as in DEFAULT_PORTS). It opens a gRPC port beside each of them:
# seaweedfs_command pins those too, so two stacks can run side by side.
WEED_PORTS = ("weed_master", "weed_volume", "weed_filer", "s3", "weed_admin")
# The embedded stack's payload key (shared/codec.py): fixed, so that a restart reads the histories the
# last run wrote. Development only: production sets EXPO_PAYLOAD_KEYS from its secret store.
DEV_PAYLOAD_KEYS = "dev-1:ZXhwby1kZXYtcGF5bG9hZC1rZXktMzItYnl0ZXMhISE="


def free_ports(names: list[str]) -> dict[str, int]:
    sockets, ports = [], {}
    for name in names:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
        ports[name] = sock.getsockname()[1]
    for sock in sockets:
        sock.close()
    return ports


def seaweedfs_command(
    directory: Path, ports: Mapping[str, int], settings: Settings
) -> tuple[list[str], dict[str, str]]:
    """SeaweedFS (``weed mini``) as the stack runs it: on 127.0.0.1 with its state under ``directory``,
    S3 on ``ports["s3"]`` (and the other ``WEED_PORTS``; free gRPC ports beside them), taking the access
    keys of ``settings``. Its command line, and the environment to add to start it."""
    weed = [
        str(BIN / "weed"), "mini", f"-dir={directory}",
        "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-s3.port={ports['s3']}", f"-master.port={ports['weed_master']}",
        f"-volume.port={ports['weed_volume']}", f"-filer.port={ports['weed_filer']}",
        f"-admin.port={ports['weed_admin']}",
        "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
    ]  # fmt: skip
    grpc = free_ports([f"{name}_grpc" for name in WEED_PORTS])
    weed += [
        f"-{'s3' if n == 's3' else n.removeprefix('weed_')}.port.grpc={grpc[f'{n}_grpc']}" for n in WEED_PORTS
    ]
    env = {
        "AWS_ACCESS_KEY_ID": settings.s3_access_key,
        "AWS_SECRET_ACCESS_KEY": settings.s3_secret_key.get_secret_value(),
    }
    return weed, env


@dataclass
class Process:
    name: str
    argv: list[str]
    health_url: str | None = None  # None: ready once started (workers)
    env: dict[str, str] = field(default_factory=dict)
    popen: subprocess.Popen[bytes] | None = None


class Stack:
    def __init__(
        self,
        data_dir: Path,
        ports: dict[str, int] | None = None,
        *,
        year_shift: int | None = None,
        database_url: str | None = None,
        edition: str = "ciie6",
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.ports = ports or dict(DEFAULT_PORTS)
        self.edition = edition
        self.year_shift = (
            year_shift if year_shift is not None else years_until_open(load_edition(edition), utcnow())
        )
        self.database_url = database_url
        self.extra_env = extra_env or {}  # settings of the caller's for every process (benchmarks)
        self.processes: list[Process] = []
        self.logs = self.data_dir / "logs"

    # ------------------------------------------------------------------ configuration

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    @property
    def env(self) -> dict[str, str]:
        """What every child process reads through shared.settings."""
        env = {
            "EXPO_DATA_DIR": str(self.data_dir),
            "EXPO_EDITION": self.edition,
            "EXPO_EDITION_YEAR_SHIFT": str(self.year_shift),
            "EXPO_TEMPORAL_ADDRESS": f"127.0.0.1:{self.ports['temporal']}",
            "EXPO_TEMPORAL_UI_URL": self.url("temporal_ui"),
            "EXPO_S3_ENDPOINT_URL": self.url("s3"),
            "EXPO_SMTP_HOST": "127.0.0.1",
            "EXPO_SMTP_PORT": str(self.ports["smtp"]),
            "EXPO_GATEWAY_URL": self.url("gateway"),
            "EXPO_COURIER_URL": self.url("courier"),
            **{f"EXPO_{service.upper()}_URL": self.url(service) for service in API_PORTS},
            # Payloads are encrypted here as in production (a key of the environment's, if set), and the
            # UI on this stack's port may ask the review service to decode them.
            "EXPO_PAYLOAD_KEYS": os.environ.get("EXPO_PAYLOAD_KEYS", DEV_PAYLOAD_KEYS),
            "EXPO_CODEC_CORS_ORIGINS": f"{self.url('temporal_ui')},http://localhost:{self.ports['temporal_ui']}",
        }
        if self.database_url:
            env["EXPO_DATABASE_URL"] = self.database_url
        return env | self.extra_env

    @property
    def settings(self) -> Settings:
        return Settings.model_validate(
            {key.removeprefix("EXPO_").lower(): value for key, value in self.env.items()}
        )

    def _infrastructure(self) -> list[Process]:
        p = self.ports
        temporal = [
            str(BIN / "temporal"), "server", "start-dev",
            "--ip", "127.0.0.1", "--port", str(p["temporal"]), "--ui-port", str(p["temporal_ui"]),
            "--http-port", str(p["temporal_http"]), "--metrics-port", str(p["temporal_metrics"]),
            "--db-filename", str(self.data_dir / "temporal.db"),
            "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal",
            "--ui-disable-news-fetch", "--log-level", "warn",
            "--ui-codec-endpoint", f"{self.url('review')}/codec",
        ]  # fmt: skip
        for key in SEARCH_ATTRIBUTES:
            temporal += ["--search-attribute", f"{key.name}=Keyword"]
        weed, weed_env = seaweedfs_command(self.data_dir / "objects", p, self.settings)
        mailbox = [
            sys.executable, "-m", "deploy.local.mailbox", "--dir", str(self.data_dir / "mail"),
            "--smtp-port", str(p["smtp"]), "--http-port", str(p["mail_web"]),
        ]  # fmt: skip
        return [
            Process("temporal", temporal, f"{self.url('temporal_ui')}/"),
            Process("objects", weed, f"{self.url('s3')}/", env=weed_env),
            Process("mailbox", mailbox, f"{self.url('mail_web')}/healthz"),
        ]

    def _services(self) -> list[Process]:
        """The long-running processes of deploy/processes.py, each API on its port of the stack."""
        settings, processes = self.settings, []
        for spec in PROCESSES:
            if spec.kind in ("api", "sandbox"):
                port = self.ports[spec.service or spec.name.removesuffix("-sandbox")]
                argv = [sys.executable, *spec.argv(settings, host="127.0.0.1", port=port)]
                processes.append(Process(spec.name, argv, f"http://127.0.0.1:{port}/healthz"))
            elif spec.kind == "worker":
                processes.append(Process(spec.name, [sys.executable, *spec.argv(settings)]))
        return processes

    # ------------------------------------------------------------------ lifecycle

    def _spawn(self, process: Process) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = (self.logs / f"{process.name}.log").open("ab")
        env = {**os.environ, **self.env, **process.env, "PYTHONUNBUFFERED": "1"}
        # A session of its own: Ctrl-C reaches the launcher only, which stops children in order.
        process.popen = subprocess.Popen(  # noqa: S603 - our own binaries
            process.argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            cwd=self.data_dir,
        )  # fmt: skip
        log.close()
        self.processes.append(process)

    def _wait_ready(self, processes: list[Process], timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        pending = [p for p in processes if p.health_url]
        while pending:
            for process in list(pending):
                assert process.popen is not None
                if process.popen.poll() is not None:
                    raise RuntimeError(f"{process.name} exited at start; see {self.logs / process.name}.log")
                try:
                    if httpx.get(process.health_url or "", timeout=2).status_code < 500:
                        pending.remove(process)
                except httpx.HTTPError:
                    pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"not ready after {timeout}s: {', '.join(p.name for p in pending)}")
            time.sleep(0.2)
        for process in processes:  # workers have no port: alive after start is ready
            assert process.popen is not None
            if process.popen.poll() is not None:
                raise RuntimeError(f"{process.name} exited at start; see {self.logs / process.name}.log")

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        compile_ahead()
        try:
            infrastructure = self._infrastructure()
            for process in infrastructure:
                self._spawn(process)
            self._wait_ready(infrastructure)
            self._retry(lambda: ensure_buckets(self.settings))
            settings = self.settings
            # Migrations, last editions' certificate holders shipped as data (returning buyers and
            # re-validation), the organiser's first administrator (password: EXPO_ADMIN_PASSWORD, or
            # the dev default).
            for job in (MIGRATE, IMPORT_SHIPPED, CREATE_ADMIN):
                subprocess.run(  # noqa: S603 - the project's own modules
                    [sys.executable, *job.argv(settings)],
                    env={
                        "EXPO_ADMIN_PASSWORD": settings.admin_password.get_secret_value(),
                        **os.environ,
                        **self.env,
                    },
                    check=True,
                    cwd=self.data_dir,
                )
            services = self._services()
            for process in services:
                self._spawn(process)
            self._wait_ready(services)
            # For the demo and for people: `set -a; . var/stack.env` points a shell at this stack.
            (self.data_dir / "stack.env").write_text("".join(f"{k}={v}\n" for k, v in self.env.items()))
        except BaseException:
            self.stop()
            raise

    def add_worker(self, name: str, copy: int) -> Process:
        """Another process of the worker ``name`` (deploy/processes.py) beside the running stack's: it
        shares the task queue (scaling out)."""
        spec = next(spec for spec in PROCESSES if spec.name == name and spec.kind == "worker")
        return self.add_process(Process(f"{name}-{copy}", [sys.executable, *spec.argv(self.settings)]))

    def add_process(self, process: Process) -> Process:
        """A process of the caller's beside the running stack's (a benchmark's own workers), with the
        stack's settings; stopped with the stack."""
        self._spawn(process)
        self._wait_ready([process])
        return process

    @staticmethod
    def _retry(action: Callable[[], object], attempts: int = 50) -> None:
        """For a server that answers its port before it serves (SeaweedFS's S3 gateway)."""
        for attempt in range(attempts):
            try:
                action()
                return
            except Exception:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.3)

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM in reverse order of start (services before Temporal), then SIGKILL stragglers."""
        for process in reversed(self.processes):
            if process.popen and process.popen.poll() is None:
                process.popen.send_signal(signal.SIGINT if process.name == "temporal" else signal.SIGTERM)
                try:
                    process.popen.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    process.popen.kill()
                    process.popen.wait()
        self.processes.clear()

    def dead(self) -> list[str]:
        return [p.name for p in self.processes if p.popen and p.popen.poll() is not None]

    def banner(self) -> str:
        rows = [
            ("Buyer portal", f"{self.url('registration')}/portal"),
            ("Staff console", f"{self.url('review')}/console"),
            ("Finance pages", f"{self.url('payment')}/finance"),
            ("Temporal Web UI", self.url("temporal_ui")),
            ("Temporal gRPC", f"127.0.0.1:{self.ports['temporal']}"),
            ("Mail inbox", self.url("mail_web")),
            ("SMS outbox", f"{self.url('notification')}/v1/sms-outbox"),
            ("S3 object store", self.url("s3")),
            ("Payment gateway sandbox", f"{self.url('gateway')}/docs"),
            ("Courier sandbox", f"{self.url('courier')}/docs"),
        ]
        for service in API_PORTS:
            rows.append((f"{service.title()} API", f"{self.url(service)}/docs"))
        edition = load_edition(self.edition).shifted(self.year_shift)
        closes = edition.local(edition.deadlines.registration_closes)
        lines = [f"  {name:<26}{url}" for name, url in rows]
        admin = self.settings
        # The embedded stack's own default is shown; a password set in the environment is not.
        password = (
            "$EXPO_ADMIN_PASSWORD"
            if "EXPO_ADMIN_PASSWORD" in os.environ
            else admin.admin_password.get_secret_value()
        )
        lines.append(f"  {'Review staff login':<26}{admin.admin_login} / {password}")
        # The dev server cannot tell the UI to send cookies to the codec endpoint: the browser is told once.
        lines.append(
            f"  {'Temporal UI codec':<26}{self.url('review')}/codec: administrators logged in to the console"
            " see decrypted payloads once the UI's Codec Server settings use it with cross-origin credentials"
        )
        note = f"  Edition {edition.code}: registration closes {closes:%Y-%m-%d %H:%M} Beijing time" + (
            f" (calendar moved {self.year_shift} years ahead for this rehearsal)" if self.year_shift else ""
        )
        return "\n".join(["", *lines, "", note, f"  Data and logs: {self.data_dir}", ""])


@contextmanager
def running(stack: Stack) -> Iterator[Stack]:
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def compile_ahead() -> None:
    """The project's modules compiled to bytecode before any process starts, as the image does
    (deploy/docker/Dockerfile). Where PYTHONDONTWRITEBYTECODE is set, every process would otherwise
    compile them at each start, and the workflow worker's sandbox at each new workflow (measured: a
    sixth of its time in a lifecycle benchmark)."""
    for package in ("shared", "services", "workflows", "deploy", "bench"):
        compileall.compile_dir(PROJECT / package, quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=Path("var"))
    parser.add_argument("--free-ports", action="store_true", help="pick free ports instead of the defaults")
    args = parser.parse_args()
    ports = free_ports(list(DEFAULT_PORTS)) if args.free_ports else None
    settings = Settings()
    stack = Stack(args.data_dir, ports, database_url=settings.database_url, edition=settings.edition)
    stop = False

    def request_stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    print("Starting the embedded stack ...", flush=True)
    stack.start()
    print(stack.banner() + "\nRunning. Ctrl-C stops everything.", flush=True)
    reported: set[str] = set()
    while not stop:
        for name in set(stack.dead()) - reported:
            print(f"!! {name} exited; see {stack.logs / name}.log", flush=True)
            reported.add(name)
        time.sleep(0.5)
    print("\nStopping ...", flush=True)
    stack.stop()
    print("Stopped.", flush=True)


if __name__ == "__main__":
    main()
