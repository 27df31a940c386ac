# Invariant: Minger decoding round-trips and the server decision never raises. Any
# datagram either decodes or raises MingerError; whatever decodes re-encodes to a
# datagram no longer than the input that decodes to the same value; answer_datagram
# never raises for peer bytes, never amplifies (reply <= query + 2 bytes), echoes the
# queried mailbox, and says 3/4/5 only to a peer that is allowed and authenticated.
"""Fuzz the Minger codec (draft-hathcock-minger-06) and the server's decision."""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from fuzz._common import ByteProvider, run_fuzzer
from minger import (
    MAX_DATAGRAM,
    MingerError,
    RateLimiter,
    RateVerdict,
    Status,
    answer_datagram,
    compute_digest,
    decode_query,
    decode_response,
    encode_query,
    encode_response,
    escape_text,
    make_query,
    match_response,
    response_matches,
)

SECRETS = ("0123456789abcdef", "ThisIsMySharedSecret", "x", "~" * 50)
_ADDRESS_ANSWERS = {Status.NOT_FOUND, Status.DISABLED, Status.ACTIVE}


def _lookup(mailbox: str) -> Status:
    """A deterministic directory: the mailbox's CRC picks 3, 4 or 5."""
    return (Status.NOT_FOUND, Status.DISABLED, Status.ACTIVE)[zlib.crc32(mailbox.encode()) % 3]


def _query_round_trip(data: bytes, max_size: int) -> None:
    try:
        query = decode_query(data, max_size=max_size)
    except MingerError:
        return
    encoded = encode_query(query, max_size=max_size)
    assert len(encoded) <= len(data), (data, encoded)
    assert decode_query(encoded, max_size=max_size) == query, (data, encoded)


def _response_round_trip(data: bytes, max_size: int) -> None:
    try:
        response = decode_response(data, max_size=max_size)
    except MingerError:
        return
    encoded = encode_response(response, max_size=max_size)
    assert len(encoded) <= len(data), (data, encoded)
    assert decode_response(encoded, max_size=max_size) == response, (data, encoded)


def _answer(data: bytes, flags: int, max_size: int) -> None:
    peer_allowed = bool(flags & 1)
    secret = None if flags & 2 else SECRETS[(flags >> 2) % len(SECRETS)]
    # A server with no secret must allow anonymous queries (decide() refuses otherwise).
    allow_anonymous = bool(flags & 16) or secret is None
    answer = answer_datagram(
        data,
        peer_allowed=peer_allowed,
        secret=secret,
        allow_anonymous=allow_anonymous,
        lookup=_lookup,
        max_size=max_size,
    )
    if answer.response is None:
        assert answer.query is None, answer
        return
    wire = encode_response(answer.response, max_size=MAX_DATAGRAM + 2)
    assert len(wire) <= len(data) + 2, (data, wire)
    if answer.query is None:
        assert answer.response.status is Status.INVALID_REQUEST, answer
        assert answer.error is not None, answer
        return
    query = answer.query
    assert answer.response.mailbox == query.mailbox, answer
    status = answer.response.status
    if not peer_allowed:
        assert status is Status.ACCESS_DENIED, answer
    elif status in _ADDRESS_ANSWERS:
        assert status == _lookup(query.mailbox), answer
        if query.digest is None:
            assert allow_anonymous, answer
        elif secret is not None:
            assert query.digest == compute_digest(secret, query.mailbox), answer
    else:
        assert status is Status.BAD_CREDENTIALS, answer


def _signed_query(provider: ByteProvider, flags: int) -> None:
    # The fuzzer cannot guess MD5 digests, so build correctly signed queries for it.
    secret = SECRETS[flags % len(SECRETS)]
    mailbox = provider.consume_bytes(provider.remaining()).decode("latin-1")
    try:
        query = make_query(mailbox, secret=secret)
    except MingerError:
        return
    datagram = encode_query(query)
    assert decode_query(datagram) == query
    right = answer_datagram(
        datagram, peer_allowed=True, secret=secret, allow_anonymous=False, lookup=_lookup
    )
    assert right.response is not None, right
    assert right.response.status == _lookup(mailbox), right
    wrong_secret = SECRETS[(flags + 1) % len(SECRETS)]
    wrong = answer_datagram(
        datagram, peer_allowed=True, secret=wrong_secret, allow_anonymous=True, lookup=_lookup
    )
    assert wrong.response is not None, wrong
    assert wrong.response.status is Status.BAD_CREDENTIALS, wrong
    # The client accepts exactly the answers that echo its mailbox.
    assert right.response is not None
    reply = encode_response(right.response)
    assert match_response(query, reply) == right.response


def _client_match(provider: ByteProvider, data: bytes) -> None:
    mailbox = provider.pick(("arvel@example.com", "Bob@Example.ORG", '"a b"@[127.0.0.1]'))
    query = make_query(mailbox)
    response = match_response(query, data)
    if response is not None:
        assert response_matches(query, response), (data, response)


