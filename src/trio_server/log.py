"""Log lines for sansio-smtpd, and the rejected-recipients log.

One line per event worth knowing (connect, HELO, each reject with its reply, accept with
the queue id, delivery, disconnect), each carrying the connection id and the peer
address. Anything the peer chose (HELO name, addresses, command words, reply text that
echoes them) goes through :func:`escape`, so no CR, LF or other control character ever
reaches a log line: one event is always one line, and a client cannot forge entries.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["ConnectionLog", "RejectedRecipientsLog", "escape", "logger", "setup_logging"]

logger = logging.getLogger("sansio_smtpd")

_ESCAPES = {"\\": "\\\\", '"': '\\"'}


def escape(text: str, *, limit: int = 512) -> str:
    """Make peer text safe for one log line or header value.

    Backslash and double quote are escaped; control characters (C0, DEL, C1), and the
    Unicode line and paragraph separators become ``\\xNN`` / ``\\uNNNN``. Text longer
    than ``limit`` characters is cut and marked with ``...``.
    """
    if len(text) <= limit and text.isprintable() and "\\" not in text and '"' not in text:
        return text  # the common case: nothing to escape, skip the loop over characters
    cut = len(text) > limit
    out = []
    for char in text[:limit] if cut else text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif char.isprintable() or char == " ":
            out.append(char)
        elif ord(char) < 0x100:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(f"\\u{ord(char):04x}")
    return "".join(out) + ("..." if cut else "")


# The SMTP sessions log as "sansio_smtpd"; the Minger service and the outbound queue
# log under "trio_server.*". The daemon shows them all.
_DAEMON_LOGGERS = ("sansio_smtpd", "trio_server")


def setup_logging(level: int = logging.INFO) -> None:
    """Send the daemon's log lines to standard error, with UTC timestamps."""
    handler = logging.StreamHandler()
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%SZ")
    formatter.converter = _utc_time_tuple
    handler.setFormatter(formatter)
    for name in _DAEMON_LOGGERS:
        named = logging.getLogger(name)
        named.addHandler(handler)
        named.setLevel(level)


def _utc_time_tuple(seconds: float | None) -> time.struct_time:
    return datetime.fromtimestamp(seconds or 0, UTC).timetuple()


class ConnectionLog:
    """Log lines for one connection: every line starts ``conn=ID peer=IP:PORT``."""

    def __init__(self, connection_id: int, peer: str) -> None:
        self.prefix = f"conn={connection_id} peer={escape(peer)}"

    def event(self, what: str, /, **fields: object) -> None:
        """Log ``what`` with ``key="value"`` fields; string values are escaped and quoted."""
        if not logger.isEnabledFor(logging.INFO):
            return  # nobody reads it: skip the escaping and formatting
        parts = [self.prefix, what]
        for key, value in fields.items():
            if isinstance(value, str):
                parts.append(f'{key}="{escape(value)}"')
            else:
                parts.append(f"{key}={value}")
        # The same record logger.info() makes, minus its caller lookup (findCaller walks
        # the stack, a large part of each line's cost): handlers and filters see it alike.
        record = logger.makeRecord(
            logger.name, logging.INFO, __file__, 0, " ".join(parts), (), None, "event"
        )
        logger.handle(record)

    def error(self, message: str) -> None:
        """Log an internal error for this connection (the server keeps running)."""
        logger.error("%s error %s", self.prefix, escape(message), exc_info=True)


class RejectedRecipientsLog:
    """Appends one line per unknown local recipient (the VPOP3 "bad recipients" log).

    Fields, tab-separated: UTC timestamp, client IP, HELO name, MAIL FROM, the rejected
    address, the reply. Every field is escaped, so a field can hold neither a tab nor a
    line break. Blocking: call :meth:`append` from a worker thread in async code.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def append(
        self, *, when: datetime, client_ip: str, helo: str, mail_from: str, address: str, reply: str
    ) -> None:
        """Append one line and flush it to the operating system."""
        stamp = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        fields = (stamp, client_ip, helo, mail_from, address, reply)
        line = "\t".join(escape(f) for f in fields) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as file:
                file.write(line)
                file.flush()
