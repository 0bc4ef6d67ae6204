"""Gate verification: how fast an entrance gate learns whether a scanned QR code admits.

Starts the certificate API (uvicorn, its own SQLite database under a temporary directory) on a free
127.0.0.1 port, stores N certificates, and sends it a mix of scanned codes over real HTTP from C
concurrent gates: valid cards, the old QR of a reissued card (revoked), another edition's card and
forged codes. Prints the latency percentiles and the throughput, and writes them as JSON.

    python -m bench.gate [--certificates 10000] [--scans 5000] [--gates 16] [--report var/bench/gate.json]

The signature check alone (no HTTP, no database) is timed too: it is the floor of a gate's answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.harness import percentile
from deploy.local.stack import free_ports
from services.certificate.activities import certificate_number
from services.certificate.admission_code import AdmissionClaims, AdmissionCodeError, AdmissionSigner
from services.certificate.models import Certificate
from shared.db import Database
from shared.migrate import upgrade
from shared.settings import Settings


async def seed(settings: Settings, signer: AdmissionSigner, count: int) -> list[str]:
    """``count`` cards of the edition; every tenth one reissued (its serial-1 QR is revoked). Answers a
    mix of codes as gates scan them."""
    upgrade(("certificate",), settings)
    database = Database(settings.service_database_url("certificate"))
    issued = datetime.now(UTC).replace(microsecond=0)
    codes: list[str] = []
    async with database.transaction() as session:
        for n in range(1, count + 1):
            number = certificate_number(6, n)
            serial = 2 if n % 10 == 0 else 1
            session.add(
                Certificate(
                    certificate_no=number,
                    edition=settings.edition,
                    registration_id=f"R{n:09d}",
                    serial=serial,
                    badge_key=f"{settings.edition}/{number}.pdf",
                    issued_at=issued,
                )
            )
            claims = AdmissionClaims(
                edition=settings.edition, certificate_no=number, serial=1, issued_at=issued
            )
            codes.append(signer.sign(claims))  # valid, or the revoked old card of a reissue
    await database.dispose()
    other_edition = AdmissionClaims(edition="ciie5", certificate_no="B05-0000001", serial=1, issued_at=issued)
    forged = AdmissionSigner.generate().sign(
        AdmissionClaims(
            edition=settings.edition, certificate_no=certificate_number(6, 1), serial=1, issued_at=issued
        )
    )
    codes += [signer.sign(other_edition), forged] * max(1, count // 50)
    return codes


async def scan(
    url: str, codes: list[str], scans: int, gates: int
) -> tuple[list[float], dict[str, int], float]:
    latencies: list[float] = []
    verdicts: dict[str, int] = {}
    queue: asyncio.Queue[str] = asyncio.Queue()
    for i in range(scans):
        queue.put_nowait(codes[(i * 7919) % len(codes)])

    async def gate(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            code = queue.get_nowait()
            start = time.perf_counter()
            answer = await client.post(f"{url}/v1/verify", json={"code": code})
            latencies.append(time.perf_counter() - start)
            verdict = answer.json()["verdict"]
            verdicts[verdict] = verdicts.get(verdict, 0) + 1

    limits = httpx.Limits(max_connections=gates, max_keepalive_connections=gates)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        for _ in range(20):  # warm up: connections, the first queries
            await client.post(f"{url}/v1/verify", json={"code": codes[0]})
        start = time.perf_counter()
        await asyncio.gather(*(gate(client) for _ in range(gates)))
        elapsed = time.perf_counter() - start
    return latencies, verdicts, elapsed


def wait_ready(url: str, server: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("the certificate API stopped while starting")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the certificate API did not start")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--certificates", type=int, default=10_000)
    parser.add_argument("--scans", type=int, default=5_000)
    parser.add_argument("--gates", type=int, default=16, help="concurrent gates (HTTP clients)")
    parser.add_argument("--report", type=Path, default=Path("var/bench/gate.json"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="expo-bench-gate-") as tmp:
        signer = AdmissionSigner.generate()
        env = {
            "EXPO_DATA_DIR": tmp,
            "EXPO_ADMISSION_SIGNING_SEED": signer.seed_b64(),
            "EXPO_EDITION": "ciie6",
        }
        settings = Settings.model_validate({"data_dir": tmp, "edition": "ciie6"})
        codes = asyncio.run(seed(settings, signer, args.certificates))

        verifier = signer.verifier()
        start = time.perf_counter()
        for code in codes[:2000]:
            try:
                verifier.verify(code)
            except AdmissionCodeError:  # forged codes are part of the mix
                continue
        signature_ms = (time.perf_counter() - start) / min(2000, len(codes)) * 1000

        port = free_ports(["api"])["api"]
        url = f"http://127.0.0.1:{port}"
        argv = [
            sys.executable, "-m", "uvicorn", "services.certificate.api:app",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        ]  # fmt: skip
        server = subprocess.Popen(argv, env={**os.environ, **env})  # noqa: S603 - our own app
        try:
            wait_ready(url, server)
            latencies, verdicts, elapsed = asyncio.run(scan(url, codes, args.scans, args.gates))
        finally:
            server.terminate()
            server.wait(timeout=20)

    ms = [x * 1000 for x in latencies]
    report = {
        "scenario": "gate verification",
        "certificates": args.certificates,
        "scans": len(ms),
        "gates": args.gates,
        "verdicts": verdicts,
        "scans_per_second": round(len(ms) / elapsed, 1),
        "latency_ms": {
            "p50": round(percentile(ms, 0.50), 2),
            "p95": round(percentile(ms, 0.95), 2),
            "p99": round(percentile(ms, 0.99), 2),
            "mean": round(statistics.fmean(ms), 2),
        },
        "signature_check_ms": round(signature_ms, 3),
    }
    print(f"gate verification: {args.certificates} cards, {len(ms)} scans from {args.gates} gates")
    print(f"  {'scans/s':>10} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'signature ms':>13}")
    lat = report["latency_ms"]
    assert isinstance(lat, dict)
    print(
        f"  {report['scans_per_second']:>10} {lat['p50']:>8} {lat['p95']:>8} {lat['p99']:>8} "
        f"{report['signature_check_ms']:>13}"
    )
    print(f"  verdicts: {verdicts}")
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    print(f"  report: {args.report}")


if __name__ == "__main__":
    main()
