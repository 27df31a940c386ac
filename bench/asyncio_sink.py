"""A bench-only SMTP sink: the sansio_smtp engine under an asyncio.Protocol, discarding.

Run as `python bench/asyncio_sink.py --port N`. Same decisions as bench/trio_sink.py
(accept everything, drop the content) on the event loop aiosmtpd uses, but through
the Protocol callbacks rather than streams: bytes in from data_received, replies out
with transport.write, no task per read. It shows what the engine does with a thin
I/O layer, next to the same engine on Trio.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import sansio_smtp as smtp

_DECIDED = (smtp.Hello, smtp.MailFrom, smtp.RcptTo, smtp.MessageEnd)
# Events handed out per data_received call at most: a bound, far above any real batch.
_MAX_EVENTS = 1_000_000


class SinkProtocol(asyncio.Protocol):
    """One SMTP session: feed the engine, answer its events, write its replies."""

    def __init__(self, config: smtp.ServerConfig) -> None:
        self.conn = smtp.ServerConnection(config)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.conn.send(smtp.Greeting())
        transport.write(self.conn.data_to_send())

    def data_received(self, data: bytes) -> None:
        self.conn.receive_data(data)
        self._pump()

    def eof_received(self) -> bool:
        self.conn.receive_data(b"")
        self._pump()
        return False

    def _pump(self) -> None:
        conn = self.conn
        transport = self.transport
        assert transport is not None
        for _ in range(_MAX_EVENTS):
            event = conn.next_event()
            if event is smtp.NEED_DATA:
                break
            if isinstance(event, _DECIDED):
                conn.send(smtp.Accept())
            elif isinstance(event, smtp.ConnectionClosed) or event is smtp.PAUSED:
                out = conn.data_to_send()
                if out:
                    transport.write(out)
                transport.close()
                return
        out = conn.data_to_send()
        if out:
            transport.write(out)


def main() -> None:
    """Parse the command line and serve until SIGTERM / SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    config = smtp.ServerConfig(hostname="asyncio-sink.bench")

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        server = await loop.create_server(
            lambda: SinkProtocol(config), host="127.0.0.1", port=port, backlog=256
        )
        async with server:
            await stop.wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
