"""Tests for minger._messages: the query and response wire codec (-06 §2, §3)."""

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minger
from minger import MingerError, Query, Response, Status

from ._strategies import mailboxes, queries, responses

SECRET = "0123456789abcdef"
ARVEL_DIGEST = "A7E/WJtlUbO5NWDjZba+bw=="
ARVEL_QUERY = bytes.fromhex(
    "617276656c406578616d706c652e636f6d20643d4137452f574a746c55624f354e57446a5a62612b62773d3d"
)
TRAILING = [b"", b"\r\n", b"\n", b"\r", b" ", b"   ", b" \r\n", b"\r\n\r\n"]


# -- test vectors from the research notes §6 -------------------------------------------


def test_notes_vector_signed_query_bytes() -> None:
    """The signed query for arvel@example.com is the 44 bytes given in notes §6."""
    query = minger.make_query("arvel@example.com", secret=SECRET)
    assert query.digest == ARVEL_DIGEST
    assert minger.encode_query(query) == ARVEL_QUERY
    assert len(ARVEL_QUERY) == 44


def test_notes_vector_decodes() -> None:
    """The notes' query bytes decode to the mailbox and digest they carry."""
    assert minger.decode_query(ARVEL_QUERY) == Query(
        mailbox="arvel@example.com", digest=ARVEL_DIGEST
    )


def test_notes_vector_anonymous_query() -> None:
    """An anonymous query is the bare mailbox, 17 bytes, no terminator."""
    query = minger.make_query("arvel@example.com")
    assert minger.encode_query(query) == b"arvel@example.com"
    assert minger.decode_query(b"arvel@example.com") == query


def test_notes_vector_tagged_query() -> None:
    """The tagged query example of notes §6 encodes and decodes with its tag."""
    data = b"bob@example.com d=th1zAk2f/HgxK6No3RIkuw== foo=bar"
    query = minger.make_query("bob@example.com", secret="ThisIsMySharedSecret", tags={"foo": "bar"})
    assert minger.encode_query(query) == data
    assert minger.decode_query(data) == query


@pytest.mark.parametrize(
    ("data", "mailbox", "status"),
    [
        (b"arvel@example.com 3", "arvel@example.com", Status.NOT_FOUND),
        (b"arvel@example.com 2", "arvel@example.com", Status.BAD_CREDENTIALS),
        (b"arvel@example.com 5", "arvel@example.com", Status.ACTIVE),
    ],
)
def test_draft_response_examples(data: bytes, mailbox: str, status: Status) -> None:
    """The three response examples of -06 §3.2 decode, and encode back to the same bytes."""
    response = minger.decode_response(data)
    assert response == Response(mailbox=mailbox, status=status)
    assert minger.encode_response(response) == data


def test_notes_vector_active_response_bytes() -> None:
    """The active response of notes §6 is exactly 19 bytes: mailbox, SP, '5'."""
    data = minger.encode_response(Response(mailbox="arvel@example.com", status=Status.ACTIVE))
    assert data == bytes.fromhex("617276656c406578616d706c652e636f6d2035")


# -- every status ----------------------------------------------------------------------


@pytest.mark.parametrize("status", list(Status))
def test_every_status_round_trips(status: Status) -> None:
    """Each of the six codes is written as its single digit and read back."""
    response = Response(mailbox="a@example.test", status=status)
    data = minger.encode_response(response)
    assert data == f"a@example.test {int(status)}".encode()
    assert minger.decode_response(data) == response


def test_status_values_and_descriptions() -> None:
    """Status holds exactly the codes 0 to 5 of -06 §3.1, each with a description."""
    assert [int(s) for s in Status] == [0, 1, 2, 3, 4, 5]
    assert Status.ACTIVE.description == "address exists and is active"
    assert all(s.description for s in Status)


# -- round trips -----------------------------------------------------------------------


@settings(max_examples=200)
@given(queries())
def test_query_round_trip(query: Query) -> None:
    """decode_query(encode_query(q)) == q for every valid query."""
    assert minger.decode_query(minger.encode_query(query)) == query


@settings(max_examples=200)
@given(responses)
def test_response_round_trip(response: Response) -> None:
    """decode_response(encode_response(r)) == r for every valid response."""
    assert minger.decode_response(minger.encode_response(response)) == response


