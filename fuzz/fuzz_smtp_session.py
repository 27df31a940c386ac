# Invariant: a structured client session (EHLO, MAIL/RCPT with parameters, DATA, BDAT,
# AUTH, STARTTLS, pipelining, an application that accepts, refuses or waits) keeps every
# promise of fuzz_smtp_server, and also: content after a smuggled end-of-data look-alike
# or inside a BDAT chunk is never executed as a command; plaintext pipelined after
# STARTTLS is never executed; an accepted DATA/BDAT message is exactly the bytes sent
# (unstuffed); a message with a bare CR/LF under the "reject" policy, an over-long line
# or too many bytes is refused, never ended; AUTH delivers exactly the credentials sent;
# while the application waits, the engine holds at most max_buffered_bytes.
"""Fuzz deep server states through a structured session (RFC 5321, 3030, 3207, 4954)."""

from __future__ import annotations

import base64
from collections.abc import Iterable

from fuzz._common import ByteProvider, run_fuzzer
from fuzz._smtp import Driver, config_from_flags, has_bare_newline, tls_from_flags
from fuzz.sessions import SMUGGLING_ENDINGS
from sansio_smtp._events import (
    Accept,
    AuthCredentials,
    Decision,
    Event,
    MailFrom,
    MessageEnd,
    MessageRejected,
    RcptTo,
    Reject,
)
from sansio_smtp._state import COMMAND_STATES, State

