# The receive buffer: a bytearray plus how far the last line search got, so a
# line arriving one byte at a time costs linear, not quadratic, time (h11's
# _receivebuffer.py has the same idea).
#
# Bytes that arrive while the buffer is empty are kept as they came (an immutable
# bytes object) until something needs the bytearray: a DATA chunk of 64 KiB that is
# appended and then taken whole is therefore never copied (two copies per chunk
# were about 4% of the DATA path).
"""ReceiveBuffer: buffered input that never rescans bytes it already searched."""

from __future__ import annotations

__all__ = ["ReceiveBuffer"]


class ReceiveBuffer:
    """Bytes received and not yet consumed."""

    __slots__ = ("_data", "_searched", "_whole")

    def __init__(self) -> None:
        self._data = bytearray()
        # Bytes before this offset are known to hold no LF.
        self._searched = 0
        # All the buffered bytes, as received, while _data is empty; else None.
        self._whole: bytes | None = None

    def _flat(self) -> bytearray:
        """The buffered bytes as one bytearray (moving _whole into it)."""
        if self._whole is not None:
            self._data += self._whole
            self._whole = None
        return self._data

    def __len__(self) -> int:
        return len(self._whole) if self._whole is not None else len(self._data)

    def __bool__(self) -> bool:
        return self._whole is not None or bool(self._data)

    def peek(self, count: int) -> bytes:
        """The first ``count`` bytes, left in place."""
        return bytes(self._flat()[:count])

    def startswith(self, prefix: bytes) -> bool:
        """True if the buffered bytes begin with ``prefix`` (no copy, unlike peek)."""
        whole = self._whole
        return whole.startswith(prefix) if whole is not None else self._data.startswith(prefix)

    def append(self, data: bytes | bytearray) -> None:
        """Add bytes at the end."""
        if not data:
            return
        # Only an exact bytes object is immutable: a caller may reuse a bytearray.
        if type(data) is bytes and self._whole is None and not self._data:
            self._whole = data
        else:
            self._flat().extend(data)

    def push_front(self, data: bytes) -> None:
        """Put back bytes a reader took but did not use (they come first again)."""
        if data:
            self._flat()[:0] = data
            self._searched = 0

    def extract_all(self) -> bytes:
        """Take every buffered byte."""
        whole = self._whole
        if whole is not None:
            self._whole = None
            return whole
        out = bytes(self._data)
        self._data.clear()
        self._searched = 0
        return out

    def extract_at_most(self, count: int) -> bytes:
        """Take up to ``count`` bytes from the front."""
        data = self._flat()
        out = bytes(data[:count])
        del data[:count]
        self._searched = 0
        return out

    def discard_at_most(self, count: int) -> int:
        """Drop up to ``count`` bytes from the front; return how many were dropped."""
        data = self._flat()
        n = min(count, len(data))
        del data[:n]
        self._searched = 0
        return n

    def extract_line(self) -> bytes | None:
        """Take the bytes up to and including the first LF, or None if there is no LF.

        The search resumes where the previous unsuccessful search stopped.
        """
        data = self._flat()
        end = data.find(b"\n", self._searched)
        if end < 0:
            self._searched = len(data)
            return None
        out = bytes(data[: end + 1])
        del data[: end + 1]
        self._searched = 0
        return out

    def clear(self) -> None:
        """Drop everything."""
        self._whole = None
        self._data.clear()
        self._searched = 0