@settings(max_examples=100)
@given(queries(), st.sampled_from(TRAILING))
def test_query_tolerates_trailing_whitespace(query: Query, tail: bytes) -> None:
    """Trailing CR, LF and SP after a query are ignored (notes §1, §8)."""
    assert minger.decode_query(minger.encode_query(query) + tail) == query


@settings(max_examples=100)
@given(responses, st.sampled_from(TRAILING))
def test_response_tolerates_trailing_whitespace(response: Response, tail: bytes) -> None:
    """Trailing CR, LF and SP after a response are ignored (notes §8)."""
    assert minger.decode_response(minger.encode_response(response) + tail) == response


@pytest.mark.parametrize("tail", [b"\x00", b"\t", b"\r\nx", b" \x7f", b"\xff", b"\r\n\x00"])
def test_query_refuses_other_trailing_data(tail: bytes) -> None:
    """Trailing bytes other than CR, LF and SP are not stripped: the query is refused."""
    with pytest.raises(MingerError):
        minger.decode_query(ARVEL_QUERY + tail)


@pytest.mark.parametrize("tail", [b"\x00", b"\t", b" x", b"6", b"\xff", b"5"])
def test_response_refuses_other_trailing_data(tail: bytes) -> None:
    """A response followed by anything but CR, LF or SP no longer ends in one digit."""
    with pytest.raises(MingerError):
        minger.decode_response(b"arvel@example.com 5" + tail)


def test_every_truncation_decodes_or_raises() -> None:
    """Each prefix of a tagged query decodes to what it says, or raises MingerError."""
    data = b"bob@example.com d=th1zAk2f/HgxK6No3RIkuw== foo=bar x_1=Y"
    accepted = []
    for end in range(len(data) + 1):
        try:
            query = minger.decode_query(data[:end])
        except MingerError:
            continue
        assert minger.encode_query(query) == data[:end].rstrip(b" ")
        accepted.append(end)
    # "bob@e" is the shortest valid mailbox (RFC 5321 allows a dotless domain); a cut
    # digest is never accepted, whatever its length.
    assert accepted[0] == len(b"bob@e")
    digest_start = len(b"bob@example.com d")
    digest_end = len(b"bob@example.com d=th1zAk2f/HgxK6No3RIkuw==")
    assert not set(range(digest_start, digest_end)) & set(accepted)
    assert digest_end in accepted


def test_runs_of_spaces_between_query_fields() -> None:
    """Runs of SP separate query fields, as mingerd's strtok allows (notes §2)."""
    query = minger.decode_query(b"bob@example.com   d=th1zAk2f/HgxK6No3RIkuw==  x=1")
    assert query.digest == "th1zAk2f/HgxK6No3RIkuw=="
    assert query.tags == (("x", "1"),)


def test_runs_of_spaces_before_response_status() -> None:
    """A run of SP before the status digit is tolerated when reading a response."""
    assert minger.decode_response(b"a@example.test    4") == Response(
        mailbox="a@example.test", status=Status.DISABLED
    )


def test_bare_status_digit_response() -> None:
    """A response that is only a status digit decodes with no mailbox (notes §3)."""
    assert minger.decode_response(b"0") == Response(mailbox=None, status=Status.INVALID_REQUEST)
    assert minger.encode_response(Response(mailbox=None, status=Status.NOT_FOUND)) == b"3"


def test_encoder_writes_no_terminator() -> None:
    """Encoded datagrams end in their last field: no CR, LF or NUL (notes §1)."""
    data = minger.encode_query(minger.make_query("a@example.test", secret=SECRET, tags={"t": "1"}))
    assert data.endswith(b"t=1")


def test_tags_keep_order_and_case() -> None:
    """Tags are kept in wire order; names differing only in case are distinct (-06 §2.2)."""
    query = minger.decode_query(b"a@example.test D=1 x=2 X=3")
    assert query.tags == (("D", "1"), ("x", "2"), ("X", "3"))


# -- malformed queries -----------------------------------------------------------------

