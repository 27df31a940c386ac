"""Tests for minger._ratelimit: per-source token buckets with time passed in."""

import pytest

from minger import RateLimiter, RateVerdict


def test_burst_then_refuse() -> None:
    """A source may send `burst` queries at once; the next is refused, logged once."""
    limiter = RateLimiter(rate=1.0, burst=3)
    verdicts = [limiter.check("a", 0.0) for _ in range(5)]
    assert verdicts == [
        RateVerdict.ACCEPT,
        RateVerdict.ACCEPT,
        RateVerdict.ACCEPT,
        RateVerdict.LIMIT_ENGAGED,
        RateVerdict.REFUSE,
    ]


def test_refill_at_rate() -> None:
    """Tokens come back at `rate` per second, and engage the log flag again afterwards."""
    limiter = RateLimiter(rate=2.0, burst=1)
    assert limiter.check("a", 0.0) is RateVerdict.ACCEPT
    assert limiter.check("a", 0.25) is RateVerdict.LIMIT_ENGAGED
    assert limiter.check("a", 0.5) is RateVerdict.ACCEPT
    assert limiter.check("a", 0.5) is RateVerdict.LIMIT_ENGAGED


def test_sources_are_independent() -> None:
    """One source's empty bucket does not limit another source."""
    limiter = RateLimiter(rate=1.0, burst=1)
    assert limiter.check("a", 0.0) is RateVerdict.ACCEPT
    assert limiter.check("a", 0.0) is RateVerdict.LIMIT_ENGAGED
    assert limiter.check("b", 0.0) is RateVerdict.ACCEPT


def test_bucket_never_exceeds_burst() -> None:
    """A long-idle source gets at most `burst` queries, not its whole idle time's worth."""
    limiter = RateLimiter(rate=10.0, burst=2)
    limiter.check("a", 0.0)
    verdicts = [limiter.check("a", 1000.0) for _ in range(3)]
    assert verdicts[:2] == [RateVerdict.ACCEPT, RateVerdict.ACCEPT]
    assert verdicts[2] is RateVerdict.LIMIT_ENGAGED


def test_clock_going_backwards_refills_nothing() -> None:
    """A clock stepping back neither refills a bucket nor breaks it."""
    limiter = RateLimiter(rate=1.0, burst=1)
    assert limiter.check("a", 100.0) is RateVerdict.ACCEPT
    assert limiter.check("a", 50.0) is RateVerdict.LIMIT_ENGAGED
    assert limiter.check("a", 100.5) is RateVerdict.REFUSE
    assert limiter.check("a", 101.0) is RateVerdict.ACCEPT


def test_memory_is_bounded_least_recent_forgotten() -> None:
    """At most max_sources buckets are kept; the least recently seen goes first."""
    limiter = RateLimiter(rate=1.0, burst=1, max_sources=2)
    limiter.check("a", 0.0)
    limiter.check("b", 0.0)
    limiter.check("a", 0.0)  # a is now the most recent
    limiter.check("c", 0.0)  # forgets b
    assert len(limiter) == 2
    assert limiter.check("a", 0.0) is RateVerdict.REFUSE
    assert limiter.check("b", 0.0) is RateVerdict.ACCEPT


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rate": 0.0, "burst": 1},
        {"rate": 1.0, "burst": 0},
        {"rate": 1.0, "burst": 1, "max_sources": 0},
    ],
)
def test_parameters_checked(kwargs: dict[str, float]) -> None:
    """Non-positive rate, burst or capacity is refused when the limiter is built."""
    with pytest.raises(ValueError, match="must be"):
        RateLimiter(**kwargs)  # type: ignore[arg-type]
