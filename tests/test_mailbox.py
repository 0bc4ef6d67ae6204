"""The local mail server: real SMTP in, real HTTP out, a real Maildir on disk."""

from __future__ import annotations

import asyncio
import html
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

import aiosmtplib
import httpx
import pytest

from deploy.local.mailbox import serve

ROOT = Path(__file__).resolve().parents[1]
CHINESE_SUBJECT = "采购商注册确认 <第6届进博会> & 欢迎"
CHINESE_BODY = "尊敬的张三先生：您的采购商注册已通过审核。"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Running:
    smtp_port: int
    http: httpx.AsyncClient


@asynccontextmanager
async def running_mailbox(directory: Path) -> AsyncIterator[Running]:
    """Run serve() in this loop on fresh ports; always stop it, even when the test body fails."""
    smtp_port, http_port = free_port(), free_port()
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve(directory, "127.0.0.1", smtp_port, http_port, stop, ready=ready))
    try:
        ready_wait = asyncio.create_task(ready.wait())
        await asyncio.wait({ready_wait, task}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        ready_wait.cancel()
        if task.done():
            task.result()  # surface the startup error
        assert ready.is_set(), "mailbox did not start within 10 s"
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=10) as client:
            yield Running(smtp_port, client)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


async def send(
    smtp_port: int,
    to: list[str],
    subject: str,
    text: str,
    html_body: str | None = None,
    login: tuple[str, str] | None = None,
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "CIIE Buyer Registration <buyers@expo.example>"
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain="expo.example")
    msg.set_content(text)
    if html_body is not None:
        msg.add_alternative(html_body, subtype="html")
    username, password = login or (None, None)
    await aiosmtplib.send(
        msg,
        hostname="127.0.0.1",
        port=smtp_port,
        start_tls=False,
        username=username,
        password=password,
        timeout=10,
    )
    return msg


async def test_receives_mail_and_shows_it(tmp_path: Path) -> None:
    async with running_mailbox(tmp_path / "mail") as box:
        assert (await box.http.get("/healthz")).json() == {"status": "ok"}

        await send(box.smtp_port, ["buyer@example.com"], "Welcome to the expo", "Hello, buyer.\n")
        await send(
            box.smtp_port,
            ["zhang.san@example.cn"],
            CHINESE_SUBJECT,
            CHINESE_BODY + "\n",
            f"<html><body><p>{html.escape(CHINESE_BODY)}</p></body></html>",
        )
        await send(box.smtp_port, ["a@example.com", "B@Example.org"], "Two of you", "Hi both.\n")

        response = await box.http.get("/api/messages")
        assert response.status_code == 200
        messages = response.json()
        assert [m["subject"] for m in messages] == ["Two of you", CHINESE_SUBJECT, "Welcome to the expo"]
        two, chinese, plain = messages
        assert plain["from"] == "CIIE Buyer Registration <buyers@expo.example>"
        assert plain["to"] == ["buyer@example.com"]
        assert plain["text"] == "Hello, buyer.\n"
        assert datetime.fromisoformat(plain["date"]).tzinfo is not None
        assert chinese["text"] == CHINESE_BODY + "\n"
        assert two["to"] == ["a@example.com", "B@Example.org"]

        # The `to` filter matches a substring of any recipient, ignoring case; `subject` a substring.
        filtered = (await box.http.get("/api/messages", params={"to": "b@EXAMPLE.org"})).json()
        assert [m["id"] for m in filtered] == [two["id"]]
        filtered = (await box.http.get("/api/messages", params={"to": "example.com"})).json()
        assert [m["id"] for m in filtered] == [two["id"], plain["id"]]
        filtered = (await box.http.get("/api/messages", params={"subject": "进博会"})).json()
        assert [m["id"] for m in filtered] == [chinese["id"]]
        assert (await box.http.get("/api/messages", params={"to": "nobody@"})).json() == []

        detail = (await box.http.get(f"/api/messages/{chinese['id']}")).json()
        assert detail["subject"] == CHINESE_SUBJECT
        assert CHINESE_BODY in detail["html"]
        assert detail["headers"]["Subject"] == CHINESE_SUBJECT
        assert detail["headers"]["To"] == "zhang.san@example.cn"
        assert (await box.http.get(f"/api/messages/{plain['id']}")).json()["html"] is None
        assert (await box.http.get("/api/messages/no-such-id")).status_code == 404

        # The inbox page shows the decoded subject, escaped, and links to the message.
        page = await box.http.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "charset=utf-8" in page.headers["content-type"]
        assert html.escape(CHINESE_SUBJECT) in page.text
        assert "<第6届进博会>" not in page.text
        assert page.text.index("Two of you") < page.text.index("Welcome to the expo")
        assert f'href="/messages/{chinese["id"]}"' in page.text

        shown = await box.http.get(f"/messages/{chinese['id']}")
        assert shown.status_code == 200
        assert html.escape(CHINESE_SUBJECT) in shown.text
        assert CHINESE_BODY in shown.text
        assert f'<iframe sandbox src="/messages/{chinese["id"]}/html"' in shown.text
        framed = await box.http.get(f"/messages/{chinese['id']}/html")
        assert framed.headers["content-security-policy"] == "sandbox"
        assert CHINESE_BODY in framed.text
        assert (await box.http.get(f"/messages/{plain['id']}/html")).status_code == 404


