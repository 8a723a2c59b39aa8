"""Log setup: text or JSON lines, the HTTP client's per-request lines held back."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from streamgate.observability.logs import QUIET_LOGGERS, setup_logging


@pytest.fixture
def restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


@pytest.mark.usefixtures("restored")
def test_json_lines_carry_time_level_logger_message() -> None:
    out = io.StringIO()
    setup_logging("info", "json", out)
    logging.getLogger("streamgate.test").warning("! cut %s: %d bytes", "public", 70_000)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("streamgate.test").exception("! failed")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["level"] == "WARNING" and first["logger"] == "streamgate.test"
    assert first["message"] == "! cut public: 70000 bytes"
    assert first["time"].endswith("Z") and "T" in first["time"]
    assert second["message"] == "! failed" and "ValueError: boom" in second["exception"]


@pytest.mark.usefixtures("restored")
def test_http_client_lines_are_quiet_even_at_debug() -> None:
    out = io.StringIO()
    setup_logging("DEBUG", "text", out)
    logging.getLogger("httpx").info('HTTP Request: POST http://h/hook "HTTP/1.1 200 OK"')
    logging.getLogger("httpcore.http11").debug("send_request_headers.started")
    logging.getLogger("streamgate.webhooks").debug("= kept")
    text = out.getvalue()
    assert "HTTP Request" not in text and "send_request_headers" not in text
    assert "DEBUG streamgate.webhooks = kept" in text
