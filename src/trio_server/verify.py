"""RCPT-time recipient verification through Minger, with a cache.

For a ``[[forward]]`` route with ``verify = "minger"``, each RCPT TO is checked with the
next hop's Minger service (draft-hathcock-minger-06 §3.1) before we accept the
recipient, so mail for addresses that do not exist there is refused during the SMTP
dialogue instead of bouncing later (RFC 5321 §3.5.1's advice against accept-then-bounce):

====================  ==================================================
Minger status         our RCPT reply
====================  ==================================================
5 active              accepted (250 2.1.5)
3 no such address     550 5.1.1 (RFC 3463 §3.2: bad destination mailbox)
4 cannot receive      550 5.2.1 (RFC 3463 §3.3: mailbox disabled)
0, 1, 2, no answer    451 4.4.3 (RFC 3463 §3.5: directory server failure)
====================  ==================================================

A 4xx makes the sender retry later, so a Minger outage or a misconfigured secret
never loses mail and never refuses it permanently. Answers about the address (3, 4,
5) are cached for ``minger_cache_seconds``; failures are not cached, so the next
RCPT asks again. The clock is injected (a monotonic one in the server, a fake in tests).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sansio_smtp import escape_text

__all__ = [
    "DEFAULT_MAX_CACHE_ENTRIES",
    "MingerLookup",
    "MingerVerifier",
    "Verdict",
]

DEFAULT_MAX_CACHE_ENTRIES = 10_000
"""Cached answers kept at most; the oldest go first (bounds memory under address floods)."""

MingerLookup = Callable[[str], Awaitable[int | None]]
"""Ask the Minger server about one address: its status code 0-5, or None on timeout."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """What to answer to the RCPT.

    Attributes:
        accepted: True to accept (250 2.1.5); then the other fields are unused.
        code: the reply code when refused (550 or 451).
        status: the enhanced status code when refused.
        text: the reply text when refused (peer text escaped).
        minger_status: the Minger status received, or None (timeout or error).
        cached: the answer came from the cache.
    """

    accepted: bool
    code: int = 250
    status: str = "2.1.5"
    text: str = "Ok"
    minger_status: int | None = None
    cached: bool = False


def _verdict(address: str, minger_status: int | None, *, cached: bool = False) -> Verdict:
    shown = escape_text(address, limit=320)
    if minger_status == 5:
        return Verdict(accepted=True, minger_status=5, cached=cached)
    if minger_status == 3:
        return Verdict(
            accepted=False,
            code=550,
            status="5.1.1",
            text=f"<{shown}>: Recipient address rejected: User unknown",
            minger_status=3,
            cached=cached,
        )
    if minger_status == 4:
        return Verdict(
            accepted=False,
            code=550,
            status="5.2.1",
            text=f"<{shown}>: Recipient address rejected: Mailbox disabled",
            minger_status=4,
            cached=cached,
        )
    return Verdict(
        accepted=False,
        code=451,
        status="4.4.3",
        text=f"<{shown}>: Recipient address verification failed; try again later",
        minger_status=minger_status,
    )


def _cache_key(address: str) -> str:
    # Domains are case-insensitive (RFC 5321 §2.4); local parts are left as they are.
    local, at, domain = address.rpartition("@")
    return f"{local}{at}{domain.lower()}"


class MingerVerifier:
    """Verify recipients for one forward route, caching the answers.

    Args:
        lookup: asks the route's Minger server; its errors count as "no answer".
        cache_seconds: how long an answer about an address is reused.
        clock: seconds from any fixed origin (e.g. ``trio.current_time``).
        max_entries: the cache's size bound.
    """

    def __init__(
        self,
        lookup: MingerLookup,
        *,
        cache_seconds: float,
        clock: Callable[[], float],
        max_entries: int = DEFAULT_MAX_CACHE_ENTRIES,
    ) -> None:
        self._lookup = lookup
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._max_entries = max_entries
        self._cache: OrderedDict[str, tuple[float, int]] = OrderedDict()

    async def verify(self, address: str) -> Verdict:
        """Decide the RCPT reply for ``address``.

        Returns:
            The verdict; never raises for a lookup failure (that is 451 4.4.3).
        """
        key = _cache_key(address)
        now = self._clock()
        hit = self._cache.get(key)
        if hit is not None:
            expires, cached_status = hit
            if now < expires:
                return _verdict(address, cached_status, cached=True)
            del self._cache[key]
        status: int | None
        try:
            status = await self._lookup(address)
        except Exception:  # the network or the codec: say "try later", never crash the session
            status = None
        if status is not None and status in (3, 4, 5):
            self._cache[key] = (self._clock() + self._cache_seconds, status)
            while len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)
        return _verdict(address, status)
