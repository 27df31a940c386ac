"""Tests for minger._client: matching a response to the query it answers."""

import pytest

import minger
from minger import Response, Status

QUERY = minger.make_query("Alice@Example.TEST", secret="0123456789abcdef")


@pytest.mark.parametrize("echo", ["Alice@Example.TEST", "Alice@example.test", "Alice@EXAMPLE.TEST"])
def test_echo_matches_with_domain_case_folded(echo: str) -> None:
    """The echoed mailbox matches when the local part is exact and the domain any case."""
    assert minger.response_matches(QUERY, Response(mailbox=echo, status=Status.ACTIVE))


@pytest.mark.parametrize(
    "echo", ["alice@Example.TEST", "Bob@Example.TEST", "Alice@example.org", "Alice", "x@y@z"]
)
def test_other_mailbox_does_not_match(echo: str) -> None:
    """A response for another local part or domain answers some other query."""
    assert not minger.response_matches(QUERY, Response(mailbox=echo, status=Status.ACTIVE))


@pytest.mark.parametrize(
    "status", [Status.INVALID_REQUEST, Status.ACCESS_DENIED, Status.BAD_CREDENTIALS]
)
def test_bare_request_status_matches(status: Status) -> None:
    """A bare 0, 1 or 2 (about the request, not the address) is taken as the answer."""
    assert minger.response_matches(QUERY, Response(mailbox=None, status=status))


@pytest.mark.parametrize("status", [Status.NOT_FOUND, Status.DISABLED, Status.ACTIVE])
def test_bare_address_status_ignored(status: Status) -> None:
    """A bare 3, 4 or 5 claims something about an address it does not name: ignored."""
    assert not minger.response_matches(QUERY, Response(mailbox=None, status=status))


def test_match_response_decodes_and_matches() -> None:
    """match_response returns the decoded response when it answers the query."""
    assert minger.match_response(QUERY, b"Alice@example.test 5\r\n") == Response(
        mailbox="Alice@example.test", status=Status.ACTIVE
    )


@pytest.mark.parametrize(
    "data", [b"", b"garbage", b"Alice@Example.TEST 9", b"Bob@Example.TEST 5", b"5", b"\xff" * 9]
)
def test_match_response_ignores_everything_else(data: bytes) -> None:
    """Undecodable or foreign datagrams yield None, never an exception."""
    assert minger.match_response(QUERY, data) is None


def test_same_mailbox_needs_at_signs() -> None:
    """Two strings without '@' are not the same mailbox, even if equal."""
    assert not minger.same_mailbox("abc", "abc")
    assert minger.same_mailbox('"a@b"@x.test', '"a@b"@X.TEST')