def _rate_limiter(provider: ByteProvider) -> None:
    burst = provider.consume_int(1, 8)
    rate = provider.pick((0.5, 1.0, 10.0))
    max_sources = provider.consume_int(1, 4)
    limiter = RateLimiter(rate=rate, burst=burst, max_sources=max_sources)
    now = lowest = peak = 0.0
    accepted: dict[int, int] = {}
    evictable = False
    for _ in range(200):
        if provider.remaining() == 0:
            break
        source = provider.consume_int(0, 5)
        now += provider.pick((0.0, 0.0, 0.01, 0.5, 3.0, -1.0))
        lowest, peak = min(lowest, now), max(peak, now)
        verdict = limiter.check(source, now)
        assert len(limiter) <= max_sources
        evictable = evictable or source >= max_sources
        if verdict is RateVerdict.ACCEPT:
            accepted[source] = accepted.get(source, 0) + 1
        # Without evictions no source gets more than burst + rate * (time span seen).
        if not evictable:
            limit = burst + rate * (peak - lowest) + 1e-9
            assert accepted.get(source, 0) <= limit, (source, accepted, lowest, peak)


def test_one_input(data: bytes) -> None:
    """Runs one fuzz input: a selector byte, a flags byte, then the datagram."""
    provider = ByteProvider(data)
    target = provider.consume_int(0, 5)
    flags = provider.consume_int(0, 255)
    max_size = MAX_DATAGRAM if flags & 128 else 64
    if target == 3:
        _signed_query(provider, flags)
        return
    if target == 5:
        _rate_limiter(provider)
        return
    payload = provider.consume_bytes(provider.remaining())
    escaped = escape_text(payload)
    assert all(" " <= ch <= "~" for ch in escaped), escaped
    if target == 0:
        _query_round_trip(payload, max_size)
    elif target == 1:
        _response_round_trip(payload, max_size)
    elif target == 2:
        _answer(payload, flags, max_size)
    else:
        _client_match(provider, payload)


def seeds() -> Iterable[tuple[str, bytes]]:
    """Returns the named seed inputs: the worked examples of minger.md §6 and variants."""
    queries = {
        "query_signed": b"arvel@example.com d=A7E/WJtlUbO5NWDjZba+bw==",
        "query_anonymous": b"arvel@example.com",
        "query_case": b"Arvel@example.com d=8idItqmMJ9wo5B4agtPBaw==",
        "query_bob": b"bob@example.com d=th1zAk2f/HgxK6No3RIkuw==",
        "query_tag": b"bob@example.com d=th1zAk2f/HgxK6No3RIkuw== foo=bar",
        "query_upper_d": b"bob@example.com D=th1zAk2f/HgxK6No3RIkuw==",
        "query_bare_digest": b"bob@example.com th1zAk2f/HgxK6No3RIkuw==",
        "query_crlf": b"arvel@example.com d=A7E/WJtlUbO5NWDjZba+bw==\r\n",
        "query_spaces": b"arvel@example.com   d=A7E/WJtlUbO5NWDjZba+bw==  a=1  b_2=X ",
        "query_dup_tag": b"a@b.c a=1 a=2",
        "query_d_tag": b"a@b.c d=x",
        "query_quoted": b'"john doe"@example.com',
        "query_literal": b"x@[127.0.0.1]",
        "query_mingerd_star": b"*",
        "query_binary": b"a@b.c\x00\xff",
    }
    responses = {
        "response_active": b"arvel@example.com 5",
        "response_bad_credentials": b"arvel@example.com 2",
        "response_not_found": b"arvel@example.com 3",
        "response_bare_0": b"0",
        "response_bare_5": b"5",
        "response_status_9": b"arvel@example.com 9",
        "response_no_space": b"arvel@example.com5",
        "response_spaces": b"arvel@example.com   4\r\n",
        "response_domain_case": b"arvel@EXAMPLE.com 5",
    }
    for name, datagram in queries.items():
        yield f"{name}_decode", bytes([0, 0x80]) + datagram
        # flags 0x81 -> peer allowed, secret "0123456789abcdef", anonymous refused.
        yield f"{name}_answer", bytes([2, 0x81]) + datagram
        yield f"{name}_answer_anon", bytes([2, 0x93]) + datagram
    for name, datagram in responses.items():
        yield f"{name}_decode", bytes([1, 0x80]) + datagram
        yield f"{name}_match", bytes([4, 0x80, 0]) + datagram
    yield "signed_arvel", bytes([3, 0x80]) + b"arvel@example.com"
    yield "signed_bob", bytes([3, 0x81]) + b"bob@example.com"
    yield "rate_limiter", bytes([5, 0, 2, 1, 1]) + bytes([0, 0, 1, 2, 0, 3, 2, 4] * 4)


def main() -> None:
    """Starts atheris on this harness."""
    run_fuzzer(test_one_input, packages=("minger",))


if __name__ == "__main__":
    main()
