"""Test helpers: drive a ServerConnection with byte splits and automatic decisions."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sansio_smtp import (
    NEED_DATA,
    PAUSED,
    Accept,
    AuthCredentials,
    ConnectionClosed,
    Decision,
    Event,
    Expand,
    Greeting,
    Hello,
    MailFrom,
    MessageData,
    MessageEnd,
    MessageRejected,
    RcptTo,
    ServerConfig,
    ServerConnection,
    State,
    Verify,
)

DECISION_EVENTS = (Hello, MailFrom, RcptTo, MessageEnd, AuthCredentials, Verify, Expand)

Decide = Callable[[Event], Decision]


def accept_all(event: Event) -> Decision:
    """Accept every event that needs a decision."""
    return Accept()


def config(**overrides: object) -> ServerConfig:
    """A ServerConfig for tests: hostname mx.test plus overrides."""
    return ServerConfig(hostname="mx.test", **overrides)  # type: ignore[arg-type]


@dataclass
class Session:
    """A greeted ServerConnection plus a record of every event and reply byte."""

    conn: ServerConnection
    decide: Decide = accept_all
    events: list[Event] = field(default_factory=list)
    output: bytearray = field(default_factory=bytearray)

    @classmethod
    def start(
        cls,
        cfg: ServerConfig | None = None,
        decide: Decide = accept_all,
        *,
        tls_active: bool = False,
    ) -> Session:
        """Make a connection, send the greeting and record its bytes."""
        conn = ServerConnection(cfg or config(), tls_active=tls_active)
        conn.send(Greeting())
        session = cls(conn=conn, decide=decide)
        session.output += conn.data_to_send()
        return session

    def feed(self, data: bytes) -> list[Event]:
        """receive_data(data), then pump events until NEED_DATA/PAUSED/closed."""
        self.conn.receive_data(data)
        return self.pump()

    def pump(self) -> list[Event]:
        """Pull events, deciding as told, until the engine needs data or pauses."""
        new: list[Event] = []
        if self.events and isinstance(self.events[-1], ConnectionClosed):
            return new  # ConnectionClosed repeats forever; record it once
        for _ in range(100_000):
            event = self.conn.next_event()
            if event is NEED_DATA or event is PAUSED:
                break
            assert isinstance(event, Event)
            new.append(event)
            if isinstance(event, DECISION_EVENTS):
                self.conn.send(self.decide(event))
            if isinstance(event, ConnectionClosed):
                break
        self.output += self.conn.data_to_send()
        self.events += new
        return new

    def state(self) -> State:
        """The connection's state (a call, so type checkers do not narrow it)."""
        return self.conn.state

    def replies(self) -> list[str]:
        """The reply lines sent so far (after the greeting), as text."""
        return bytes(self.output).decode("utf-8").split("\r\n")[1:-1]

    def codes(self) -> list[str]:
        """The final line of each reply: code and text."""
        return [line for line in self.replies() if line[3:4] == " "]


def merge_data(events: Iterable[Event]) -> list[Event]:
    """Merge adjacent MessageData events, so different byte splits compare equal.

    Content before a MessageRejected is dropped (the application discards it, and
    how much of it was handed out depends on the split).
    """
    out: list[Event] = []
    for event in events:
        if isinstance(event, MessageRejected):
            while out and isinstance(out[-1], MessageData):
                out.pop()
            out.append(event)
        elif isinstance(event, MessageData) and out and isinstance(out[-1], MessageData):
            out[-1] = MessageData(data=out[-1].data + event.data)
        else:
            out.append(event)
    return out


def run(
    data: bytes | Iterable[bytes], cfg: ServerConfig | None = None, decide: Decide = accept_all
) -> tuple[list[Event], bytes]:
    """Feed chunks to a fresh greeted session; return merged events and all output."""
    session = Session.start(cfg, decide)
    for chunk in [data] if isinstance(data, bytes) else data:
        if chunk:  # b"" would mean EOF
            session.feed(chunk)
    return merge_data(session.events), bytes(session.output)


def assert_split_invariant(
    data: bytes,
    cfg: ServerConfig | None = None,
    decide: Decide = accept_all,
    trailing: bytes = b"NOOP\r\n",
) -> tuple[list[Event], bytes]:
    """Whole, byte-by-byte and with trailing data must give identical events and replies.

    Returns the events and output of the whole-input run.
    """
    whole = run(data, cfg, decide)
    bytewise = run([data[i : i + 1] for i in range(len(data))], cfg, decide)
    assert bytewise == whole
    events, output = run(data + trailing, cfg, decide)
    assert events[: len(whole[0])] == whole[0]
    assert output.startswith(whole[1])
    return whole
