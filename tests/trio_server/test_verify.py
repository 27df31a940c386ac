"""Tests for trio_server.verify: Minger answers mapped to RCPT replies, and the cache."""

from __future__ import annotations

import pytest
import trio
import trio.testing

import minger
from trio_server.minger_service import MingerSettings, serve_minger
from trio_server.outbound import minger_lookup
from trio_server.routes import ForwardRoute, HostPort
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


# --- against the project's Minger service on loopback ----------------------------------

SECRET = "a-shared-secret-of-24ch"


@pytest.fixture
def slow_clock() -> trio.testing.MockClock:
    """Time jumps only after 50 ms of real idleness, so loopback UDP answers arrive first."""
    return trio.testing.MockClock(autojump_threshold=0.05)


def _directory(mailbox: str) -> minger.Status:
    return {
        "active@branch.example.test": minger.Status.ACTIVE,
        "gone@branch.example.test": minger.Status.NOT_FOUND,
        "off@branch.example.test": minger.Status.DISABLED,
    }.get(mailbox, minger.Status.NOT_FOUND)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("address", "secret", "code", "status"),
    [
        ("active@branch.example.test", SECRET, 250, "2.1.5"),
        ("gone@branch.example.test", SECRET, 550, "5.1.1"),
        ("off@branch.example.test", SECRET, 550, "5.2.1"),
        ("active@branch.example.test", "the-wrong-secret-entirely", 451, "4.4.3"),
    ],
)
async def test_against_minger_service(
    slow_clock: trio.testing.MockClock, address: str, secret: str, code: int, status: str
) -> None:
    """5, 3 and 4 from a real Minger service map to 250, 550 5.1.1 and 550 5.2.1; 2 to 451."""
    settings = MingerSettings(listen=("127.0.0.1", 0), secret=SECRET)
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(serve_minger, settings, _directory)
        route = ForwardRoute(
            addresses="*@branch.example.test",
            server=HostPort(host="127.0.0.1", port=25),
            verify="minger",
            minger_server=HostPort(host=host, port=port),
            minger_secret=secret,
        )
        verifier = MingerVerifier(minger_lookup(route), cache_seconds=60, clock=trio.current_time)
        verdict = await verifier.verify(address)
        nursery.cancel_scope.cancel()
    assert (verdict.code, verdict.status) == (code, status)


@pytest.mark.slow
async def test_silent_minger_is_try_later(slow_clock: trio.testing.MockClock) -> None:
    """A Minger server that never answers gives 451 4.4.3 after the timeout, not a hang."""
    with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as silent:
        await silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        route = ForwardRoute(
            addresses="*@x.test",
            server=HostPort(host="127.0.0.1", port=25),
            verify="minger",
            minger_server=HostPort(host="127.0.0.1", port=port),
            minger_secret=SECRET,
        )
        verifier = MingerVerifier(minger_lookup(route), cache_seconds=60, clock=trio.current_time)
        started = trio.current_time()
        verdict = await verifier.verify("anyone@x.test")
        elapsed = trio.current_time() - started
    assert (verdict.code, verdict.status, verdict.minger_status) == (451, "4.4.3", None)
    assert elapsed == pytest.approx(5.0, abs=0.5)