SENTINELS = (b"smuggled", b"injected")
DOMAINS = ("client.example", "[127.0.0.1]", "evil.example", "x", "xn--bcher-kva.example")
LOCALS = ("alice", "bob", '"john doe"', "a.b", "bill%x", "site!u", "jörg", "postmaster", "")
MAIL_PARAMS = (
    "SIZE=100",
    "SIZE=99999999999",
    "SIZE=",
    "BODY=7BIT",
    "BODY=8BITMIME",
    "BODY=BINARYMIME",
    "SMTPUTF8",
    "RET=FULL",
    "RET=HDRS",
    "ENVID=abc+2Bdef",
    "ENVID=" + "e" * 120,
    "AUTH=<>",
    "AUTH=joe+40example.com",
    "X-FOO=bar",
    "size=10",
)
RCPT_PARAMS = (
    "NOTIFY=NEVER",
    "NOTIFY=SUCCESS,FAILURE,DELAY",
    "NOTIFY=DELAY,NEVER",
    "ORCPT=rfc822;bob+40example.org",
    "ORCPT=utf-8;j\\x{F6}rg@example.de",
    "ORCPT=UTF-8;jörg@example.de",
    "ORCPT=" + "o" * 600,
    "X-BAR",
)
REJECTS = ((450, "4.2.0"), (550, "5.1.1"), (535, "5.7.8"), (452, "4.5.3"), (554, "5.7.1"))
CONTENT_PIECES = (b"Subject: x", b"", b".", b"..", b".x", b"a" * 70, b"\x00", b"\xff\xfe", b" ")
LINE_ENDS = (b"\r\n", b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r")


def _clean(data: bytes) -> bytes:
    """Keeps the sentinels out of fuzzer-chosen bytes, so any hit comes from a smuggle."""
    for sentinel in SENTINELS:
        data = data.replace(sentinel, sentinel[:-1] + b"_")
    return data


class Session:
    """Builds one session from the fuzz input and checks it as it is fed."""

    def __init__(self, provider: ByteProvider) -> None:
        self.p = provider
        flags = self.p.consume_int(0, 255)
        self.config = config_from_flags(flags)
        self.driver = Driver(self.config, tls_active=tls_from_flags(flags), decide=self.decide)
        self.batch = bytearray()
        self.sent_credentials: set[tuple[str, str, str]] = set()

    # -- the application -----------------------------------------------------------

    def decide(self, event: Event) -> Decision:
        """Accepts most events; refuses some with a reply the fuzzer picks."""
        if self.p.consume_int(0, 7) != 0:
            return Accept()
        code, status = self.p.pick(REJECTS)
        return Reject(code=code, status=status, text="Refused by the fuzz application")

    # -- feeding -------------------------------------------------------------------

    def flush(self) -> None:
        """Feeds what was batched (pipelined), in one or two writes."""
        data, self.batch = bytes(self.batch), bytearray()
        if not data:
            return
        cut = self.p.consume_int(0, len(data))
        for piece in (data[:cut], data[cut:]):
            if not piece:
                continue
            if self.driver.waiting is not None:
                self.driver.push_while_waiting(piece)
            else:
                self.driver.feed(piece)

    def settle(self) -> bool:
        """Flushes the batch and stops holding decisions; True at a clean command boundary.

        Clean means the engine reads commands, holds no partial line and is not skipping
        an over-long line or a refused BDAT chunk: only then do the next bytes start a
        command, and only then may the harness predict what they do. (It peeks at
        private attributes; if they are renamed the oracles switch off, never misfire.)
        """
        self.flush()
        self.driver.hold = False
        if self.driver.waiting is not None:
            self.driver.push_while_waiting(b"")
        conn = self.driver.conn
        return (
            not self.over
            and conn.state in COMMAND_STATES
            and len(getattr(conn, "_buf", b"x")) == 0
            and getattr(conn, "_skip_line", True) is False
            and getattr(conn, "_skip_bytes", 1) == 0
        )

    def send_alone(self, data: bytes) -> int:
        """Feeds ``data`` on its own (after settle()); returns the transcript mark."""
        mark = len(self.driver.transcript)
        self.batch += data
        self.flush()
        return mark

    def events_since(self, mark: int) -> list[object]:
        return [v for k, v in self.driver.transcript[mark:] if k == "event"]

    @property
    def over(self) -> bool:
        return self.driver.closed or self.driver.failed is not None

    # -- operations ----------------------------------------------------------------

    def path(self) -> bytes:
        if self.p.consume_int(0, 5) == 0:
            return _clean(self.p.consume_sized_bytes(40))
        local, domain = self.p.pick(LOCALS), self.p.pick(DOMAINS)
        return f"<{local}@{domain}>".encode() if local else b"<>"

    def params(self, choices: tuple[str, ...]) -> bytes:
        chosen = [self.p.pick(choices) for _ in range(self.p.consume_int(0, 3))]
        return "".join(" " + c for c in chosen).encode()

    def op_hello(self) -> None:
        verb = self.p.pick((b"EHLO", b"HELO", b"ehlo", b"LHLO"))
        domain = self.p.pick(DOMAINS).encode() if self.p.consume_bool() else b""
        self.batch += verb + b" " + domain + b"\r\n"

    def op_mail(self) -> None:
        self.batch += b"MAIL FROM:" + self.path() + self.params(MAIL_PARAMS) + b"\r\n"

    def op_rcpt(self) -> None:
        self.batch += b"RCPT TO:" + self.path() + self.params(RCPT_PARAMS) + b"\r\n"

    def op_data(self) -> None:
        """DATA with generated lines, checked against what must come out."""
        lines: list[tuple[bytes, bytes]] = []
        for _ in range(self.p.consume_int(0, 6)):
            pieces = [self.p.pick(CONTENT_PIECES) for _ in range(self.p.consume_int(1, 3))]
            if self.p.consume_int(0, 3) == 0:  # a run of any length, to meet the line limit
                pieces.append(b"y" * self.p.consume_int(0, 1000))
            line = b"".join(pieces)
            lines.append((line, self.p.pick(LINE_ENDS)))
        smuggle = self.p.consume_int(0, 3) == 0
        content = b"".join(line + end for line, end in lines)
        wire = b"".join(
            (b"." + line if line.startswith(b".") else line) + end for line, end in lines
        )
        if smuggle:
            ending = self.p.pick(SMUGGLING_ENDINGS)
            tail = ending + b"MAIL FROM:<smuggled@evil.example>\r\nRCPT TO:<v@example.org>\r\n"
            content += tail  # what the engine must deliver: the look-alike is content
            wire += tail
        if not wire.endswith(b"\r\n") and wire:
            wire += b"\r\n"
            content += b"\r\n"
        clean = self.settle()
        # A bare-CR line end followed by an LF-led look-alike is a genuine CRLF.CRLF:
        # then the message really ends there, and what follows really is a command.
        genuine_end = b"\r\n.\r\n" in b"\r\n" + wire
        in_rcpt = self.driver.conn.state is State.RCPT
        oracle = clean and in_rcpt and not self.driver.binary_transaction and not genuine_end
        ended = len(self.driver.ended_messages)
        mark = self.send_alone(b"DATA\r\n" + wire + b".\r\n")
        if not oracle or self.over:
            return
        events = self.events_since(mark)
        self.assert_not_executed(events)
        finished = [e for e in events if isinstance(e, (MessageEnd, MessageRejected))]
        assert len(finished) == 1, events
        bare = has_bare_newline(content)
        delivered = content
        if bare and self.config.bare_newlines == "normalize":
            # What the engine delivers: each bare CR or LF becomes CRLF, then every
            # line loses a leading dot (F6); line lengths and the size limit count that.
            normalized = (b"\r\n" + wire).replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            normalized = normalized.replace(b"\n", b"\r\n")
            delivered = normalized.replace(b"\r\n.", b"\r\n")[2:]
        lines_fit = all(
            len(piece) + 2 <= self.config.max_text_line
            for piece in delivered.replace(b"\r", b"\n").split(b"\n")
        )
        limit = self.config.max_message_size
        too_big = limit is not None and len(delivered) > limit
        must_refuse = not lines_fit or too_big or (bare and self.config.bare_newlines == "reject")
        if must_refuse:
            assert isinstance(finished[0], MessageRejected), (content, events)
            return
        assert isinstance(finished[0], MessageEnd), (content, events)
        if not bare:
            assert self.driver.ended_messages[ended] == content, (
                content,
                self.driver.ended_messages[ended],
            )

    def op_bdat(self) -> None:
        """One or more BDAT chunks; their bytes are content whatever the engine answers."""
        clean = self.settle()
        oracle = clean and self.driver.conn.state in (State.RCPT, State.CHUNKING)
        ended = len(self.driver.ended_messages)
        chunks: list[bytes] = []
        wire = bytearray()
        count = self.p.consume_int(1, 3)
        for i in range(count):
            chunk = self.p.consume_sized_bytes(40)
            if self.p.consume_bool():
                chunk += b"\r\n.\r\nMAIL FROM:<smuggled@evil.example>\r\n"
            last = i == count - 1 and self.p.consume_int(0, 3) != 0
            chunks.append(chunk)
            wire += b"BDAT %d%s\r\n" % (len(chunk), b" LAST" if last else b"") + chunk
        mark = self.send_alone(bytes(wire))
        if self.over:
            return
        events = self.events_since(mark)
        if clean:
            # A BDAT whose size was read has its bytes consumed, accepted or refused.
            self.assert_not_executed(events)
        ends = [e for e in events if isinstance(e, MessageEnd)]
        if oracle and ends and not self.driver.binary_transaction:
            content = self.driver.ended_messages[ended]
            assert not has_bare_newline(content), content

    def op_auth(self) -> None:
        authz, user, password = (
            self.p.pick(("", "admin", "jörg")),
            self.p.pick(("user", "u\u00e9", "x" * 10)),
            self.p.pick(("pass", "", "p a s s")),
        )
        kind = self.p.consume_int(0, 4)
        plain = base64.b64encode(f"{authz}\0{user}\0{password}".encode())
        if kind == 0:
            data = b"AUTH PLAIN " + plain + b"\r\n"
            self.sent_credentials.add((authz, user, password))
        elif kind == 1:
            data = b"AUTH PLAIN\r\n" + plain + b"\r\n"
            self.sent_credentials.add((authz, user, password))
        elif kind == 2:
            b64 = base64.b64encode
            data = (
                b"AUTH LOGIN\r\n" + b64(user.encode()) + b"\r\n" + b64(password.encode()) + b"\r\n"
            )
            self.sent_credentials.add(("", user, password))
        elif kind == 3:
            data = b"AUTH " + self.p.pick((b"LOGIN", b"PLAIN", b"CRAM-MD5")) + b"\r\n*\r\n"
        else:
            data = b"AUTH PLAIN " + _clean(self.p.consume_sized_bytes(30)) + b"\r\n"
        self.settle()
        mark = self.send_alone(data)
        for event in self.events_since(mark):
            if isinstance(event, AuthCredentials) and kind <= 2:
                got = (event.authorization_id, event.username, event.password)
                assert got in self.sent_credentials, got

    def op_starttls(self) -> None:
        clean = self.settle()
        offered = (
            clean
            and self.config.starttls
            and not self.driver.conn.tls_active
            and self.driver.conn.state is State.READY
        )
        tail = b"MAIL FROM:<injected@evil.example>\r\n" if self.p.consume_bool() else b""
        mark = self.send_alone(b"STARTTLS\r\n" + tail)
        if offered:
            self.assert_not_executed(self.events_since(mark))

    def op_simple(self) -> None:
        self.batch += self.p.pick(
            (b"RSET\r\n", b"NOOP\r\n", b"HELP\r\n", b"VRFY bob\r\n", b"EXPN list\r\n", b"QUIT\r\n")
        )

    def op_raw(self) -> None:
        self.batch += _clean(self.p.consume_sized_bytes(60))
        if self.p.consume_bool():
            self.batch += b"\r\n"

    def op_wait(self) -> None:
        """The application sits on the next decision while the client keeps sending."""
        self.flush()
        self.driver.hold = True

    def assert_not_executed(self, events: list[object]) -> None:
        for event in events:
            if isinstance(event, (MailFrom, RcptTo)):
                raw = event.raw.encode("utf-8", "replace")
                assert not any(s in raw for s in SENTINELS), ("executed", event)

    def run(self) -> None:
        ops = (
            self.op_hello,
            self.op_mail,
            self.op_rcpt,
            self.op_data,
            self.op_bdat,
            self.op_auth,
            self.op_starttls,
            self.op_simple,
            self.op_raw,
            self.op_wait,
        )
        for _ in range(48):
            if self.over or self.p.remaining() == 0:
                break
            self.p.pick(ops)()
            if self.p.consume_int(0, 2) == 0:
                self.flush()
        self.settle()  # answers any decision still held back
        self.driver.feed(b"")
        assert self.over, "EOF did not end the session"


def test_one_input(data: bytes) -> None:
    """Builds and checks one session from the fuzz input."""
    Session(ByteProvider(data)).run()


class _Recorder(ByteProvider):
    """Plays a planned session and writes down the input bytes that replay it.

    Each op is a list of planned answers (ints for consume_int, bytes for consume_bytes)
    consumed in order; outside the plan the recorder accepts every decision, flushes after
    every op and feeds each batch whole.
    """

    def __init__(self, flags: int, plan: list[list[int | bytes]]) -> None:
        super().__init__(b"")
        self.record = bytearray()
        self.ops = [list(op) for op in plan]
        self.current: list[int | bytes] = [flags]

    def remaining(self) -> int:
        return 1 if self.ops or self.current else 0

    def consume_int(self, low: int, high: int) -> int:
        if not self.current and (low, high) == (0, 9) and self.ops:
            self.current = self.ops.pop(0)  # Session.run picks the next op
        if self.current and isinstance(self.current[0], int):
            value = int(self.current.pop(0))
        else:
            value = 1 if (low, high) == (0, 7) else low  # accept; flush; whole batch
        assert low <= value <= high, (value, low, high)
        width = ((high - low).bit_length() + 7) // 8
        self.record += (value - low).to_bytes(width, "big") if width else b""
        return value

    def consume_bytes(self, count: int) -> bytes:
        data = self.current.pop(0) if self.current and isinstance(self.current[0], bytes) else b""
        assert isinstance(data, bytes)
        assert len(data) <= count, (data, count)
        self.record += data
        return data


def _recorded(flags: int, plan: list[list[int | bytes]]) -> bytes:
    recorder = _Recorder(flags, plan)
    Session(recorder).run()
    assert not recorder.ops, recorder.ops
    assert not recorder.current, recorder.current
    return bytes(recorder.record)


def seeds() -> Iterable[tuple[str, bytes]]:
    """Returns recorded sessions reaching DATA, BDAT, AUTH and STARTTLS under 3 configs."""
    # Each op: its index in Session.run's table, then its own choices in call order.
    ehlo: list[int | bytes] = [0, 0, 1, 0]  # EHLO client.example
    mail: list[int | bytes] = [1, 1, 0, 0, 1, 4]  # MAIL FROM:<alice@...> BODY=8BITMIME
    rcpt: list[int | bytes] = [2, 1, 1, 0, 1, 1]  # RCPT TO:<bob@...> NOTIFY=SUCCESS,...
    envelope = [ehlo, mail, rcpt]
    for flags in (0x00, 0x05, 0x1A):
        for i in range(len(SMUGGLING_ENDINGS)):
            # two lines ("Subject: x", ".") then the look-alike ending i
            data: list[int | bytes] = [3, 2, 1, 0, 1, 0, 1, 2, 1, 0, 0, i]
            yield f"smuggle{i}_flags{flags:02x}", _recorded(flags, [*envelope, data])
        bdat: list[int | bytes] = [4, 2, 5, b"hello", 1, 7, b"world\r\n", 0, 1]
        yield f"bdat_flags{flags:02x}", _recorded(flags, [*envelope, bdat])
        for kind in range(5):
            auth: list[int | bytes] = [5, 1, 1, 0, kind]
            if kind == 3:
                auth.append(0)
            elif kind == 4:
                auth += [4, b"AGE="]
            yield f"auth{kind}_flags{flags:02x}", _recorded(flags | 0x10, [ehlo, auth, mail])
        yield f"starttls_flags{flags:02x}", _recorded(flags | 0x08, [ehlo, [6, 1]])
        yield f"wait_flags{flags:02x}", _recorded(flags, [ehlo, [9], mail, rcpt, [7, 5]])


def main() -> None:
    """Starts atheris on this harness."""
    run_fuzzer(test_one_input, packages=("sansio_smtp",))


if __name__ == "__main__":
    main()
