"""The one exception the Minger codec raises for bad input (draft-hathcock-minger-06).

Every decoder and every message constructor in :mod:`minger` raises :class:`MingerError`
when the bytes or values it was given do not follow the draft. A server answers such a
datagram with status 0 (invalid request, -06 §3.1); a client ignores such a datagram.
"""

__all__ = ["MingerError"]


class MingerError(ValueError):
    """Bad Minger input: a malformed datagram, message field or secret.

    A subclass of :class:`ValueError`, so callers that treat any bad value alike may catch
    that. The message says what was wrong; it never contains unescaped peer bytes, so it
    is safe to log.
    """
