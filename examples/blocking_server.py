"""A minimal blocking SMTP server on the sansio_smtp engine (stdlib socket only).

It accepts any recipient at any domain and prints each message's envelope and
size; the message itself is counted, not stored. One connection at a time.

    python examples/blocking_server.py --host 127.0.0.1 --port 2525

With ``--port 0`` the system picks a free port; the first line printed says which.
"""

from __future__ import annotations

import argparse
import socket

import sansio_smtp as smtp

DECISIONS = (smtp.Hello, smtp.MailFrom, smtp.RcptTo, smtp.Verify, smtp.Expand)


def handle(sock: socket.socket, config: smtp.ServerConfig) -> None:
    """Run one SMTP session on a connected socket until it closes."""
    conn = smtp.ServerConnection(config)
    conn.send(smtp.Greeting())
    sender = ""
    recipients: list[str] = []
    size = 0
    while True:
        event = conn.next_event()
        if event is smtp.NEED_DATA:
            sock.sendall(conn.data_to_send())
            conn.receive_data(sock.recv(65536))
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
            print(f"message from <{smtp.escape_text(sender)}> to {to}: {size} bytes", flush=True)
            conn.send(smtp.Accept())
        elif isinstance(event, smtp.ConnectionClosed) or event is smtp.PAUSED:
            # PAUSED only happens for STARTTLS, which is off here.
            sock.sendall(conn.data_to_send())
            return


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and serve forever."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    args = parser.parse_args(argv)
    config = smtp.ServerConfig(hostname=socket.getfqdn() or "localhost")
    with socket.create_server((args.host, args.port)) as listener:
        print(f"listening on {args.host} {listener.getsockname()[1]}", flush=True)
        while True:
            sock, _ = listener.accept()
            with sock:
                try:
                    handle(sock, config)
                except OSError as exc:
                    print(f"connection error: {exc}", flush=True)


if __name__ == "__main__":
    main()
