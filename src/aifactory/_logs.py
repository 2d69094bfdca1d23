"""Log context: the execution, stage and request a log line is about, through stdlib logging.

The orchestrator names the execution and the stage it runs (`log_context`), the served apps
name each HTTP request; the names live in context variables, so they follow the task that
set them (and the tasks it starts) and cost nothing until a line is formatted. `JsonFormatter`
writes one JSON object per line with them:

```json
{"time": "2025-01-01T12:00:00.000Z", "level": "INFO", "logger": "aifactory.server",
 "message": "POST /api/auth/login -> 401 authentication_failed [req_...]",
 "request_id": "req_...", "execution_id": null, "stage_id": null}
```

`aifactory serve --log-format json` (or `AIFACTORY_LOG_FORMAT=json`) sends every logger's
lines, uvicorn's too, through it (`logging_config`). What aifactory logs never holds a
secret: no password, token, key or request body is ever passed to a logger.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

__all__ = ["LOG_FORMATS", "JsonFormatter", "log_context", "log_ids", "logging_config"]

#: The formats `aifactory serve --log-format` takes.
LOG_FORMATS = ("text", "json")

_IDS: dict[str, ContextVar[str | None]] = {
    name: ContextVar(f"aifactory_{name}", default=None)
    for name in ("execution_id", "stage_id", "request_id")
}


@contextlib.contextmanager
def log_context(**ids: str | None) -> Iterator[None]:
    """Name what the lines logged inside the block are about (`execution_id`, `stage_id`,
    `request_id`). Raises `KeyError` for another name."""
    tokens = [(_IDS[name], _IDS[name].set(value)) for name, value in ids.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def log_ids() -> dict[str, str | None]:
    """The ids named where this is called (None for those not named)."""
    return {name: var.get() for name, var in _IDS.items()}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, the context's ids, and
    the traceback of an exception (`exc_info`) as `exc`."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line."""
        moment = time.gmtime(record.created)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", moment) + f".{int(record.msecs):03d}Z"
        line: dict[str, Any] = {
            "time": stamp,
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **log_ids(),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def logging_config(log_format: str, level: str = "warning") -> dict[str, Any]:
    """A `logging.config.dictConfig` (and uvicorn `log_config`) sending every logger's lines
    at `level` or above to stderr, as JSON lines for `json`, else as plain text with the ids.

    Raises `ValueError` for a format not in `LOG_FORMATS`.
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"unknown log format {log_format!r}: use one of {LOG_FORMATS}")
    numeric = "DEBUG" if level.lower() == "trace" else level.upper()
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"}
        if log_format == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    )
    handler = {"class": "logging.StreamHandler", "formatter": "main", "stream": "ext://sys.stderr"}
    # uvicorn's loggers keep no handler of their own: their lines go the same way.
    inherit = {"handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter},
        "handlers": {"main": handler},
        "root": {"handlers": ["main"], "level": numeric},
        "loggers": {name: inherit for name in ("uvicorn", "uvicorn.error", "uvicorn.access")},
    }
