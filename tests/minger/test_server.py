"""Tests for minger._server: the server's decision order and datagram answers."""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minger
from minger import MingerError, Query, Response, Status

from ._strategies import queries

SECRET = "0123456789abcdef"
DIRECTORY = {
    "active@example.test": Status.ACTIVE,
    "disabled@example.test": Status.DISABLED,
}


def lookup(mailbox: str) -> Status:
    """A test directory: two known mailboxes, everything else unknown."""
    return DIRECTORY.get(mailbox, Status.NOT_FOUND)


def refuse_lookup(mailbox: str) -> Status:
    """A directory that must not be consulted."""
    raise AssertionError(f"directory consulted for {mailbox}")


def signed(mailbox: str, secret: str = SECRET) -> Query:
    """A query for ``mailbox`` signed with ``secret``."""
    return minger.make_query(mailbox, secret=secret)


@pytest.mark.parametrize(
    ("mailbox", "status"),
    [
        ("active@example.test", Status.ACTIVE),
        ("disabled@example.test", Status.DISABLED),
        ("nobody@example.test", Status.NOT_FOUND),
    ],
)
def test_directory_answers(mailbox: str, status: Status) -> None:
    """A good signed query from an allowed peer gets the directory's 3, 4 or 5."""
    response = minger.decide(
        signed(mailbox), peer_allowed=True, secret=SECRET, allow_anonymous=False, lookup=lookup
    )
    assert response == Response(mailbox=mailbox, status=status)


def test_peer_not_allowed_gets_1_before_credentials() -> None:
    """A refused peer gets 1 even with a wrong digest, and the directory is not asked."""
    response = minger.decide(
        signed("active@example.test", "wrong-secret-0000"),
        peer_allowed=False,
        secret=SECRET,
        allow_anonymous=False,
        lookup=refuse_lookup,
    )
    assert response.status is Status.ACCESS_DENIED


def test_anonymous_refused_gets_2() -> None:
    """Without a digest and with anonymous queries off, the answer is 2 (-06 §4)."""
    response = minger.decide(
        minger.make_query("active@example.test"),
        peer_allowed=True,
        secret=SECRET,
        allow_anonymous=False,
        lookup=refuse_lookup,
    )
    assert response == Response(mailbox="active@example.test", status=Status.BAD_CREDENTIALS)


def test_anonymous_allowed_is_answered() -> None:
    """With anonymous queries on, a query without a digest gets the directory's answer."""
    response = minger.decide(
        minger.make_query("active@example.test"),
        peer_allowed=True,
        secret=SECRET,
        allow_anonymous=True,
        lookup=lookup,
    )
    assert response.status is Status.ACTIVE


@pytest.mark.parametrize("allow_anonymous", [False, True])
def test_wrong_digest_gets_2(allow_anonymous: bool) -> None:
    """A digest that is present but wrong gets 2, even when anonymous queries are on."""
    response = minger.decide(
        signed("active@example.test", "another-secret-123"),
        peer_allowed=True,
        secret=SECRET,
        allow_anonymous=allow_anonymous,
        lookup=refuse_lookup,
    )
    assert response.status is Status.BAD_CREDENTIALS


def test_digest_for_other_case_gets_2() -> None:
    """The digest covers the mailbox bytes as sent: another case's digest is wrong."""
    digest = minger.compute_digest(SECRET, "Active@example.test")
    query = Query(mailbox="active@example.test", digest=digest)
    response = minger.decide(
        query, peer_allowed=True, secret=SECRET, allow_anonymous=False, lookup=refuse_lookup
    )
    assert response.status is Status.BAD_CREDENTIALS


def test_no_secret_anonymous_server_ignores_digest() -> None:
    """A server with no secret and anonymous on answers a signed query too."""
    response = minger.decide(
        signed("active@example.test"),
        peer_allowed=True,
        secret=None,
        allow_anonymous=True,
        lookup=lookup,
    )
    assert response.status is Status.ACTIVE


def test_no_secret_and_no_anonymous_is_a_local_error() -> None:
    """A server that could never answer anyone is a configuration error, not a status."""
    with pytest.raises(MingerError, match="anonymous"):
        minger.decide(
            minger.make_query("a@example.test"),
            peer_allowed=True,
            secret=None,
            allow_anonymous=False,
            lookup=lookup,
        )


@pytest.mark.parametrize("bad", [Status.INVALID_REQUEST, Status.ACCESS_DENIED, 7])
def test_directory_must_answer_3_4_or_5(bad: int) -> None:
    """A directory answering anything but 3, 4 or 5 is a bug reported as MingerError."""
    with pytest.raises(MingerError, match="directory"):
        minger.decide(
            signed("a@example.test"),
            peer_allowed=True,
            secret=SECRET,
            allow_anonymous=False,
            lookup=lambda _: bad,  # type: ignore[arg-type,return-value]
        )


