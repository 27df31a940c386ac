"""A bench-only SMTP sink: the sansio_smtp engine on Trio, accepting and discarding everything.

Run as `python bench/trio_sink.py --port N`. It drives the engine the way the Trio layer
of sansio-smtpd does (one task per connection on the listener's socket turned into a
DirectSocketStream, replies flushed before each read) but
decides nothing: every HELO/MAIL/RCPT/end of data gets Accept and the content is dropped.
This is the "sansio-smtpd discarding" target of the suite, used because the real server
always delivers; it measures the engine plus Trio without Maildir I/O.
"""

from __future__ import annotations

import argparse
import signal
import socket
from functools import partial

import trio

import sansio_smtp as smtp
from trio_server.server import DirectSocketStream

_READ_SIZE = 65536


async def handle(config: smtp.ServerConfig, accepted: trio.SocketStream) -> None:
    """Serve one connection until the engine reports it closed."""
    # As sansio-smtpd's listener does: the session runs on the socket directly.
    raw = accepted.socket
    stream = DirectSocketStream(socket.socket(raw.family, raw.type, raw.proto, raw.detach()))
    conn = smtp.ServerConnection(config)
    conn.send(smtp.Greeting())
    try:
        async with stream:
            # Bounded by the peer: each turn either reads or consumes buffered input.
            while True:
                event = conn.next_event()
                if event is smtp.NEED_DATA:
                    out = conn.data_to_send()
                    if out:
                        await stream.send_all(out)
                    conn.receive_data(await stream.receive_some(_READ_SIZE))
                elif isinstance(event, smtp.Hello | smtp.MailFrom | smtp.RcptTo | smtp.MessageEnd):
                    conn.send(smtp.Accept())
                elif isinstance(event, smtp.ConnectionClosed) or event is smtp.PAUSED:
                    out = conn.data_to_send()
                    if out:
                        await stream.send_all(out)
                    return
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return


async def serve(port: int) -> None:
    """Listen on 127.0.0.1:port until SIGTERM / SIGINT."""
    config = smtp.ServerConfig(hostname="trio-sink.bench")
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(
                partial(
                    trio.serve_tcp, partial(handle, config), port, host="127.0.0.1", backlog=256
                )
            )
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break


def main() -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    trio.run(serve, parser.parse_args().port)


if __name__ == "__main__":
    main()
