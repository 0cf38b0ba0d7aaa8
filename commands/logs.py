"""Logging for the bot: one line per event, readable or JSON, never a secret or a PAC.

`configure_logging` installs one handler on the root logger. Its `RedactingFilter` rewrites each
record before any formatter sees it: the values of the secret environment variables and anything
shaped like a PAC (16 hexadecimal characters) are replaced, in the message, its arguments and a
traceback alike. Redaction works on the finished text rather than on known fields because a
secret can reach a log line by many roads (an echoed error body, a repr, an exception message).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import traceback
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
FORMAT_ENV_VAR = "SIGFOX_BOT_LOG_FORMAT"
LEVEL_ENV_VAR = "SIGFOX_BOT_LOG_LEVEL"

SECRET_ENV_VARS = (
    "SIGFOX_API_PASSWORD",
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "SIGFOX_CALLBACK_SECRET",
)
REDACTED = "[redacted]"
PAC_REDACTED = "[PAC]"
# A PAC is 16 hex characters, and it may come glued to anything: URL-encoded (`%3A<PAC>`), in a
# query string, behind a prefix. So every run of 16 or more hex characters is redacted whole,
# wherever it stands. The one exception is a standalone run of 24 lowercase hex characters: a
# Sigfox object id (device type, contract, group) as the API writes it, which logs need. PACs
# and device ids are written in capitals, so a PAC glued to a device id is still redacted.
PAC_PATTERN = re.compile(r"[0-9A-Fa-f]{16,}")
OBJECT_ID = re.compile(r"[0-9a-f]{24}")
# Shorter values would blank out ordinary words if someone set a silly test secret.
MIN_SECRET_LENGTH = 4

# Attributes every LogRecord has; anything else was passed through `extra=` and is logged.
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def known_secrets(env: dict[str, str] | os._Environ[str] | None = None) -> list[str]:
    """The secret values set in the environment, longest first (so none is half-replaced)."""
    env = os.environ if env is None else env
    values = {env.get(name, "") for name in SECRET_ENV_VARS}
    return sorted((v for v in values if len(v) >= MIN_SECRET_LENGTH), key=len, reverse=True)


def redact(text: str, secrets: list[str] | None = None) -> str:
    """`text` with every known secret and every PAC-looking token replaced."""
    for secret in known_secrets() if secrets is None else secrets:
        text = text.replace(secret, REDACTED)
    return PAC_PATTERN.sub(lambda run: _redacted_run(text, run), text)


def _redacted_run(text: str, run: re.Match[str]) -> str:
    if OBJECT_ID.fullmatch(text, run.start(), run.end()) and _standalone(text, run):
        return run.group()
    return PAC_REDACTED


def _standalone(text: str, run: re.Match[str]) -> bool:
    before = text[run.start() - 1] if run.start() else " "
    after = text[run.end()] if run.end() < len(text) else " "
    return not before.isalnum() and not after.isalnum()


FAILURE_FRAMES = 4  # innermost frames named by `failure_summary`


def failure_summary(error: BaseException) -> str:
    """An exception's type and where it was raised (its innermost frames, file:line in
    function), never its message: a message may quote what a request carried (a command's
    text, a form's fields, a response URL, a PAC), and redaction only recognises the secrets
    it knows the shape or the value of. What caused it is named by type too."""
    frames = [(frame.f_code.co_filename, line, frame.f_code.co_name)
              for frame, line in traceback.walk_tb(error.__traceback__)][-FAILURE_FRAMES:]
    where = " < ".join(f"{os.path.basename(file)}:{line} in {name}"
                       for file, line, name in reversed(frames))
    text = type(error).__name__ + (f" at {where}" if where else "")
    cause = error.__cause__ or error.__context__
    return text + (f" (while handling {type(cause).__name__})" if cause is not None else "")


class RedactingFilter(logging.Filter):
    """Renders message and traceback once, redacted, so no formatter can leak the raw ones.

    Secrets are read from the environment at every record: a test or an operator that sets a
    variable after start-up is still covered.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = known_secrets()
        record.msg = redact(record.getMessage(), secrets)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, secrets)
        record.exc_info = None  # the redacted exc_text now stands for it
        for key, value in _extras(record).items():
            if isinstance(value, str):
                setattr(record, key, redact(value, secrets))
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(record.msecs):03d}Z"


def _one_line(text: str) -> str:
    # A newline would make one event look like several to grep and to log shippers.
    return text.replace("\r", "\\r").replace("\n", "\\n")


class ReadableFormatter(logging.Formatter):
    """`2025-06-01T09:00:00.000Z INFO  commands.x: message key=value`."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname:<5} {record.name}: {record.getMessage()}"
        extras = " ".join(f"{k}={_scalar(v)}" for k, v in sorted(_extras(record).items()))
        if extras:
            line += f" {extras}"
        if record.exc_text:
            line += f" | {record.exc_text}"
        return _one_line(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _extras(record).items():
            event.setdefault(key, value)
        if record.exc_text:
            event["exception"] = record.exc_text
        return json.dumps(event, default=str, ensure_ascii=False)


def _scalar(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if (" " in text or not text) else text


def resolve_format(log_format: str | None = None) -> LogFormat:
    """The format asked for, else $SIGFOX_BOT_LOG_FORMAT, else readable text."""
    chosen = (log_format or os.environ.get(FORMAT_ENV_VAR) or "text").strip().lower()
    if chosen not in LOG_FORMATS:
        raise ValueError(f"unknown log format {chosen!r}: use one of {', '.join(LOG_FORMATS)}")
    return chosen


def make_handler(log_format: LogFormat, stream: TextIO | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else ReadableFormatter())
    handler.set_name("sigfox-bot")
    return handler


def configure_logging(
    log_format: str | None = None, level: str | int | None = None, stream: TextIO | None = None
) -> logging.Handler:
    """Replace the root logger's handlers by ours; returns the handler (tests read it)."""
    handler = make_handler(resolve_format(log_format), stream)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    chosen = level or os.environ.get(LEVEL_ENV_VAR) or logging.INFO
    root.setLevel(chosen.upper() if isinstance(chosen, str) else chosen)
    # Per-request chatter from libraries would drown the bot's own events.
    for noisy in ("httpx", "httpcore", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # uvicorn's access lines are kept (Slack's deliveries are worth a line each), except the
    # successful probes an orchestrator and Prometheus make every few seconds.
    access = logging.getLogger("uvicorn.access")
    access.setLevel(logging.NOTSET)
    if not any(isinstance(f, QuietProbes) for f in access.filters):
        access.addFilter(QuietProbes())
    return handler


PROBE_PATHS = ("/healthz", "/readyz", "/metrics")


class QuietProbes(logging.Filter):
    """Drops uvicorn access lines of answered probes (`GET /healthz 200`); failures stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not isinstance(args, tuple) or len(args) < 5:
            return True
        path, status = str(args[2]).split("?", 1)[0], args[4]
        return not (path in PROBE_PATHS and isinstance(status, int) and status < 400)
