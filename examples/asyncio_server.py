"""A minimal asyncio SMTP server on the sansio_smtp engine (asyncio streams).

It accepts any recipient at any domain and prints each message's envelope and
size; the message itself is counted, not stored.

    python examples/asyncio_server.py --host 127.0.0.1 --port 2525

With ``--port 0`` the system picks a free port; the first line printed says which.
"""

from __future__ import annotations

import argparse
import asyncio
import socket

import sansio_smtp as smtp

DECISIONS = (smtp.Hello, smtp.MailFrom, smtp.RcptTo, smtp.Verify, smtp.Expand)


async def handle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: smtp.ServerConfig
) -> None:
    """Run one SMTP session on a connected stream pair until it closes."""
    conn = smtp.ServerConnection(config)
    conn.send(smtp.Greeting())
    sender = ""
    recipients: list[str] = []
    size = 0
    try:
        while True:
            event = conn.next_event()
            if event is smtp.NEED_DATA:
                writer.write(conn.data_to_send())
                await writer.drain()
                conn.receive_data(await reader.read(65536))
            elif isinstance(event, smtp.MailFrom):
                sender, recipients, size = event.raw, [], 0
                conn.send(smtp.Accept())
            elif isinstance(event, smtp.RcptTo):
                recipients.append(event.raw)
                conn.send(smtp.Accept())
            elif isinstance(event, DECISIONS):
                conn.send(smtp.Accept())
            elif isinstance(event, smtp.MessageData):
                size += len(event.data)
            elif isinstance(event, smtp.MessageEnd):
                to = ", ".join(f"<{smtp.escape_text(r)}>" for r in recipients)
                print(f"message from <{smtp.escape_text(sender)}> to {to}: {size} bytes")
                conn.send(smtp.Accept())
            elif isinstance(event, smtp.ConnectionClosed) or event is smtp.PAUSED:
                # PAUSED only happens for STARTTLS, which is off here.
                writer.write(conn.data_to_send())
                await writer.drain()
                return
    except OSError as exc:
        print(f"connection error: {exc}")
    finally:
        writer.close()


async def serve(host: str, port: int) -> None:
    """Listen and serve forever."""
    config = smtp.ServerConfig(hostname=socket.getfqdn() or "localhost")
    server = await asyncio.start_server(lambda r, w: handle(r, w, config), host, port)
    print(f"listening on {host} {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and run the server."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
