"""The embedded stack's local mail server: a catch-all SMTP server plus an inbox a person can read.

Every message sent to the SMTP port, for any recipient, is kept in a Maildir under the given directory
(so it survives a restart) and shown by a small web app on a second port: an HTML inbox for people and
a JSON API for tests and the demo. Both run in one asyncio loop, started by :func:`serve` or the CLI::

    python -m deploy.local.mailbox --dir var/mail --smtp-port 1025 --http-port 1080

Nothing is ever relayed: this is a development sink, and it listens on 127.0.0.1 unless told otherwise.

Like a mail store with duplicate suppression, it keeps one copy of a message per Message-ID and
recipient: a sender that re-sends a message after a crash (the notification service retrying a step
whose mail went out but was not yet marked sent) is answered 250 and nothing is added.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email
import html
import logging
import mailbox
import signal
import socket
import threading
import weakref
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import uvicorn
from aiosmtpd.smtp import SMTP, AuthResult
from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse, PlainTextResponse

log = logging.getLogger("expo.mailbox")

# Headers this server prepends to each stored message. The envelope is kept because it is the truth
# about who a message was delivered to (Bcc recipients appear nowhere else); the receive time gives
# a strict "newest first" order that the Date header (second resolution, sender's clock) cannot.
RECEIVED_HEADER = "X-Mailbox-Received"
ENVELOPE_FROM_HEADER = "X-Mailbox-Envelope-From"
ENVELOPE_TO_HEADER = "X-Mailbox-Envelope-To"

_HEADERS = BytesParser(policy=policy.compat32)  # headers only, for the duplicate index


def _clean(text: str) -> str:
    """Undo the parser's surrogate escapes: raw UTF-8 in headers (SMTPUTF8 mail) becomes readable text."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


@dataclass(frozen=True)
class StoredMessage:
    id: str
    received: datetime
    sender: str  # the decoded From header, or the envelope sender if there is none
    to: list[str]  # addresses from To and Cc, then any other envelope recipients (Bcc)
    subject: str
    date: datetime  # the Date header, or the receive time if it is missing or unreadable
    text: str
    html: str | None
    headers: dict[str, str]

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "from": self.sender,
            "to": self.to,
            "subject": self.subject,
            "date": self.date.isoformat(),
            "text": self.text,
        }

    def detail(self) -> dict[str, Any]:
        return {**self.summary(), "html": self.html, "headers": self.headers}


def _body(msg: EmailMessage, subtype: str) -> str | None:
    part = msg.get_body(preferencelist=(subtype,))
    if part is None:
        return None
    try:
        content = part.get_content()
    except (LookupError, UnicodeError, ValueError):
        # Unknown or lying charset: show the bytes as UTF-8 rather than hide the body.
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else None
    return content if isinstance(content, str) else None


def parse_message(key: str, raw: bytes) -> StoredMessage:
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)

    headers: dict[str, str] = {}
    for name, value in msg.items():
        text = _clean(str(value))
        # A repeated header (Received, ...) keeps every value, one per line.
        headers[name] = f"{headers[name]}\n{text}" if name in headers else text

    received_text = headers.get(RECEIVED_HEADER, "")
    try:
        received = datetime.fromisoformat(received_text)
    except ValueError:
        received = datetime.fromtimestamp(0, UTC)

    to: list[str] = []
    seen: set[str] = set()
    recipients = getaddresses([headers.get("To", ""), headers.get("Cc", "")])
    envelope = [("", addr.strip()) for addr in headers.get(ENVELOPE_TO_HEADER, "").split(",")]
    for _, addr in [*recipients, *envelope]:
        if addr and addr.casefold() not in seen:
            seen.add(addr.casefold())
            to.append(addr)

    try:
        date = parsedate_to_datetime(headers["Date"])
    except (KeyError, TypeError, ValueError):
        date = received

    return StoredMessage(
        id=key,
        received=received,
        sender=headers.get("From") or headers.get(ENVELOPE_FROM_HEADER, ""),
        to=to,
        subject=headers.get("Subject", ""),
        date=date,
        text=_body(msg, "plain") or "",
        html=_body(msg, "html"),
        headers=headers,
    )


def _message_id(headers: Message) -> str | None:
    value = headers.get("Message-ID")
    if value is None:
        return None
    return " ".join(_clean(str(value)).split()) or None


def _delivered_to(headers: Message) -> list[str]:
    return [
        addr.strip().casefold()
        for addr in str(headers.get(ENVELOPE_TO_HEADER, "")).split(",")
        if addr.strip()
    ]


