# ---------------------------------------------------------------------------
# Theory of operation
#
# An SMTP server session (RFC 5321 §3, §4.1.4) is one state machine. Only the
# client drives it: each command line is one input, and the engine answers every
# input with exactly one reply, in order (RFC 2920 §3.1 keeps that true under
# PIPELINING). Some answers need the application (is this recipient known? is
# the message stored?), so between reading a command and replying the engine may
# wait for a decision; while it waits it reads nothing more, which is what keeps
# the replies in command order.
#
# Rule 1: everything that decides whether a command is *allowed in a state*, and
# which state it leads to, lives in TRANSITIONS below. A command missing from a
# state's row gets the documented reply SEQUENCE_REPLY (503 5.5.1). A row entry is
# either the next State (the command is executed; if the application rejects it,
# the state does not change) or a Reply (the command is refused with that reply,
# the state does not change).
#
# Rule 2: what the table cannot express lives in the engine (_server.py) and is
# listed here so nobody has to hunt for it:
#   - extension switches: a verb of a disabled extension (BDAT, AUTH, STARTTLS)
#     gets 502 5.5.1 wherever the table would allow it;
#   - arguments: checked after the table, so a syntax error gets 501 only where
#     the verb is allowed (BDAT is the exception: its size is read first, so the
#     bytes of a refused chunk are skipped, never read as commands);
#   - session facts: refused HELO (554 5.7.1 for MAIL), no TLS (530 5.7.0 when
#     required, 538 5.7.11 for AUTH), already authenticated (503 5.5.1), TLS
#     already on (503 5.5.1 for STARTTLS), too many recipients (452 4.5.3).
#
# Inputs that are not commands are written in angle brackets: the engine feeds
# them to the same table when content ends or the application acts.
#
# States in which the engine reads no commands (GREETING, DATA, BDAT, AUTH,
# STARTTLS, CLOSED, ERROR) have rows without verbs: in DATA and BDAT the input is
# message content, in AUTH it is SASL responses, in the others nothing is read.
# ---------------------------------------------------------------------------
"""The SMTP server state machine as a table (RFC 5321 §4.1.4, RFC 3030, RFC 3207, RFC 4954)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from ._reply import Reply

__all__ = [
    "COMMAND_STATES",
    "SEQUENCE_REPLY",
    "TRANSITIONS",
    "VERBS",
    "State",
    "render_mermaid",
]


class State(enum.Enum):
    """Where the server session is."""

    GREETING = "GREETING"  # waiting for the application's Greeting or Shutdown
    CONNECTED = "CONNECTED"  # greeted; no HELO/EHLO yet
    READY = "READY"  # HELO/EHLO done; no transaction
    MAIL = "MAIL"  # MAIL accepted; no recipient yet
    RCPT = "RCPT"  # at least one RCPT accepted
    DATA = "DATA"  # reading DATA content up to CRLF.CRLF
    BDAT = "BDAT"  # reading the bytes of one BDAT chunk
    CHUNKING = "CHUNKING"  # between BDAT chunks of one transaction (RFC 3030)
    AUTH = "AUTH"  # inside an AUTH exchange (RFC 4954 §4)
    STARTTLS = "STARTTLS"  # 220 sent; waiting for tls_established() (RFC 3207 §4.2)
    CLOSED = "CLOSED"  # QUIT, EOF, Shutdown or fatal peer error; final reply queued
    ERROR = "ERROR"  # the application misused the engine; sticky

    # Members are singletons compared by identity, so the identity hash is enough;
    # Enum's own __hash__ is Python code, and TRANSITIONS[state] runs per command.
    __hash__ = object.__hash__


#: Every verb the engine knows (RFC 5321 §4.1, RFC 3030, RFC 3207, RFC 4954).
VERBS: Final = (
    "HELO",
    "EHLO",
    "MAIL",
    "RCPT",
    "DATA",
    "BDAT",
    "RSET",
    "NOOP",
    "QUIT",
    "VRFY",
    "EXPN",
    "HELP",
    "STARTTLS",
    "AUTH",
)

#: The reply for a known verb that its state does not allow (RFC 5321 §4.3.2).
SEQUENCE_REPLY: Final = Reply(code=503, status="5.5.1", lines=("Bad sequence of commands",))

_NO_RECIPIENTS = Reply(code=554, status="5.5.1", lines=("No valid recipients",))
_NEED_HELO = Reply(code=503, status="5.5.1", lines=("Send HELO/EHLO first",))
_NEED_MAIL = Reply(code=503, status="5.5.1", lines=("Need MAIL command",))
_NESTED_MAIL = Reply(code=503, status="5.5.1", lines=("Nested MAIL command",))
_BDAT_MIX = Reply(code=503, status="5.5.1", lines=("DATA not allowed after BDAT (RFC 3030)",))
_IN_TRANSACTION = Reply(code=503, status="5.5.1", lines=("Not allowed during a transaction",))

# Verbs valid in every command state, leading back to the same state.
_ANYTIME = ("NOOP", "HELP", "VRFY", "EXPN")

S = State


def _row(state: State, **special: State | Reply) -> dict[str, State | Reply]:
    row: dict[str, State | Reply] = dict.fromkeys(_ANYTIME, state)
    row["QUIT"] = S.CLOSED
    row.update(special)
    return row


#: TRANSITIONS[state][input] -> next State, or the Reply that refuses the input.
#: Inputs are verbs, or pseudo-inputs in angle brackets produced by the engine.
TRANSITIONS: Final[Mapping[State, Mapping[str, State | Reply]]] = MappingProxyType(
    {
        S.GREETING: {"<greeting>": S.CONNECTED},
        S.CONNECTED: _row(
            S.CONNECTED,
            HELO=S.READY,
            EHLO=S.READY,
            RSET=S.CONNECTED,
            MAIL=_NEED_HELO,
            RCPT=_NEED_HELO,
            DATA=_NEED_HELO,
            BDAT=_NEED_HELO,
            AUTH=_NEED_HELO,
            STARTTLS=_NEED_HELO,
        ),
        S.READY: _row(
            S.READY,
            HELO=S.READY,
            EHLO=S.READY,
            RSET=S.READY,
            MAIL=S.MAIL,
            RCPT=_NEED_MAIL,
            DATA=_NEED_MAIL,
            BDAT=_NEED_MAIL,
            AUTH=S.AUTH,
            STARTTLS=S.STARTTLS,
        ),
        S.MAIL: _row(
            S.MAIL,
            HELO=S.READY,
            EHLO=S.READY,
            RSET=S.READY,
            MAIL=_NESTED_MAIL,
            RCPT=S.RCPT,
            DATA=_NO_RECIPIENTS,
            BDAT=_NO_RECIPIENTS,
            AUTH=_IN_TRANSACTION,
            STARTTLS=_IN_TRANSACTION,
        ),
        S.RCPT: _row(
            S.RCPT,
            HELO=S.READY,
            EHLO=S.READY,
            RSET=S.READY,
            MAIL=_NESTED_MAIL,
            RCPT=S.RCPT,
            DATA=S.DATA,
            BDAT=S.BDAT,
            AUTH=_IN_TRANSACTION,
            STARTTLS=_IN_TRANSACTION,
        ),
        S.CHUNKING: _row(
            S.CHUNKING,
            HELO=S.READY,
            EHLO=S.READY,
            RSET=S.READY,
            MAIL=_NESTED_MAIL,
            RCPT=SEQUENCE_REPLY,
            DATA=_BDAT_MIX,
            BDAT=S.BDAT,
            AUTH=_IN_TRANSACTION,
            STARTTLS=_IN_TRANSACTION,
        ),
        S.DATA: {"<end of data>": S.READY},
        S.BDAT: {
            "<end of chunk>": S.CHUNKING,
            "<end of last chunk>": S.READY,
            "<chunk refused>": S.READY,
        },
        S.AUTH: {"<auth done>": S.READY},
        S.STARTTLS: {"<tls established>": S.CONNECTED},
        S.CLOSED: {},
        S.ERROR: {},
    }
)

#: States in which the engine reads command lines.
COMMAND_STATES: Final = frozenset(s for s, row in TRANSITIONS.items() if "QUIT" in row)


def render_mermaid() -> str:
    """Render TRANSITIONS as a mermaid state diagram (docs/engine.md embeds it).

    Self-loops of the verbs allowed everywhere and refusals are left out; edges
    are labelled with the inputs that take them.

    Returns:
        The diagram source, ``stateDiagram-v2`` first, one edge per line.
    """
    lines = ["stateDiagram-v2", "    [*] --> GREETING"]
    for state, row in TRANSITIONS.items():
        edges: dict[State, list[str]] = {}
        for trigger, target in row.items():
            if isinstance(target, Reply) or (target is state and trigger in _ANYTIME):
                continue
            edges.setdefault(target, []).append(trigger.strip("<>"))
        for target, triggers in edges.items():
            lines.append(f"    {state.value} --> {target.value}: {', '.join(triggers)}")
    lines.append("    CLOSED --> [*]")
    lines.append("    note right of ERROR: entered when the application misuses the engine")
    return "\n".join(lines) + "\n"
