# The receive buffer: a bytearray plus how far the last line search got, so a
# line arriving one byte at a time costs linear, not quadratic, time (h11's
# _receivebuffer.py has the same idea).
"""ReceiveBuffer: buffered input that never rescans bytes it already searched."""

from __future__ import annotations

__all__ = ["ReceiveBuffer"]


class ReceiveBuffer:
    """Bytes received and not yet consumed."""

    __slots__ = ("_data", "_searched")

    def __init__(self) -> None:
        self._data = bytearray()
        # Bytes before this offset are known to hold no LF.
        self._searched = 0

    def __len__(self) -> int:
        return len(self._data)

    def __bool__(self) -> bool:
        return bool(self._data)

    def peek(self, count: int) -> bytes:
        """The first ``count`` bytes, left in place."""
        return bytes(self._data[:count])

    def startswith(self, prefix: bytes) -> bool:
        """True if the buffered bytes begin with ``prefix`` (no copy, unlike peek)."""
        return self._data.startswith(prefix)

    def append(self, data: bytes) -> None:
        """Add bytes at the end."""
        self._data += data

    def push_front(self, data: bytes) -> None:
        """Put back bytes a reader took but did not use (they come first again)."""
        if data:
            self._data[:0] = data
            self._searched = 0

    def extract_all(self) -> bytes:
        """Take every buffered byte."""
        out = bytes(self._data)
        self._data.clear()
        self._searched = 0
        return out

    def extract_at_most(self, count: int) -> bytes:
        """Take up to ``count`` bytes from the front."""
        out = bytes(self._data[:count])
        del self._data[:count]
        self._searched = 0
        return out

    def discard_at_most(self, count: int) -> int:
        """Drop up to ``count`` bytes from the front; return how many were dropped."""
        n = min(count, len(self._data))
        del self._data[:n]
        self._searched = 0
        return n

    def extract_line(self) -> bytes | None:
        """Take the bytes up to and including the first LF, or None if there is no LF.

        The search resumes where the previous unsuccessful search stopped.
        """
        end = self._data.find(b"\n", self._searched)
        if end < 0:
            self._searched = len(self._data)
            return None
        out = bytes(self._data[: end + 1])
        del self._data[: end + 1]
        self._searched = 0
        return out

    def clear(self) -> None:
        """Drop everything."""
        self._data.clear()
        self._searched = 0