class MailStore:
    """The Maildir plus a cache of parsed messages (a Maildir message never changes once delivered),
    and an index of the (Message-ID, recipient) pairs it holds, to drop a message delivered again.

    Called from worker threads (SMTP deliveries and the web app's sync endpoints), hence the lock.
    """

    def __init__(self, directory: Path) -> None:
        # Maildir(create=True) makes tmp/new/cur only when the directory itself is new; an existing
        # (say, empty) directory is made a Maildir here.
        for sub in ("tmp", "new", "cur"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        self._maildir = mailbox.Maildir(directory, create=False)
        self._lock = threading.Lock()
        self._parsed: dict[str, StoredMessage] = {}
        self._last_received = datetime.fromtimestamp(0, UTC)
        # (Message-ID, recipient) -> the key of the message that holds it; read from disk at start, so
        # that a restart keeps dropping what it already has.
        self._delivered: dict[tuple[str, str], str] = {}
        keys = self._maildir.keys()  # iterating a Maildir itself yields messages, not keys
        for key in keys:
            with contextlib.suppress(KeyError):
                self._index(key, self._maildir.get_bytes(key))

    def _index(self, key: str, stored: bytes) -> None:
        headers = _HEADERS.parsebytes(stored, headersonly=True)
        message_id = _message_id(headers)
        if message_id is not None:
            for recipient in _delivered_to(headers):
                self._delivered[(message_id, recipient)] = key

    def _duplicate_of(self, raw: bytes, rcpt_tos: Sequence[str]) -> str | None:
        """The key of the message already holding this Message-ID for every recipient, if one does."""
        message_id = _message_id(_HEADERS.parsebytes(raw, headersonly=True))
        if message_id is None or not rcpt_tos:
            return None
        held = [self._delivered.get((message_id, r.strip().casefold())) for r in rcpt_tos]
        # A recipient without it, or a copy deleted meanwhile: deliver.
        if any(key is None or key not in self._maildir for key in held):
            return None
        return held[0]

    def add(self, raw: bytes, mail_from: str, rcpt_tos: Sequence[str]) -> str:
        """Store a message; the key of its stored copy (an earlier one if this is a duplicate)."""
        with self._lock:
            if (duplicate := self._duplicate_of(raw, rcpt_tos)) is not None:
                log.info("dropped a second copy of message %s", duplicate)
                return duplicate
            # Strictly increasing even if two messages arrive within the clock's resolution.
            now = max(datetime.now(UTC), self._last_received + timedelta(microseconds=1))
            self._last_received = now
            trace = (
                f"{RECEIVED_HEADER}: {now.isoformat()}\n"
                f"{ENVELOPE_FROM_HEADER}: {mail_from}\n"
                f"{ENVELOPE_TO_HEADER}: {', '.join(rcpt_tos)}\n"
            )
            # Maildir files use the local (Unix) line ending; SMTP's CRLF would leak into the bodies.
            stored = trace.encode("utf-8") + raw.replace(b"\r\n", b"\n")
            key = self._maildir.add(stored)
            self._index(key, stored)
            return key

    def messages(self) -> list[StoredMessage]:
        """Every message, newest first."""
        with self._lock:
            keys = set(self._maildir.keys())
            for key in keys - self._parsed.keys():
                with contextlib.suppress(KeyError):  # deleted behind our back
                    self._parsed[key] = parse_message(key, self._maildir.get_bytes(key))
            for key in self._parsed.keys() - keys:
                del self._parsed[key]
            found = list(self._parsed.values())
        return sorted(found, key=lambda m: (m.received, m.id), reverse=True)

    def get(self, key: str) -> StoredMessage | None:
        with self._lock:
            if key not in self._parsed:
                try:
                    self._parsed[key] = parse_message(key, self._maildir.get_bytes(key))
                except KeyError:
                    return None
            return self._parsed[key]

    def raw(self, key: str) -> bytes | None:
        with self._lock:
            try:
                return self._maildir.get_bytes(key)
            except KeyError:
                return None

    def clear(self) -> int:
        with self._lock:
            keys = self._maildir.keys()
            for key in keys:
                self._maildir.discard(key)
            self._parsed.clear()
            self._delivered.clear()
            return len(keys)


# --- SMTP ---------------------------------------------------------------------------------------


class _DeliverToStore:
    """aiosmtpd handler: accept every recipient (no handle_RCPT hook) and store every message."""

    def __init__(self, store: MailStore) -> None:
        self._store = store

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content if isinstance(envelope.original_content, bytes) else b""
        try:
            key = await asyncio.to_thread(
                self._store.add, raw, str(envelope.mail_from or ""), [str(r) for r in envelope.rcpt_tos]
            )
        except Exception:
            log.exception("could not store a message")
            return "451 Requested action aborted: error in processing"
        log.info("stored message %s (%d recipients)", key, len(envelope.rcpt_tos))  # no addresses in logs
        return "250 Message accepted for delivery"


def _accept_any_login(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
    # Services may be configured with SMTP credentials (as in production); any login will do here.
    return AuthResult(success=True)


def _hide_login_data_warning(record: logging.LogRecord) -> bool:
    # aiosmtpd 1.4 trips over its own deprecated Session.login_data on every successful AUTH.
    return "login_data is deprecated" not in record.getMessage()


# --- Web inbox ----------------------------------------------------------------------------------

_STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "PingFang SC", "Microsoft YaHei", sans-serif;
       margin: 2rem auto; max-width: 72rem; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #ddd; vertical-align: top; }
th { background: #f4f4f4; }
tr:hover td { background: #fafafa; }
pre { white-space: pre-wrap; word-wrap: break-word; background: #f8f8f8; padding: 1rem; }
iframe { width: 100%; height: 40rem; border: 1px solid #ddd; }
.muted { color: #777; }
.headers th { width: 14rem; background: none; font-weight: normal; color: #555; }
"""


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        '<!doctype html>\n<html><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>",
        media_type="text/html; charset=utf-8",
    )


def _fmt_date(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S %z").strip()


def _matches(message: StoredMessage, to: str | None, subject: str | None) -> bool:
    if to and not any(to.casefold() in addr.casefold() for addr in message.to):
        return False
    return not subject or subject.casefold() in message.subject.casefold()


def create_app(store: MailStore) -> FastAPI:
    app = FastAPI(title="Expo local mailbox", docs_url="/docs", redoc_url=None)

    # Sync endpoints: FastAPI runs them in its thread pool, so Maildir file I/O never blocks the loop.

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/messages")
    def list_messages(to: str | None = None, subject: str | None = None) -> list[dict[str, Any]]:
        return [m.summary() for m in store.messages() if _matches(m, to, subject)]

    @app.get("/api/messages/{message_id}")
    def get_message(message_id: str) -> dict[str, Any]:
        message = store.get(message_id)
        if message is None:
            raise HTTPException(404, "no such message")
        return message.detail()

    @app.delete("/api/messages")
    def delete_messages() -> dict[str, int]:
        return {"deleted": store.clear()}

    @app.get("/", response_class=HTMLResponse)
    def inbox() -> HTMLResponse:
        messages = store.messages()
        rows = "".join(
            "<tr>"
            f"<td>{html.escape(m.sender)}</td>"
            f"<td>{html.escape(', '.join(m.to))}</td>"
            f'<td><a href="/messages/{quote(m.id, safe="")}">'
            f"{html.escape(m.subject or '(no subject)')}</a></td>"
            f'<td class="muted">{html.escape(_fmt_date(m.date))}</td>'
            "</tr>"
            for m in messages
        )
        table = (
            "<table><thead><tr><th>From</th><th>To</th><th>Subject</th><th>Date</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
            if messages
            else '<p class="muted">No mail yet.</p>'
        )
        count = f"{len(messages)} message{'' if len(messages) == 1 else 's'}, newest first"
        return _page("Inbox", f'<h1>Inbox</h1><p class="muted">{count}</p>{table}')

    @app.get("/messages/{message_id}", response_class=HTMLResponse)
    def show_message(message_id: str) -> HTMLResponse:
        m = store.get(message_id)
        if m is None:
            raise HTTPException(404, "no such message")
        link = quote(m.id, safe="")
        headers = "".join(
            f"<tr><th>{html.escape(name)}</th><td>{html.escape(value)}</td></tr>"
            for name, value in m.headers.items()
        )
        parts = [
            '<p><a href="/">&larr; Inbox</a></p>',
            f"<h1>{html.escape(m.subject or '(no subject)')}</h1>",
            f'<table class="headers">{headers}</table>',
            f"<h2>Text</h2><pre>{html.escape(m.text)}</pre>" if m.text else "",
            # Sandboxed without allow-scripts: the mail's HTML can neither run code nor touch this page.
            f'<h2>HTML</h2><iframe sandbox src="/messages/{link}/html" title="HTML body"></iframe>'
            if m.html is not None
            else "",
            f'<p><a href="/messages/{link}/raw">Raw source</a></p>',
        ]
        return _page(m.subject or "(no subject)", "".join(parts))

    @app.get("/messages/{message_id}/html", response_class=HTMLResponse)
    def message_html(message_id: str) -> HTMLResponse:
        m = store.get(message_id)
        if m is None or m.html is None:
            raise HTTPException(404, "no HTML body")
        # The CSP sandbox also protects someone who opens this URL directly rather than in the iframe.
        return HTMLResponse(
            m.html,
            media_type="text/html; charset=utf-8",
            headers={"Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff"},
        )

    @app.get("/messages/{message_id}/raw", response_class=PlainTextResponse)
    def message_raw(message_id: str) -> PlainTextResponse:
        raw = store.raw(message_id)
        if raw is None:
            raise HTTPException(404, "no such message")
        return PlainTextResponse(raw.decode("utf-8", "replace"), media_type="text/plain; charset=utf-8")

    return app


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handling: the owner of the loop decides when to stop (via `stop`),
    and uvicorn must not re-raise a captured SIGINT after a clean shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _bind(host: str, port: int) -> list[socket.socket]:
    """Bind the web port ourselves, so a busy port raises OSError here rather than uvicorn's sys.exit."""
    sockets: list[socket.socket] = []
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _address(sock: Any) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def serve(
    directory: Path,
    host: str,
    smtp_port: int,
    http_port: int,
    stop: asyncio.Event,
    *,
    ready: asyncio.Event | None = None,
) -> None:
    """Run the SMTP server and the web inbox until `stop` is set; both are closed when this returns.

    `ready` (optional) is set once both ports accept connections.
    """
    loop = asyncio.get_running_loop()
    smtp_log = logging.getLogger("mail.log")
    if _hide_login_data_warning not in smtp_log.filters:
        smtp_log.addFilter(_hide_login_data_warning)
    store = await asyncio.to_thread(MailStore, directory)
    handler = _DeliverToStore(store)
    # Open SMTP sessions, so stopping can close them: a server never closes its accepted connections.
    sessions: weakref.WeakSet[Any] = weakref.WeakSet()

    def new_session() -> Any:
        session = SMTP(
            handler,
            hostname="localhost",  # not socket.getfqdn(), which can stall on a DNS lookup
            ident="Expo local mailbox",
            enable_SMTPUTF8=True,
            auth_require_tls=False,
            authenticator=_accept_any_login,
            loop=loop,
        )
        sessions.add(session)
        return session

    smtp_server = await loop.create_server(new_session, host, smtp_port)
    try:
        http_sockets = _bind(host, http_port)
        config = uvicorn.Config(
            create_app(store),
            log_config=None,  # leave the process's logging alone
            log_level=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
        )
        http_server = _EmbeddedServer(config)
        http_task = asyncio.create_task(http_server.serve(sockets=http_sockets))
        try:
            while not http_server.started:
                if http_task.done():
                    break
                await asyncio.sleep(0.01)
            else:
                log.info(
                    "local mailbox: SMTP on %s, inbox at http://%s/ (mail kept in %s)",
                    _address(smtp_server.sockets[0]),
                    _address(http_sockets[0]),
                    directory,
                )
                if ready is not None:
                    ready.set()
                stopping = asyncio.create_task(stop.wait())
                await asyncio.wait({stopping, http_task}, return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
            if http_task.done() and not stop.is_set():
                await http_task  # raises what killed it
                raise RuntimeError("the inbox web server stopped by itself")
        finally:
            http_server.should_exit = True
            await asyncio.shield(http_task)  # uvicorn closes its sockets and connections
    finally:
        smtp_server.close()
        for session in list(sessions):
            if session.transport is not None:
                session.transport.close()
        await smtp_server.wait_closed()
        log.info("local mailbox stopped")


# --- CLI ----------------------------------------------------------------------------------------


async def _run(directory: Path, host: str, smtp_port: int, http_port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        try:
            loop.add_signal_handler(sig, stop.set)
        except NotImplementedError:  # Windows
            signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop.set))
    try:
        await serve(directory, host, smtp_port, http_port, stop)
    finally:
        for sig in signals:
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(sig)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.local.mailbox",
        description="Catch-all SMTP server with a web inbox, for local development.",
    )
    parser.add_argument("--dir", type=Path, required=True, help="Maildir to keep messages in")
    parser.add_argument("--smtp-port", type=int, default=1025)
    parser.add_argument("--http-port", type=int, default=1080)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # aiosmtpd logs every SMTP command at INFO and uvicorn its lifecycle; one line per message is enough.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)

    try:
        asyncio.run(_run(args.dir, args.host, args.smtp_port, args.http_port))
    except OSError as exc:
        # A busy port or a bad address needs a clear line, not a traceback.
        log.error("local mailbox could not start: %s", exc)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
