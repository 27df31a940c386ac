"""Next-hop SMTP servers on loopback for the forwarding tests.

- :class:`EngineHop`: a Trio server on our own engine (PIPELINING, DSN, CHUNKING...),
  which records every transaction with its parsed parameters.
- :class:`AiosmtpdHop`: aiosmtpd, an independent implementation without DSN or
  PIPELINING, run in its own thread by its Controller.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

import trio
from aiosmtpd.controller import Controller

from sansio_smtp import (
    NEED_DATA,
    Accept,
    ConnectionClosed,
    Greeting,
    Hello,
    MailFrom,
    MailParams,
    MessageData,
    MessageEnd,
    RcptParams,
    RcptTo,
    Reject,
    ServerConfig,
    ServerConnection,
)


@dataclass
class Transaction:
    """One message as a next hop saw it."""

    sender: str | None = None
    mail_params: MailParams | None = None
    recipients: list[tuple[str, RcptParams]] = field(default_factory=list)
    content: bytes = b""


class EngineHop:
    """A recording SMTP server on the sansio_smtp engine.

    Args:
        reject: recipient address -> the refusal its RCPT gets.
        config: engine settings (extensions on or off).
    """

    def __init__(self, *, reject: dict[str, Reject] | None = None, **config: Any) -> None:
        self.reject = reject or {}
        self.config = ServerConfig(hostname="next.example.test", **config)
        self.transactions: list[Transaction] = []
        self.port = 0

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on 127.0.0.1, port 0; report the port."""
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self.port)
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        conn = ServerConnection(self.config)
        conn.send(Greeting())
        current = Transaction()
        async with stream:
            for _ in range(10_000):  # bounded: a test session is short
                event = conn.next_event()
                if event is NEED_DATA:
                    if out := conn.data_to_send():
                        await stream.send_all(out)
                    conn.receive_data(bytes(await stream.receive_some(65536)))
                    continue
                if isinstance(event, ConnectionClosed):
                    if out := conn.data_to_send():
                        await stream.send_all(out)
                    return
                if isinstance(event, Hello):
                    conn.send(Accept())
                elif isinstance(event, MailFrom):
                    current = Transaction(
                        sender="" if event.sender is None else str(event.sender),
                        mail_params=event.params,
                    )
                    conn.send(Accept())
                elif isinstance(event, RcptTo):
                    refusal = self.reject.get(str(event.recipient))
                    if refusal is None:
                        current.recipients.append((str(event.recipient), event.params))
                    conn.send(refusal or Accept())
                elif isinstance(event, MessageData):
                    current.content += event.data
                elif isinstance(event, MessageEnd):
                    self.transactions.append(current)
                    conn.send(Accept(text="Ok: queued"))


def free_port() -> int:
    """A TCP port nobody listens on right now (for "hop down" tests)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Recorder:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 2.0.0 Ok: queued"


class AiosmtpdHop:
    """aiosmtpd on 127.0.0.1 (its Controller needs a fixed port, so one is picked first)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._recorder = _Recorder()
        self._controller = Controller(self._recorder, hostname="127.0.0.1", port=self.port)

    @property
    def messages(self) -> list[tuple[str, list[str], bytes]]:
        """(MAIL FROM, RCPT TOs, content) per message received."""
        return self._recorder.messages

    def start(self) -> None:
        """Start serving (blocks until aiosmtpd answers)."""
        self._controller.start()

    def stop(self) -> None:
        """Stop serving."""
        self._controller.stop()
