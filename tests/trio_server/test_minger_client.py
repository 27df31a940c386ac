"""Tests for trio_server.minger_client: verify() against a scripted UDP peer."""

from __future__ import annotations

import socket

import pytest
import trio
import trio.testing

import minger
from minger import Status
from trio_server.minger_client import MingerClientError, MingerTimeout, attempt_waits, verify

SECRET = "0123456789abcdef"
MAILBOX = "alice@example.test"


def udp() -> trio.socket.SocketType:
    """A fresh IPv4 UDP socket."""
    return trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)


async def bound_udp() -> trio.socket.SocketType:
    """A UDP socket bound to 127.0.0.1 on a free port."""
    sock = udp()
    await sock.bind(("127.0.0.1", 0))
    return sock


def address(sock: trio.socket.SocketType) -> tuple[str, int]:
    """The (host, port) a socket is bound to."""
    host, port = sock.getsockname()[:2]
    return str(host), int(port)


def test_attempt_waits_split_the_timeout() -> None:
    """The waits grow by the backoff factor and add up to the whole timeout."""
    waits = attempt_waits(7.0, 2, 2.0)
    assert waits == pytest.approx([1.0, 2.0, 4.0])
    assert attempt_waits(3.0, 0, 2.0) == [3.0]
    assert sum(attempt_waits(5.0, 4, 1.5)) == pytest.approx(5.0)


@pytest.mark.parametrize(
    ("timeout", "retries", "backoff"), [(0.0, 1, 2.0), (1.0, -1, 2.0), (1.0, 1, 0.5)]
)
def test_attempt_waits_checks_parameters(timeout: float, retries: int, backoff: float) -> None:
    """A non-positive timeout, negative retries or shrinking backoff is refused."""
    with pytest.raises(ValueError, match="must be"):
        attempt_waits(timeout, retries, backoff)


async def test_sends_the_exact_query_datagram() -> None:
    """verify() sends the encoded query: mailbox, d=digest, no terminator."""
    with await bound_udp() as server:
        async with trio.open_nursery() as nursery:
            results: list[Status] = []

            async def client() -> None:
                results.append(await verify(MAILBOX, address(server), SECRET, timeout=2.0))

            nursery.start_soon(client)
            data, peer = await server.recvfrom(600)
            assert data == minger.encode_query(minger.make_query(MAILBOX, secret=SECRET))
            await server.sendto(b"alice@example.test 5", peer)
        assert results == [Status.ACTIVE]


async def test_spoofed_and_foreign_replies_ignored() -> None:
    """Replies from another port, for another mailbox, or malformed, are all ignored."""
    with await bound_udp() as server, await bound_udp() as spoofer:
        async with trio.open_nursery() as nursery:
            results: list[Status] = []

            async def client() -> None:
                results.append(await verify(MAILBOX, address(server), SECRET, timeout=2.0))

            nursery.start_soon(client)
            _, peer = await server.recvfrom(600)
            await spoofer.sendto(b"alice@example.test 5", peer)  # right text, wrong port
            await server.sendto(b"mallory@example.test 5", peer)  # another mailbox
            await server.sendto(b"alice@example.test 9", peer)  # undefined status
            await server.sendto(b"5", peer)  # a bare claim about no address
            await server.sendto(b"\x00garbage", peer)
            await server.sendto(b"alice@EXAMPLE.TEST 3", peer)  # the real answer
        assert results == [Status.NOT_FOUND]


async def test_bare_request_status_is_an_answer() -> None:
    """A bare 2 (mingerd style) is taken as the answer: credentials refused."""
    with await bound_udp() as server:
        async with trio.open_nursery() as nursery:
            results: list[Status] = []

            async def client() -> None:
                results.append(await verify(MAILBOX, address(server), None, timeout=2.0))

            nursery.start_soon(client)
            _, peer = await server.recvfrom(600)
            await server.sendto(b"2\r\n", peer)
        assert results == [Status.BAD_CREDENTIALS]


async def test_retransmits_until_answered(autojump_clock: trio.testing.MockClock) -> None:
    """A lost first datagram is retransmitted after its wait; the second is answered."""
    with await bound_udp() as server:
        async with trio.open_nursery() as nursery:
            results: list[Status] = []

            async def client() -> None:
                results.append(
                    await verify(MAILBOX, address(server), SECRET, timeout=3.0, retries=2)
                )

            nursery.start_soon(client)
            first, _ = await server.recvfrom(600)
            sent_at = trio.current_time()
            second, peer = await server.recvfrom(600)
            assert first == second
            assert trio.current_time() - sent_at == pytest.approx(3.0 / 7)
            await server.sendto(b"alice@example.test 4", peer)
        assert results == [Status.DISABLED]


async def test_timeout_is_an_exception(autojump_clock: trio.testing.MockClock) -> None:
    """Silence raises MingerTimeout (a TimeoutError) after retries+1 datagrams, on time."""
    with await bound_udp() as server:
        start = trio.current_time()
        with pytest.raises(MingerTimeout) as info:
            await verify(MAILBOX, address(server), SECRET, timeout=5.0, retries=2)
        assert trio.current_time() - start == pytest.approx(5.0)
        assert isinstance(info.value, TimeoutError)
        assert info.value.attempts == 3
        assert info.value.mailbox == MAILBOX
        assert "within 5s (3 attempts)" in str(info.value)
        received = 0
        with trio.move_on_after(1.0):  # virtual time; only datagrams already queued
            for _ in range(10):
                await server.recvfrom(600)
                received += 1
        assert received == 3


async def test_bad_address_sends_nothing() -> None:
    """An address that cannot be a Minger mailbox raises MingerError before sending."""
    with await bound_udp() as server:
        with pytest.raises(minger.MingerError):
            await verify("not an address", address(server), SECRET, timeout=1.0)
        with pytest.raises(minger.MingerError):
            await verify(MAILBOX, address(server), "bad secret", timeout=1.0)


async def test_unresolvable_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server name that does not resolve raises MingerClientError, not a status."""

    async def fail(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(trio.socket, "getaddrinfo", fail)
    with pytest.raises(MingerClientError, match="cannot resolve"):
        await verify(MAILBOX, ("minger.invalid", 4069), SECRET, timeout=1.0)
