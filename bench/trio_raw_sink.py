"""A bench-only SMTP sink: the engine on Trio's low-level I/O (no SocketStream).

Run as `python bench/trio_raw_sink.py --port N`. Same decisions as bench/trio_sink.py,
but each connection is a plain non-blocking socket: recv/send are tried first and only
when they would block does the task wait with trio.lowlevel.wait_readable /
wait_writable. Cancellation and timeouts still work (the waits are Trio checkpoints),
yet a reply that fits the socket buffer costs one send() and no trip through the
scheduler. It measures how much of trio_sink's time is SocketStream's per-call
machinery rather than Trio itself.
"""

from __future__ import annotations

import argparse
import signal
import socket

import trio

import sansio_smtp as smtp

_READ_SIZE = 65536
_DECIDED = (smtp.Hello, smtp.MailFrom, smtp.RcptTo, smtp.MessageEnd)


async def send_all(sock: socket.socket, data: bytes) -> None:
    """Write everything, waiting only when the kernel's buffer is full."""
    view = memoryview(data)
    # Each turn writes at least one byte or waits for room: bounded by len(data) turns.
    while view:
        try:
            sent = sock.send(view)
        except BlockingIOError:
            await trio.lowlevel.wait_writable(sock)
            continue
        view = view[sent:]


async def receive(sock: socket.socket) -> bytes:
    """Read what is there, waiting only when nothing is."""
    # Two turns at most in practice: a read that would block, then one after the wait.
    while True:
        try:
            return sock.recv(_READ_SIZE)
        except BlockingIOError:
            await trio.lowlevel.wait_readable(sock)


async def handle(config: smtp.ServerConfig, sock: socket.socket) -> None:
    """Serve one connection until the engine reports it closed."""
    conn = smtp.ServerConnection(config)
    conn.send(smtp.Greeting())
    try:
        # Bounded by the peer: each turn either reads or consumes buffered input.
        while True:
            event = conn.next_event()
            if event is smtp.NEED_DATA:
                out = conn.data_to_send()
                if out:
                    await send_all(sock, out)
                conn.receive_data(await receive(sock))
            elif isinstance(event, _DECIDED):
                conn.send(smtp.Accept())
            elif isinstance(event, smtp.ConnectionClosed) or event is smtp.PAUSED:
                out = conn.data_to_send()
                if out:
                    await send_all(sock, out)
                return
    except OSError:
        return
    finally:
        sock.close()


async def serve(port: int) -> None:
    """Accept on 127.0.0.1:port until SIGTERM / SIGINT; one task per connection."""
    config = smtp.ServerConfig(hostname="trio-raw-sink.bench")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(256)
    listener.setblocking(False)
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:

            async def stop() -> None:
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    return

            nursery.start_soon(stop)
            # Runs until the stop task cancels the nursery.
            while True:
                try:
                    sock, _ = listener.accept()
                except BlockingIOError:
                    await trio.lowlevel.wait_readable(listener)
                    continue
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                nursery.start_soon(handle, config, sock)
    listener.close()


def main() -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    trio.run(serve, parser.parse_args().port)


if __name__ == "__main__":
    main()
