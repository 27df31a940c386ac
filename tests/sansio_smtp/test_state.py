"""The transition table: its shape, its diagram, and a walk over every (state, command)."""

from __future__ import annotations

import pathlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sansio_smtp import (
    COMMAND_STATES,
    SEQUENCE_REPLY,
    TRANSITIONS,
    VERBS,
    Reply,
    State,
    render_mermaid,
)

from .helpers import Session, config

DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs" / "engine.md"

# Every extension on, AUTH usable without TLS, VRFY/EXPN answered by the application:
# then the table alone decides, except for the session facts listed in _state.py.
WALK_CFG = config(
    starttls=True, auth_mechanisms=("PLAIN",), auth_require_tls=False, vrfy=True, expn=True
)
LINES = {
    "HELO": b"HELO c.test\r\n",
    "EHLO": b"EHLO c.test\r\n",
    "MAIL": b"MAIL FROM:<a@b.test>\r\n",
    "RCPT": b"RCPT TO:<c@d.test>\r\n",
    "DATA": b"DATA\r\n",
    "BDAT": b"BDAT 2\r\n",
    "RSET": b"RSET\r\n",
    "NOOP": b"NOOP\r\n",
    "QUIT": b"QUIT\r\n",
    "VRFY": b"VRFY bob\r\n",
    "EXPN": b"EXPN staff\r\n",
    "HELP": b"HELP\r\n",
    "STARTTLS": b"STARTTLS\r\n",
    "AUTH": b"AUTH PLAIN\r\n",
}
PATHS = {
    State.CONNECTED: [],
    State.READY: ["EHLO"],
    State.MAIL: ["EHLO", "MAIL"],
    State.RCPT: ["EHLO", "MAIL", "RCPT"],
    State.CHUNKING: ["EHLO", "MAIL", "RCPT", "BDAT"],
}


def test_every_state_has_a_row_and_command_rows_know_every_verb() -> None:
    """Each State has a row; command states list every verb or fall back to 503."""
    assert set(TRANSITIONS) == set(State)
    assert set(LINES) == set(VERBS)
    for state in COMMAND_STATES:
        row = TRANSITIONS[state]
        assert set(row) <= set(VERBS)
        assert row["QUIT"] is State.CLOSED
        for verb in ("NOOP", "HELP", "VRFY", "EXPN"):
            assert row[verb] is state
    assert State.DATA not in COMMAND_STATES
    assert SEQUENCE_REPLY.code == 503


def test_docs_contain_the_generated_diagram() -> None:
    """docs/engine.md embeds the diagram rendered from the current table."""
    text = DOCS.read_text(encoding="utf-8")
    assert "```mermaid\n" + render_mermaid() + "```" in text


def test_diagram_has_every_state_with_an_edge() -> None:
    """The rendered diagram mentions every state that has transitions."""
    diagram = render_mermaid()
    for state, row in TRANSITIONS.items():
        if any(isinstance(t, State) for t in row.values()):
            assert f"    {state.value} --> " in diagram


def expected(session: Session, verb: str) -> State | Reply:
    """What the table (plus the documented session facts) says a command leads to."""
    conn = session.conn
    target = TRANSITIONS[conn.state].get(verb, SEQUENCE_REPLY)
    if isinstance(target, Reply):
        return target
    if verb == "STARTTLS" and conn.tls_active:
        return Reply(code=503, status="5.5.1", lines=("TLS already active",))
    if verb == "AUTH" and not conn.esmtp:
        return Reply(code=503, status="5.5.1", lines=("Send EHLO first",))
    return target


def last_reply(session: Session) -> Reply:
    """The final line of the last reply, as a Reply (status parsed when present)."""
    line = session.replies()[-1]
    code, rest = int(line[:3]), line[4:]
    status, _, text = rest.partition(" ")
    if status[:1].isdigit() and status.count(".") == 2:
        return Reply(code=code, status=status, lines=(text,))
    return Reply(code=code, lines=(rest,))


def leave(session: Session) -> None:
    """Take a non-command state back to a command state with its documented input."""
    conn = session.conn
    state = conn.state
    if state is State.DATA:
        session.feed(b".\r\n")
        assert conn.state is TRANSITIONS[state]["<end of data>"]
    elif state is State.BDAT:
        session.feed(b"xx")
        assert conn.state is TRANSITIONS[state]["<end of chunk>"]
    elif state is State.AUTH:
        session.feed(b"*\r\n")
        assert conn.state is TRANSITIONS[state]["<auth done>"]
    elif state is State.STARTTLS:
        conn.tls_established()
        assert conn.state is TRANSITIONS[state]["<tls established>"]


def step(session: Session, verb: str) -> None:
    """Send one command and check it transitions or yields the documented reply."""
    before = session.conn.state
    want = expected(session, verb)
    replies_before = len(session.output)
    session.feed(LINES[verb])
    if isinstance(want, Reply):
        assert last_reply(session).code == want.code
        assert last_reply(session).lines == want.lines
        if session.conn.esmtp:
            assert last_reply(session).status == want.status
        assert session.conn.state is before
        if verb == "BDAT":
            session.feed(b"xx")  # the refused chunk's bytes are skipped, not run
            assert session.conn.state is before
    else:
        if want is not State.BDAT:  # a BDAT chunk is answered once its bytes are in
            assert len(session.output) > replies_before
        assert session.conn.state is want


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize("state", sorted(PATHS, key=lambda s: str(s)))
def test_every_state_command_pair(state: State, verb: str) -> None:
    """Every (command state, verb) pair transitions or gives the table's reply."""
    session = Session.start(WALK_CFG)
    for earlier in PATHS[state]:
        step(session, earlier)
        leave(session)
    assert session.conn.state is state
    step(session, verb)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(VERBS), max_size=25))
def test_random_walk_follows_the_table(verbs: list[str]) -> None:
    """Any command sequence follows the table; the state stays consistent throughout."""
    session = Session.start(WALK_CFG)
    for verb in verbs:
        step(session, verb)
        if session.state() is State.CLOSED:
            break
        leave(session)
        assert session.conn.state in COMMAND_STATES
