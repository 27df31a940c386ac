"""DirectSocketStream: the listener's plaintext stream that tries each system call first."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import trio
import trio.testing

from trio_server.server import CHECKPOINT_EVERY, DirectSocketStream


@pytest.fixture
def pair() -> Iterator[tuple[DirectSocketStream, socket.socket]]:
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    yield DirectSocketStream(ours), theirs
    ours.close()
    theirs.close()


async def test_round_trip_and_half_closed_peer(
    pair: tuple[DirectSocketStream, socket.socket],
) -> None:
    """Bytes go both ways; a peer that shuts its sending side reads as b"" (EOF)."""
    stream, peer = pair
    await stream.send_all(b"220 hello\r\n")
    assert peer.recv(100) == b"220 hello\r\n"
    peer.sendall(b"QUIT\r\n")
    assert await stream.receive_some(100) == b"QUIT\r\n"
    peer.shutdown(socket.SHUT_WR)
    assert await stream.receive_some(100) == b""
    await stream.send_all(b"221 bye\r\n")  # our side is still open
    assert peer.recv(100) == b"221 bye\r\n"


async def test_receive_waits_for_data(pair: tuple[DirectSocketStream, socket.socket]) -> None:
    """With nothing to read the task waits (and can be cancelled) instead of spinning."""
    stream, peer = pair
    with trio.move_on_after(0.05) as scope:
        await stream.receive_some(100)
    assert scope.cancelled_caught

    async def later() -> None:
        await trio.testing.wait_all_tasks_blocked()
        peer.sendall(b"late")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(later)
        assert await stream.receive_some(100) == b"late"


async def test_send_all_survives_partial_writes(
    pair: tuple[DirectSocketStream, socket.socket],
) -> None:
    """A send far larger than the socket buffer arrives whole and in order."""
    stream, peer = pair
    payload = bytes(range(256)) * (16 * 1024)  # 4 MiB
    received = bytearray()

    async def reader() -> None:
        while len(received) < len(payload):
            await trio.lowlevel.wait_readable(peer)
            received.extend(peer.recv(65536))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await stream.send_all(payload)
    assert bytes(received) == payload


async def test_two_receivers_or_senders_conflict(
    pair: tuple[DirectSocketStream, socket.socket],
) -> None:
    """A second task receiving (or sending) while one waits gets BusyResourceError."""
    stream, peer = pair
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream.receive_some, 10)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError):
            await stream.receive_some(10)
        peer.sendall(b"x")
    stuck = b"y" * (8 * 1024 * 1024)  # nobody reads: the first send blocks
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream.send_all, stuck)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError):
            await stream.send_all(b"z")
        with pytest.raises(trio.BusyResourceError):
            await stream.wait_send_all_might_not_block()
        nursery.cancel_scope.cancel()


async def test_aclose_wakes_a_waiting_receiver_and_refuses_later_calls(
    pair: tuple[DirectSocketStream, socket.socket],
) -> None:
    """aclose: a task blocked in receive_some and any later call get ClosedResourceError."""
    stream, _ = pair
    errors: list[BaseException] = []

    async def receive() -> None:
        try:
            await stream.receive_some(10)
        except trio.ClosedResourceError as error:
            errors.append(error)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receive)
        await trio.testing.wait_all_tasks_blocked()
        await stream.aclose()
    assert len(errors) == 1
    with pytest.raises(trio.ClosedResourceError):
        await stream.receive_some(10)
    with pytest.raises(trio.ClosedResourceError):
        await stream.send_all(b"x")
    await stream.aclose()  # closing twice is fine


async def test_peer_gone_is_broken(pair: tuple[DirectSocketStream, socket.socket]) -> None:
    """Writing to a peer that has closed raises BrokenResourceError, never OSError."""
    stream, peer = pair
    peer.close()
    with pytest.raises(trio.BrokenResourceError):
        await stream.send_all(b"x" * 65536)


async def test_flooding_peer_cannot_starve_other_tasks(
    pair: tuple[DirectSocketStream, socket.socket],
) -> None:
    """Reads that never wait still yield every CHECKPOINT_EVERY operations."""
    stream, peer = pair
    peer.sendall(b"x" * (4 * CHECKPOINT_EVERY))
    ran = trio.Event()

    async def other() -> None:
        ran.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other)
        for _ in range(2 * CHECKPOINT_EVERY):  # data always ready: recv never blocks
            assert await stream.receive_some(1) == b"x"
        assert ran.is_set()
