# Invariant: addresses, ESMTP parameters and xtext round-trip. Whatever parses, formats
# to text that parses again to the same value; a parser fed anything either returns or
# raises ParameterError (never another exception); encoders are inverted by decoders.
"""Fuzz the envelope grammar: parse_path, MAIL/RCPT parameters, xtext (RFC 5321, 3461)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from fuzz._common import ByteProvider, run_fuzzer
from sansio_smtp._abnf import DOMAIN
from sansio_smtp._address import MAX_DOMAIN, MAX_LOCAL_PART, MAX_PATH, Mailbox, parse_path
from sansio_smtp._errors import ParameterError
from sansio_smtp._params import (
    MailParams,
    format_mail_params,
    format_rcpt_params,
    parse_mail_params,
    parse_rcpt_params,
    utf8_addr_xtext_decode,
    utf8_addr_xtext_encode,
    xtext_decode,
    xtext_encode,
)

# What a formatted parameter list may hold: space-separated esmtp-params, no controls.
_PARAM_LIST = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9\-]*(?:=[^\x00-\x20=\x7f]+)?(?: |$))*")
_EXTRA_KEYWORDS = ("X-FOO", "XTRA")


def _has_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def _text(data: bytes, how: int) -> str:
    """Decodes fuzz bytes the ways a peer's bytes can reach the parsers (and worse)."""
    if how == 0:
        return data.decode("utf-8", "replace")
    if how == 1:
        return data.decode("latin-1")
    # Lone surrogates: never produced by the engine, but the parsers must refuse them.
    return data.decode("utf-8", "surrogateescape")


def _path_round_trip(text: str, flags: int) -> None:
    allow_null, allow_postmaster, utf8 = bool(flags & 1), bool(flags & 2), bool(flags & 4)
    try:
        mailbox, raw = parse_path(
            text, allow_null=allow_null, allow_postmaster=allow_postmaster, utf8=utf8
        )
    except ParameterError:
        return
    assert raw == text.lstrip(" ")[1:-1], (text, raw)
    if mailbox is None:
        assert allow_null, text
        assert raw == "", text
        return
    again, _ = parse_path(
        f"<{mailbox}>", allow_null=allow_null, allow_postmaster=allow_postmaster, utf8=utf8
    )
    assert again == mailbox, (text, str(mailbox), again)


def _mailbox_format_parse(provider: ByteProvider, how: int) -> None:
    local_part = _text(provider.consume_sized_bytes(80), how)
    domain = _text(provider.consume_bytes(provider.remaining()), how)
    try:
        mailbox = Mailbox(local_part=local_part, domain=domain)
    except ValueError:
        return
    formatted = str(mailbox)
    assert not re.search(r"[\x00-\x1f\x7f]", formatted), formatted
    path = f"<{formatted}>"
    try:
        again, _ = parse_path(
            path, allow_null=False, allow_postmaster=domain == "", utf8=mailbox.is_utf8
        )
    except ParameterError:
        # The Mailbox constructor is looser than the parser (label lengths, U-label
        # categories, address-literal contents); only a plain mailbox must parse.
        local_raw = formatted[: formatted.rfind("@")] if domain else formatted
        plain = (
            (domain == "" or (DOMAIN.fullmatch(domain) is not None))
            and all(len(label) <= 63 for label in domain.split("."))
            and len(local_raw.encode()) <= MAX_LOCAL_PART
            and len(domain.encode()) <= MAX_DOMAIN
            and len(path.encode()) <= MAX_PATH
        )
        assert not plain, (local_part, domain, formatted)
        return
    if domain == "":
        # parse_path spells <postmaster> in lower case whatever case was sent.
        mailbox = Mailbox(local_part="postmaster", domain="")
    assert again == mailbox, (local_part, domain, formatted, again)


def _mail_params_round_trip(provider: ByteProvider, text: str, flags: int) -> None:
    max_message_size = provider.pick((None, 0, 1000, 10_240_000))
    max_envid_length = provider.pick((100, 1, 20))

    def parse(params_text: str) -> MailParams:
        return parse_mail_params(
            params_text,
            size=bool(flags & 1),
            eightbitmime=bool(flags & 2),
            binarymime=bool(flags & 4),
            smtputf8=bool(flags & 8),
            dsn=bool(flags & 16),
            auth=bool(flags & 32),
            extra_keywords=_EXTRA_KEYWORDS if flags & 64 else (),
            max_message_size=max_message_size,
            max_envid_length=max_envid_length,
        )

    try:
        params = parse(text)
    except ParameterError:
        return
    formatted = format_mail_params(params)
    assert _PARAM_LIST.fullmatch(formatted), (text, formatted)
    again = parse(formatted)
    assert again == params, (text, formatted, params, again)


def _rcpt_params_round_trip(provider: ByteProvider, text: str, flags: int) -> None:
    dsn, utf8 = bool(flags & 1), bool(flags & 2)
    extra = _EXTRA_KEYWORDS if flags & 4 else ()
    max_orcpt_length = provider.pick((500, 10))
    try:
        params = parse_rcpt_params(
            text, dsn=dsn, utf8=utf8, extra_keywords=extra, max_orcpt_length=max_orcpt_length
        )
    except ParameterError:
        return
    formatted = format_rcpt_params(params, utf8=utf8)
    assert _PARAM_LIST.fullmatch(formatted), (text, formatted)
    again = parse_rcpt_params(
        formatted, dsn=dsn, utf8=utf8, extra_keywords=extra, max_orcpt_length=max_orcpt_length
    )
    assert again == params, (text, formatted, params, again)


