"""Keep a secret out of every byte this process prints.

The Lightly client puts its token in every URL (`?token=`), and urllib3 quotes URLs in its retry
warnings and errors; the client's own configuration also adds stream handlers to `urllib3` after
we set up logging. A filter on the handlers that exist at some moment misses those, so redaction
happens where nothing can bypass it:

- every log record is redacted when it is made (a LogRecord factory): every logger, every
  handler, including ones added later and logging's last-resort handler;
- the filter also sits on every handler that exists now (records made before installation);
- stdout and stderr are wrapped: print(), warnings and uncaught tracebacks;
- exception texts that we format ourselves go through `Redactor.__call__`.
"""

from __future__ import annotations

import io
import logging
import os
import re
import sys
import traceback
from typing import Any, TextIO

REDACTED = "<redacted>"
# Secrets a framesift process may hold in its environment (locally, or mounted by Secret reference).
SECRET_ENV = ("LIGHTLY_TOKEN", "LABEL_STUDIO_API_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
MIN_SECRET_LENGTH = 8  # shorter values would blank out ordinary words; no real token is that short
_TOKEN_PARAM = re.compile(r"(token=)[^&\s'\"<>]+", re.IGNORECASE)
_installed: list[Redactor] = []


class Redactor:
    """`redact(text)`: the text with `token=…` query values and every given secret replaced."""

    def __init__(self, *secrets: str):
        self.secrets = sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        text = _TOKEN_PARAM.sub(r"\1" + REDACTED, text)
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text

    def install(self) -> None:
        """Redact everything this process says from now on. Nothing more is installed when every
        secret is covered already (the CLI installs the environment's; the LightlyOne stage asks
        again for its token): each record and write would otherwise be redacted twice."""
        covered = {s for r in _installed for s in r.secrets}
        if _installed and set(self.secrets) <= covered:
            return
        _installed.append(self)
        _install_record_factory(self)
        record_filter = _RedactingFilter(self)
        for handler in _all_handlers():
            handler.addFilter(record_filter)
        sys.stdout = _wrap(sys.stdout, self)
        sys.stderr = _wrap(sys.stderr, self)


class _RedactingFilter(logging.Filter):
    def __init__(self, redact: Redactor):
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_record(record, self.redact)
        return True


def _redact_record(record: logging.LogRecord, redact: Redactor) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a malformed call: keep what can be shown
        message = f"{record.msg} {record.args}"
    record.msg, record.args = redact(message), ()
    if record.exc_info and record.exc_info[0] is not None:
        record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        record.exc_info = None
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


def _install_record_factory(redact: Redactor) -> None:
    make_record = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        _redact_record(record, redact)
        return record

    logging.setLogRecordFactory(factory)


def _all_handlers() -> list[logging.Handler]:
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers += [v for v in logging.Logger.manager.loggerDict.values() if isinstance(v, logging.Logger)]
    handlers = [h for lg in loggers for h in lg.handlers]
    if logging.lastResort is not None:
        handlers.append(logging.lastResort)
    return handlers


class _RedactingStream(io.TextIOBase):
    """A text stream that redacts each write. Partial writes are redacted as they come: the
    secret spans writes only if the writer splits it, which print() and logging never do."""

    def __init__(self, inner: TextIO, redact: Redactor):
        self.inner = inner
        self.redact = redact

    def write(self, text: str) -> int:
        self.inner.write(self.redact(text))
        return len(text)

    def flush(self) -> None:
        self.inner.flush()

    def isatty(self) -> bool:
        return self.inner.isatty()

    def fileno(self) -> int:
        return self.inner.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.inner, "encoding", "utf-8")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _wrap(stream: TextIO, redact: Redactor) -> TextIO:
    return _RedactingStream(stream, redact)  # type: ignore[return-value]


def install_from_environment(environ: dict[str, str] | None = None) -> Redactor:
    """Redact the secrets of `SECRET_ENV` (and every `token=` value) from all this process prints."""
    env = os.environ if environ is None else environ
    redact = Redactor(*(env.get(name, "") for name in SECRET_ENV))
    redact.install()
    return redact


def redact_text(text: str) -> str:
    """`text` through every installed Redactor (for texts written elsewhere than stdout/stderr)."""
    for redact in _installed:
        text = redact(text)
    return _TOKEN_PARAM.sub(r"\1" + REDACTED, text)
