"""Tests for trio_server.verify: Minger answers mapped to RCPT replies, and the cache."""

from __future__ import annotations

import pytest

from trio_server.verify import MingerVerifier, Verdict


class FakeMinger:
    """A Minger lookup that answers from a table and counts the questions."""

    def __init__(self, answers: dict[str, int | None], *, fail: bool = False) -> None:
        self.answers = answers
        self.fail = fail
        self.asked: list[str] = []

    async def __call__(self, address: str) -> int | None:
        self.asked.append(address)
        if self.fail:
            raise OSError("network unreachable")
        return self.answers.get(address)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _verifier(minger: FakeMinger, clock: FakeClock, **kwargs: int) -> MingerVerifier:
    return MingerVerifier(minger, cache_seconds=60, clock=clock, **kwargs)


@pytest.mark.parametrize(
    ("status", "accepted", "code", "enhanced"),
    [
        (5, True, 250, "2.1.5"),
        (3, False, 550, "5.1.1"),
        (4, False, 550, "5.2.1"),
        (0, False, 451, "4.4.3"),
        (1, False, 451, "4.4.3"),
        (2, False, 451, "4.4.3"),
        (None, False, 451, "4.4.3"),
    ],
)
async def test_status_mapping(status: int | None, accepted: bool, code: int, enhanced: str) -> None:
    """5 accepts, 3 is 550 5.1.1, 4 is 550 5.2.1, anything else (and silence) 451 4.4.3."""
    verdict = await _verifier(FakeMinger({"bob@x.test": status}), FakeClock()).verify("bob@x.test")
    assert (verdict.accepted, verdict.code, verdict.status) == (accepted, code, enhanced)
    assert verdict.minger_status == status


async def test_answers_cached_until_expiry() -> None:
    """An answer is reused for minger_cache_seconds, then asked again."""
    minger, clock = FakeMinger({"bob@x.test": 3}), FakeClock()
    verifier = _verifier(minger, clock)
    first = await verifier.verify("bob@x.test")
    clock.now += 59
    second = await verifier.verify("bob@x.test")
    assert (first.cached, second.cached) == (False, True)
    assert second.code == 550
    assert minger.asked == ["bob@x.test"]
    clock.now += 2
    await verifier.verify("bob@x.test")
    assert minger.asked == ["bob@x.test", "bob@x.test"]


async def test_cache_ignores_domain_case_only() -> None:
    """The cache treats the domain case-insensitively but the local part exactly."""
    minger, clock = FakeMinger({"bob@x.test": 5, "bob@X.TEST": 5, "Bob@x.test": 5}), FakeClock()
    verifier = _verifier(minger, clock)
    await verifier.verify("bob@x.test")
    assert (await verifier.verify("bob@X.TEST")).cached
    assert not (await verifier.verify("Bob@x.test")).cached


@pytest.mark.parametrize("answer", [None, 0, 1, 2])
async def test_failures_not_cached(answer: int | None) -> None:
    """Timeouts and request errors are asked again at the next RCPT."""
    minger, clock = FakeMinger({"bob@x.test": answer}), FakeClock()
    verifier = _verifier(minger, clock)
    await verifier.verify("bob@x.test")
    await verifier.verify("bob@x.test")
    assert len(minger.asked) == 2


async def test_lookup_exception_is_try_later() -> None:
    """A failing lookup gives 451 4.4.3, never an exception into the session."""
    verifier = _verifier(FakeMinger({}, fail=True), FakeClock())
    verdict = await verifier.verify("bob@x.test")
    assert verdict == Verdict(
        accepted=False,
        code=451,
        status="4.4.3",
        text="<bob@x.test>: Recipient address verification failed; try again later",
    )


async def test_cache_is_bounded() -> None:
    """The cache keeps at most max_entries answers, dropping the oldest."""
    addresses = [f"u{i}@x.test" for i in range(5)]
    minger, clock = FakeMinger(dict.fromkeys(addresses, 5)), FakeClock()
    verifier = _verifier(minger, clock, max_entries=3)
    for address in addresses:
        await verifier.verify(address)
    assert (await verifier.verify("u4@x.test")).cached
    assert not (await verifier.verify("u0@x.test")).cached


async def test_reply_text_escapes_peer_address() -> None:
    """Control characters in the address never reach the reply raw."""
    verifier = _verifier(FakeMinger({"a\r\nb@x.test": 3}), FakeClock())
    verdict = await verifier.verify("a\r\nb@x.test")
    assert "\r" not in verdict.text
    assert "\n" not in verdict.text