async def test_mail_survives_restart_and_delete_empties(tmp_path: Path) -> None:
    directory = tmp_path / "mail"
    async with running_mailbox(directory) as box:
        await send(box.smtp_port, ["buyer@example.com"], CHINESE_SUBJECT, CHINESE_BODY)

    async with running_mailbox(directory) as box:
        messages = (await box.http.get("/api/messages")).json()
        assert [(m["subject"], m["text"].strip()) for m in messages] == [(CHINESE_SUBJECT, CHINESE_BODY)]

        assert (await box.http.delete("/api/messages")).json() == {"deleted": 1}
        assert (await box.http.get("/api/messages")).json() == []
        assert "No mail yet" in (await box.http.get("/")).text

    async with running_mailbox(directory) as box:
        assert (await box.http.get("/api/messages")).json() == []


async def test_a_message_sent_again_is_kept_once_per_recipient(tmp_path: Path) -> None:
    """As mail stores do: a sender retrying after a crash (the mail went, the log did not say so)
    re-sends the same Message-ID, and the inbox still shows it once, after a restart too."""
    directory = tmp_path / "mail"

    async def deliver(to: list[str], message_id: str | None, subject: str) -> None:
        msg = EmailMessage()
        msg["From"] = "CIIE Buyer Registration <buyers@expo.example>"
        msg["To"] = ", ".join(to)
        msg["Subject"] = subject
        if message_id is not None:
            msg["Message-ID"] = message_id
        msg.set_content("Hello.")
        await aiosmtplib.send(msg, hostname="127.0.0.1", port=box.smtp_port, start_tls=False, timeout=10)

    async with running_mailbox(directory) as box:
        await deliver(["buyer@example.com"], "<R1.3.paid@expo-buyers>", "paid")
        await deliver(["buyer@example.com"], "<R1.3.paid@expo-buyers>", "paid")  # accepted, not kept
        await deliver(["Buyer@Example.com"], "<R1.3.paid@expo-buyers>", "paid")  # the same mailbox
        await deliver(["other@example.com"], "<R1.3.paid@expo-buyers>", "paid")  # another recipient's copy
        await deliver(["buyer@example.com"], "<R1.4.refunded@expo-buyers>", "refunded")
        await deliver(["buyer@example.com"], None, "no id")  # nothing to know it by: always kept
        await deliver(["buyer@example.com"], None, "no id")
        subjects = [m["subject"] for m in (await box.http.get("/api/messages")).json()]
        assert sorted(subjects) == ["no id", "no id", "paid", "paid", "refunded"]

    async with running_mailbox(directory) as box:
        await deliver(["buyer@example.com"], "<R1.3.paid@expo-buyers>", "paid")
        assert len((await box.http.get("/api/messages")).json()) == 5
        assert (await box.http.delete("/api/messages")).json() == {"deleted": 5}
        await deliver(["buyer@example.com"], "<R1.3.paid@expo-buyers>", "paid")  # emptied: kept again
        assert [m["subject"] for m in (await box.http.get("/api/messages")).json()] == ["paid"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_cli_stops_cleanly_on_signal(tmp_path: Path, sig: signal.Signals) -> None:
    smtp_port, http_port = free_port(), free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "deploy.local.mailbox",
        "--dir",
        str(tmp_path / "mail"),
        "--smtp-port",
        str(smtp_port),
        "--http-port",
        str(http_port),
        cwd=ROOT,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=5) as client:
            for _ in range(200):
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
            else:
                pytest.fail("the mailbox CLI did not start")
            # Services configured with SMTP credentials (as in production) are let in with any.
            await send(smtp_port, ["buyer@example.com"], "Hello", "Hi.", login=("expo", "anything"))
            assert len((await client.get("/api/messages")).json()) == 1

        process.send_signal(sig)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=10)
        assert process.returncode == 0, stderr.decode()
        log = stderr.decode()
        assert f"SMTP on 127.0.0.1:{smtp_port}" in log
        assert f"inbox at http://127.0.0.1:{http_port}/" in log
        assert "Traceback" not in log
        assert "WARNING" not in log
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