DIGEST = "th1zAk2f/HgxK6No3RIkuw=="
MALFORMED_QUERIES = {
    "empty": b"",
    "blank": b" \r\n",
    "missing mailbox": b" d=" + DIGEST.encode(),
    "digest alone": b"d=" + DIGEST.encode(),
    "no at sign": b"bob.example.com",
    "empty local part": b"@example.com",
    "empty domain": b"bob@",
    "bad domain": b"bob@-example.com",
    "space in quoted local part": b'"bob smith"@example.com',
    "non-ascii": "bób@example.com".encode(),
    "nul in mailbox": b"bob\x00@example.com",
    "tab separator": b"bob@example.com\td=" + DIGEST.encode(),
    "uppercase D=": b"bob@example.com D=" + DIGEST.encode(),
    "digest too short": b"bob@example.com d=th1zAk2f/HgxK6No3RIku==",
    "digest too long": b"bob@example.com d=th1zAk2f/HgxK6No3RIkuwA==",
    "digest without padding": b"bob@example.com d=th1zAk2f/HgxK6No3RIkuw",
    "digest non-canonical": b"bob@example.com d=th1zAk2f/HgxK6No3RIkux==",
    "digest bad alphabet": b"bob@example.com d=th1zAk2f-HgxK6No3RIkuw==",
    "empty digest": b"bob@example.com d=",
    "digest after a tag": b"bob@example.com x=1 d=" + DIGEST.encode(),
    "two digests": b"bob@example.com d=" + DIGEST.encode() + b" d=" + DIGEST.encode(),
    "duplicate tags": b"bob@example.com x=1 x=2",
    "duplicate tags after digest": b"bob@example.com d=" + DIGEST.encode() + b" x=1 x=1",
    "tag without value": b"bob@example.com x=",
    "tag without name": b"bob@example.com =1",
    "tag without equals": b"bob@example.com foo",
    "tag with bad character": b"bob@example.com x=a-b",
    "tag with two equals": b"bob@example.com x=1=2",
    "leading space": b" bob@example.com",
    "over-long datagram": b"bob@example.com " + b"x=1 " * 200,
    "over-long local part": b"a" * 65 + b"@example.com",
    "over-long domain": b"a@" + b"b." * 127 + b"bb",
}


@pytest.mark.parametrize("data", MALFORMED_QUERIES.values(), ids=MALFORMED_QUERIES.keys())
def test_malformed_query_refused(data: bytes) -> None:
    """Every malformed query shape raises MingerError (and so would get status 0)."""
    with pytest.raises(MingerError):
        minger.decode_query(data)


def test_minger_error_is_value_error() -> None:
    """MingerError is a ValueError, so generic bad-value handlers catch it."""
    assert issubclass(MingerError, ValueError)


def test_uppercase_d_error_names_the_fix() -> None:
    """The error for D= says the digest needs a lowercase d=, the likeliest peer bug."""
    with pytest.raises(MingerError, match="lowercase 'd='"):
        minger.decode_query(b"bob@example.com D=" + DIGEST.encode())


def test_size_limit_is_a_parameter() -> None:
    """max_size bounds the datagram: the same query passes or fails by the limit alone."""
    data = minger.encode_query(minger.make_query("a@example.test"))
    assert minger.decode_query(data, max_size=len(data)).mailbox == "a@example.test"
    with pytest.raises(MingerError, match="limit"):
        minger.decode_query(data, max_size=len(data) - 1)


def test_default_size_limit_is_512() -> None:
    """The default datagram limit is the notes' 512 bytes (§4), inclusive."""
    assert minger.MAX_DATAGRAM == 512
    with pytest.raises(MingerError, match="limit"):
        minger.decode_query(b"a" * 513)


def test_error_message_escapes_peer_bytes() -> None:
    """Peer bytes quoted in an error message are escaped: one line, printable only."""
    with pytest.raises(MingerError) as info:
        minger.decode_query(b"bob@example.com\r\nInjected: yes x=\x1b[31m")
    message = str(info.value)
    assert "\r" not in message
    assert "\n" not in message
    assert "\x1b" not in message


# -- malformed responses ---------------------------------------------------------------

