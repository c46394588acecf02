"""structlog set-up: readable on a console, JSON lines when FIXBRIDGE_LOG_JSON=1 (or json=True)."""
from __future__ import annotations

import logging
import os
import sys

import structlog


def configure(json: bool | None = None, level: str | None = None) -> None:
    json = json if json is not None else os.environ.get("FIXBRIDGE_LOG_JSON") == "1"
    lvl = getattr(logging, (level or os.environ.get("FIXBRIDGE_LOG_LEVEL", "INFO")).upper(), logging.INFO)
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso", utc=True), structlog.processors.format_exc_info,
                    renderer],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
