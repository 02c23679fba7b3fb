"""Logging for services and tools: one line per event, key=value, secrets hidden."""

import logging
import sys
from urllib.parse import urlsplit, urlunsplit

from perf_platform.settings import get_settings

_FORMAT = "ts=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"
_CHATTY_LIBRARIES = ("httpx", "httpcore", "alembic.runtime.migration")


def configure_logging(level: str | None = None) -> None:
    """Send every log line to stderr in one key=value format, at LOG_LEVEL unless given.

    Safe to call more than once: the handler is installed only the first time.
    """
    root = logging.getLogger()
    root.setLevel(level or get_settings().log_level)
    if root.level > logging.DEBUG:
        # Libraries that log a line per HTTP request or per migration step speak only when
        # something is wrong, unless LOG_LEVEL=DEBUG asks for everything.
        for chatty in _CHATTY_LIBRARIES:
            logging.getLogger(chatty).setLevel(logging.WARNING)
    if any(getattr(handler, "_perf_platform", False) for handler in root.handlers):
        return

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler._perf_platform = True  # type: ignore[attr-defined]
    root.addHandler(handler)


def redact_url(url: str | None) -> str:
    """The URL with its password replaced by ***, for logs and error messages."""
    if not url:
        return str(url)

    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo = f"{parts.username}:***" if parts.username else ":***"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{userinfo}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