MALFORMED_RESPONSES = {
    "empty": b"",
    "blank": b"\r\n",
    "status 6": b"a@example.test 6",
    "status 9": b"a@example.test 9",
    "bare 6": b"6",
    "two digits": b"a@example.test 10",
    "no space": b"a@example.test5",
    "no status": b"a@example.test",
    "letter status": b"a@example.test x",
    "space in echo": b"a b 5",
    "leading space": b" a@example.test 5",
    "control byte": b"a@exa\x01mple.test 5",
    "non-ascii": "á@example.test 5".encode(),
    "over-long": b"a" * 600 + b" 5",
}


@pytest.mark.parametrize("data", MALFORMED_RESPONSES.values(), ids=MALFORMED_RESPONSES.keys())
def test_malformed_response_refused(data: bytes) -> None:
    """A malformed response raises MingerError; an undefined digit is never 'valid'."""
    with pytest.raises(MingerError):
        minger.decode_response(data)


# -- construction-time validation ------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mailbox": "no-at-sign"},
        {"mailbox": "a@example.test", "digest": "short"},
        {"mailbox": "a@example.test", "tags": (("d", "1"),)},
        {"mailbox": "a@example.test", "tags": (("x", "1"), ("x", "2"))},
        {"mailbox": "a@example.test", "tags": (("x y", "1"),)},
        {"mailbox": "a@example.test", "tags": (("x", ""),)},
        {"mailbox": "a@example.test", "tags": (("x",),)},
    ],
)
def test_query_validates_when_built(kwargs: dict[str, object]) -> None:
    """A Query that breaks the grammar cannot be built, so it can never be sent."""
    with pytest.raises(MingerError):
        Query(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("mailbox", ["", "a b", "a\r\n", "é", "x" * 511])
def test_response_validates_echo_when_built(mailbox: str) -> None:
    """A Response echo must be 1 to 510 visible US-ASCII characters."""
    with pytest.raises(MingerError):
        Response(mailbox=mailbox, status=Status.INVALID_REQUEST)


def test_response_requires_status_enum() -> None:
    """A plain int is not a Status: typos like 50 cannot be sent."""
    with pytest.raises(MingerError):
        Response(mailbox=None, status=50)  # type: ignore[arg-type]


def test_encoder_refuses_over_long_query() -> None:
    """The encoder refuses to build a datagram the peer's decoder would refuse."""
    tags = {f"t{i}": "v" * 20 for i in range(30)}
    with pytest.raises(MingerError, match="limit"):
        minger.encode_query(minger.make_query("a@example.test", tags=tags))


def test_messages_are_frozen() -> None:
    """Queries and responses are immutable values."""
    query = minger.make_query("a@example.test")
    with pytest.raises(AttributeError):
        query.mailbox = "b@example.test"  # type: ignore[misc]


@pytest.mark.parametrize(
    "mailbox", ["", "é@example.test", "a" * 64 + "@" + "b" * 190, "a@b..c", "a.@b", "a@[]"]
)
def test_validate_mailbox_refuses(mailbox: str) -> None:
    """validate_mailbox refuses empty, non-ASCII, over-long and ill-formed addresses."""
    with pytest.raises(MingerError):
        minger.validate_mailbox(mailbox)


@settings(max_examples=200)
@given(mailboxes)
def test_generated_mailboxes_validate(mailbox: str) -> None:
    """Every mailbox the strategy builds passes validate_mailbox unchanged."""
    assert minger.validate_mailbox(mailbox) == mailbox


@settings(max_examples=200)
@given(st.binary(max_size=80))
def test_decoders_raise_only_minger_error(data: bytes) -> None:
    """Arbitrary bytes either decode or raise MingerError; nothing else escapes."""
    for decode in (minger.decode_query, minger.decode_response):
        with contextlib.suppress(MingerError):
            decode(data)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain", "plain"),
        ("a\r\nb", "a\\r\\nb"),
        ("\x00\x1b", "\\x00\\x1b"),
        ("back\\slash", "back\\\\slash"),
        ("é", "\\xe9"),
        ("x" * 5, "xxx..."),
    ],
)
def test_escape_text(text: str, shown: str) -> None:
    """escape_text keeps printable ASCII and escapes the rest, cutting at the limit."""
    assert minger.escape_text(text, limit=3 if text == "xxxxx" else 200) == shown


def test_escape_text_bytes() -> None:
    """escape_text takes raw bytes too, escaping every non-printable byte."""
    assert minger.escape_text(b"a\xff\n") == "a\\xff\\n"
