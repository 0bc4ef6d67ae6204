"""One log line per event, as JSON, naming the process. Messages carry ids, never personal data.

Inside a span (an HTTP request, a workflow, an activity) each line names its trace and span, so a
line leads to its trace and back. Personal data must not reach the logs: the code logs ids only, and
``PersonalDataFilter`` masks what still looks like a Chinese ID number, a mainland mobile, an email
or a passport number in a message or an exception's text (defence in depth: a library's exception
may quote what it was given).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

from opentelemetry import trace

MASK = "***"

# Each pattern stands alone (no letter or digit glued to either side), so ids such as U7K2M4Q9XJ3PA,
# B06-0000001 or SX000000000123 are left as they are.
_PERSONAL_DATA = re.compile(
    "|".join(
        (
            r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",  # an email
            r"(?<![0-9A-Za-z])\d{17}[0-9Xx](?![0-9A-Za-z])",  # a resident ID number (18 characters)
            r"(?<![0-9A-Za-z+])(?:\+?86[- ]?)?1[3-9]\d{9}(?![0-9A-Za-z])",  # a mainland mobile
            r"(?<![0-9A-Za-z])[A-Za-z]{1,2}\d{7,9}(?![0-9A-Za-z])",  # a passport or travel permit number
        )
    )
)


def mask_personal_data(text: str) -> str:
    return _PERSONAL_DATA.sub(MASK, text)


class PersonalDataFilter(logging.Filter):
    """Masks personal data in a record's message and exception text, before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_personal_data(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_personal_data(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_personal_data(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    def __init__(self, process_name: str) -> None:
        super().__init__()
        self.process_name = process_name

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "process": self.process_name,
            "logger": record.name,
            "message": record.getMessage(),
        }
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"] = trace.format_trace_id(span.trace_id)
            entry["span_id"] = trace.format_span_id(span.span_id)
        if record.exc_info or record.exc_text:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(process_name: str, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(process_name))
    handler.addFilter(PersonalDataFilter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
    # uvicorn's own lines go through the JSON handler. Its access log is off: the request metrics and
    # traces cover it by route template, while its lines would carry raw paths and query strings.
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").handlers.clear()
    logging.getLogger("uvicorn.access").disabled = True
