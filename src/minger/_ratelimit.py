"""A per-source token-bucket rate limiter, with time passed in (sans-IO).

The Minger draft says nothing about rate limiting (research notes §4), yet a Minger
server answers "does this address exist?" to anyone allowed to ask: unthrottled, its
directory can be harvested at line speed. Each source gets a bucket of ``burst`` tokens
that refills at ``rate`` tokens per second; a query costs one token, and a query that
finds the bucket empty is refused.

Memory is bounded: at most ``max_sources`` buckets are kept, and the least recently seen
source is forgotten first (it comes back with a full bucket). Forgetting can only help a
sender that controls more than ``max_sources`` addresses it can receive answers on;
spoofed sources never see the answers.
"""

import enum
from collections.abc import Hashable
from dataclasses import dataclass

__all__ = ["RateLimiter", "RateVerdict"]


class RateVerdict(enum.Enum):
    """What the limiter says about one query."""

    ACCEPT = "accept"
    """Within the limit: answer it."""
    LIMIT_ENGAGED = "limit engaged"
    """The first query refused since this source was last accepted: log it once."""
    REFUSE = "refuse"
    """Refused again: drop it quietly."""


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float
    limited: bool = False


class RateLimiter:
    """Token buckets keyed by source (an address, or an IPv6 prefix).

    Args:
        rate: tokens added per second to each bucket; must be positive.
        burst: bucket size, i.e. how many queries a quiet source may send at once; at
            least 1.
        max_sources: how many buckets to keep at most; at least 1.

    Raises:
        ValueError: a parameter is out of range.
    """

    def __init__(self, *, rate: float, burst: int, max_sources: int = 4096) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be positive, not {rate!r}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, not {burst!r}")
        if max_sources < 1:
            raise ValueError(f"max_sources must be at least 1, not {max_sources!r}")
        self.rate = rate
        self.burst = burst
        self.max_sources = max_sources
        # Insertion order is recency order: a source is moved to the end when seen.
        self._buckets: dict[Hashable, _Bucket] = {}

    def __len__(self) -> int:
        """The number of sources currently tracked."""
        return len(self._buckets)

    def check(self, source: Hashable, now: float) -> RateVerdict:
        """Spend one token of ``source``'s bucket at time ``now``, if it has one.

        Args:
            source: the key of the sender.
            now: the current time in seconds, from a monotonic clock. A clock that
                steps backwards refills nothing.

        Returns:
            The verdict for this query.
        """
        bucket = self._buckets.pop(source, None)
        if bucket is None:
            if len(self._buckets) >= self.max_sources:
                del self._buckets[next(iter(self._buckets))]
            bucket = _Bucket(tokens=float(self.burst), updated=now)
        elapsed = max(0.0, now - bucket.updated)
        bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate)
        bucket.updated = max(bucket.updated, now)
        self._buckets[source] = bucket
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            bucket.limited = False
            return RateVerdict.ACCEPT
        if bucket.limited:
            return RateVerdict.REFUSE
        bucket.limited = True
        return RateVerdict.LIMIT_ENGAGED