def test_tags_are_ignored() -> None:
    """Unknown tags do not change the answer (notes §6: servers ignore unknown tags)."""
    query = minger.make_query("active@example.test", secret=SECRET, tags={"future": "1"})
    response = minger.decide(
        query, peer_allowed=True, secret=SECRET, allow_anonymous=False, lookup=lookup
    )
    assert response.status is Status.ACTIVE


# -- answer_datagram -------------------------------------------------------------------


def answer(data: bytes, *, peer_allowed: bool = True) -> minger.Answer:
    """answer_datagram with the test server's settings."""
    return minger.answer_datagram(
        data, peer_allowed=peer_allowed, secret=SECRET, allow_anonymous=False, lookup=lookup
    )


def test_datagram_answer_for_good_query() -> None:
    """A good datagram is decoded, decided, and reported with its query."""
    query = signed("active@example.test")
    result = answer(minger.encode_query(query))
    assert result == minger.Answer(
        response=Response(mailbox="active@example.test", status=Status.ACTIVE),
        query=query,
        error=None,
    )


@pytest.mark.parametrize(
    ("data", "echo"),
    [
        (b"foo", "foo"),
        (b"foo bar", "foo"),
        (b"bob@example.test D=th1zAk2f/HgxK6No3RIkuw==", "bob@example.test"),
        (b"bob@example.test x=1 x=2\r\n", "bob@example.test"),
        (b"bob@example.test d=short", "bob@example.test"),
    ],
)
def test_malformed_datagram_gets_0_echoing_first_token(data: bytes, echo: str) -> None:
    """A malformed datagram gets status 0 echoing its first token, with the reason."""
    result = answer(data)
    assert result.response == Response(mailbox=echo, status=Status.INVALID_REQUEST)
    assert result.query is None
    assert result.error


def test_malformed_beats_peer_not_allowed() -> None:
    """Decision order: a malformed datagram gets 0 even from a refused peer."""
    result = answer(b"foo", peer_allowed=False)
    assert result.response == Response(mailbox="foo", status=Status.INVALID_REQUEST)


@pytest.mark.parametrize(
    "data",
    [b"", b"   ", b"\r\n", b" foo@example.test", b"\x00\x01", b"caf\xc3\xa9 x", b"a" * 513],
    ids=["empty", "blank", "crlf", "leading-space", "binary", "non-ascii", "over-long"],
)
def test_unechoable_datagram_gets_no_answer(data: bytes) -> None:
    """Nothing safe to echo: no response at all (nothing to reflect), but the reason."""
    result = answer(data)
    assert result.response is None
    assert result.error


@settings(max_examples=200)
@given(st.binary(max_size=600))
def test_answer_never_amplifies(data: bytes) -> None:
    """Any datagram gets at most one response, at most 2 bytes longer than itself."""
    result = answer(data)
    if result.response is not None:
        assert len(minger.encode_response(result.response)) <= len(data) + 2


@settings(max_examples=100)
@given(queries())
def test_answer_echoes_mailbox(query: Query) -> None:
    """Every well-formed query is answered with its own mailbox echoed exactly."""
    result = answer(minger.encode_query(query))
    assert result.response is not None
    assert result.response.mailbox == query.mailbox


def _expected(
    *, allowed: bool, secret: str | None, anonymous: bool, digest: str, found: Status
) -> Status:
    """The decision order of docs/minger.md, written out independently."""
    if not allowed:
        return Status.ACCESS_DENIED
    if digest == "none" and not anonymous:
        return Status.BAD_CREDENTIALS
    if digest == "wrong" and secret is not None:
        return Status.BAD_CREDENTIALS
    return found


# A server with no secret that refuses anonymous queries is a configuration error
# (test_no_secret_and_no_anonymous_is_a_local_error), so it is left out of the table.
DECISION_CASES = [
    (allowed, secret, anonymous, digest, found)
    for allowed, secret, anonymous, digest, found in itertools.product(
        [True, False],
        [SECRET, None],
        [True, False],
        ["none", "right", "wrong"],
        [Status.NOT_FOUND, Status.DISABLED, Status.ACTIVE],
    )
    if secret is not None or anonymous
]


@pytest.mark.parametrize(("allowed", "secret", "anonymous", "digest", "found"), DECISION_CASES)
def test_decision_table(
    allowed: bool, secret: str | None, anonymous: bool, digest: str, found: Status
) -> None:
    """Every combination of peer, secret, anonymous mode, digest and directory answer."""
    mailbox = "user@example.test"
    sign_with = {"none": None, "right": SECRET, "wrong": "not-the-secret-0"}[digest]
    response = minger.decide(
        minger.make_query(mailbox, secret=sign_with),
        peer_allowed=allowed,
        secret=secret,
        allow_anonymous=anonymous,
        lookup=lambda _: found,
    )
    expected = _expected(
        allowed=allowed, secret=secret, anonymous=anonymous, digest=digest, found=found
    )
    assert response == Response(mailbox=mailbox, status=expected)