def _xtext(text: str, flags: int) -> None:
    # decode -> encode -> decode; the canonical encoding of plain xtext is never longer
    # than the input (with utf8, raw UTF-8 characters legitimately grow into +XX).
    utf8 = bool(flags & 1)
    try:
        decoded = xtext_decode(text, utf8=utf8)
    except ValueError:
        pass
    else:
        encoded = xtext_encode(decoded)
        assert xtext_decode(encoded) == decoded, (text, encoded)
        if not utf8:
            assert len(encoded) <= len(text), (text, encoded)
    # encode anything -> decode gives it back (only lone surrogates may be refused).
    try:
        encoded = xtext_encode(text)
    except ValueError:
        assert _has_surrogate(text), text
        return
    assert encoded.isascii(), encoded
    assert " " not in encoded, encoded
    assert xtext_decode(encoded) == text, (text, encoded)


def _utf8_addr(text: str, flags: int) -> None:
    unitext = bool(flags & 1)
    try:
        decoded = utf8_addr_xtext_decode(text, unitext=unitext)
    except ValueError:
        pass
    else:
        encoded = utf8_addr_xtext_encode(decoded)
        assert encoded.isascii(), encoded
        assert utf8_addr_xtext_decode(encoded) == decoded, (text, encoded)
    if text and not _has_surrogate(text):
        encoded = utf8_addr_xtext_encode(text)
        assert utf8_addr_xtext_decode(encoded) == text, (text, encoded)


def seeds() -> Iterable[tuple[str, bytes]]:
    """Returns the named seed inputs for fuzz/corpus/fuzz_params/."""
    # Layout of fuzz_params: target (0..5), flags, text decoding (0 utf-8, 1 latin-1, 2 surrogates).
    paths = [
        b"<a@example.com>",
        b"<>",
        b"<postmaster>",
        b"<PostMaster>",
        b'<"john \\"doe\\""@example.org>',
        b"<@relay.example,@r2.example:c@example.org>",
        b"<d@[127.0.0.1]>",
        b"<e@[IPv6:2001:db8::1]>",
        b"<bill%ms.test@d.test>",
        b"  <j\xc3\xb6rg@ex\xc3\xa4mple.de>",
        b"<" + b"a" * 64 + b"@" + b"b" * 63 + b".example>",
    ]
    for i, path in enumerate(paths):
        yield f"path{i}", bytes([0, 7, 0]) + path
    yield "mailbox_quoted", bytes([1, 0, 0, 5]) + b"a b\\c" + b"example.com"
    yield "mailbox_utf8", bytes([1, 0, 0, 4]) + "zoë".encode() + "exämple.de".encode()
    mail = [
        b" SIZE=1000 BODY=8BITMIME",
        b" BODY=BINARYMIME SMTPUTF8",
        b" RET=HDRS ENVID=QQ+2B1 AUTH=<>",
        b" AUTH=joe+2Bx@example.com",
        b" SIZE=99999999999999999999",
        b" X-FOO=bar XTRA",
        b" SMTPUTF8 X-FOO=\xc3\xa9t\xc3\xa9",
    ]
    for i, text in enumerate(mail):
        yield f"mail{i}", bytes([2, 255, 0, 0]) + text
    rcpt = [
        b" NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;bob@example.org",
        b" NOTIFY=NEVER ORCPT=rfc822;a+2Bb@example.org",
        b" ORCPT=utf-8;j\\x{F6}rg@example.de",
        b" ORCPT=UTF-8;j\xc3\xb6rg@example.de",
        b" X-FOO=1 XTRA",
    ]
    for i, text in enumerate(rcpt):
        yield f"rcpt{i}", bytes([3, 7, 0, 0]) + text
    for i, text in enumerate([b"abc+2Bdef+3D", b"+E2+82+AC", b"+2b", b"a b=c"]):
        yield f"xtext{i}", bytes([4, 0, 0]) + text
    for i, text in enumerate([b"j\\x{F6}rg@x", b"\\x{1F600}", "zoë".encode()]):
        yield f"utf8addr{i}", bytes([5, 1, 0]) + text


def test_one_input(data: bytes) -> None:
    """Runs one fuzz input: a selector byte, a flags byte, then the text under test."""
    provider = ByteProvider(data)
    target = provider.consume_int(0, 5)
    flags = provider.consume_int(0, 255)
    how = provider.consume_int(0, 2)
    if target == 1:
        _mailbox_format_parse(provider, how)
        return
    if target in (2, 3):
        # The engine only hands over a decodable command line: UTF-8 or nothing.
        choice = provider.consume_int(0, 3)
        text = _text(provider.consume_bytes(provider.remaining()), how)
        if target == 2:
            _mail_params_round_trip(ByteProvider(bytes([choice])), text, flags)
        else:
            _rcpt_params_round_trip(ByteProvider(bytes([choice])), text, flags)
        return
    text = _text(provider.consume_bytes(provider.remaining()), how)
    if target == 0:
        _path_round_trip(text, flags)
    elif target == 4:
        _xtext(text, flags)
    else:
        _utf8_addr(text, flags)


def main() -> None:
    """Starts atheris on this harness."""
    run_fuzzer(test_one_input, packages=("sansio_smtp",))


if __name__ == "__main__":
    main()
