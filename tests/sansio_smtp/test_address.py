"""Paths and mailboxes: RFC 5321 §4.1.2 syntax, limits and the exact replies."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sansio_smtp._address import Mailbox, parse_path, split_path
from sansio_smtp._errors import ParameterError

SENDER_SYNTAX = (501, "5.1.7", "Bad sender address syntax")
RECIPIENT_SYNTAX = (501, "5.1.3", "Bad recipient address syntax")
NON_ASCII = (553, "5.6.7", "Non-ASCII address requires the SMTPUTF8 parameter")


def mail(text: str, *, utf8: bool = False) -> tuple[Mailbox | None, str]:
    return parse_path(text, allow_null=True, allow_postmaster=False, utf8=utf8)


def rcpt(text: str, *, utf8: bool = False) -> tuple[Mailbox | None, str]:
    return parse_path(text, allow_null=False, allow_postmaster=True, utf8=utf8)


def reply_of(excinfo: pytest.ExceptionInfo[ParameterError]) -> tuple[int, str | None, str]:
    reply = excinfo.value.reply
    return reply.code, reply.status, reply.text


@pytest.mark.parametrize(
    ("text", "local_part", "domain"),
    [
        ("<a@example.com>", "a", "example.com"),
        ("<First.Last@Example.COM>", "First.Last", "Example.COM"),
        ("<a+tag@x>", "a+tag", "x"),
        ('<"a b"@example.com>', "a b", "example.com"),
        ('<"a\\"b\\\\c"@example.com>', 'a"b\\c', "example.com"),
        ('<"a@b>c"@example.com>', "a@b>c", "example.com"),
        ('<""@example.com>', "", "example.com"),
        ("<a@[192.0.2.1]>", "a", "[192.0.2.1]"),
        ("<a@[IPv6:2001:db8::1]>", "a", "[IPv6:2001:db8::1]"),
        ("<a@[IPv6:::ffff:192.0.2.1]>", "a", "[IPv6:::ffff:192.0.2.1]"),
        ("<@relay.example:a@b.example>", "a", "b.example"),
        ("<@r1.example,@r2.example:a@b.example>", "a", "b.example"),
        ("  <a@b.example>", "a", "b.example"),
    ],
)
def test_valid_paths(text: str, local_part: str, domain: str) -> None:
    """Valid reverse/forward paths decode to the right local part and domain."""
    for parse in (mail, rcpt):
        mailbox, raw = parse(text)
        assert mailbox == Mailbox(local_part=local_part, domain=domain)
        assert raw == text.strip(" ")[1:-1]


@pytest.mark.parametrize(
    "text",
    [
        "a@b.example",
        "<a@b.example",
        "a@b.example>",
        "<a>",
        "<@b.example>",
        "<a@>",
        "<a@b..example>",
        "<a@-b.example>",
        "<a@b.example.>",
        "<.a@b.example>",
        "<a..b@b.example>",
        "<a b@b.example>",
        '<"a"b"@b.example>',
        "<a@b@c.example>",
        "<a@[192.0.2.256]>",
        "<a@[010.0.2.1]>",
        "<a@[1.2.3]>",
        "<a@[IPv6:2001:db8::1::2]>",
        "<a@[IPv6:fe80::1%25eth0]>",
        "<a@[x-tag:anything]>",
        "<a@[]>",
        "<@relay.example a@b.example>",
        "<@relay.example:>",
        "<relay.example:a@b.example>",
        "<@relay..example:a@b.example>",
        "<@r1.example,r2.example:a@b.example>",
        "<a@b.example>trailing",
        "<a@b.example> ",
        "<a@b.example>\r\n",
        "<a\x00@b.example>",
        "<a@b.example\n>",
        '<"a\rb"@b.example>',
        "<a\x7f@b.example>",
        f"<a@{'x' * 64}.example>",
    ],
)
def test_invalid_paths_get_role_specific_syntax_replies(text: str) -> None:
    """Bad syntax is 501 5.1.7 for MAIL and 501 5.1.3 for RCPT, never a traceback."""
    with pytest.raises(ParameterError) as sender:
        mail(text)
    assert reply_of(sender) == SENDER_SYNTAX
    with pytest.raises(ParameterError) as recipient:
        rcpt(text)
    assert reply_of(recipient) == RECIPIENT_SYNTAX


def test_null_path_only_for_mail() -> None:
    """<> is the null reverse-path for MAIL and a syntax error for RCPT."""
    assert mail("<>") == (None, "")
    with pytest.raises(ParameterError) as excinfo:
        rcpt("<>")
    assert reply_of(excinfo) == RECIPIENT_SYNTAX


@pytest.mark.parametrize("text", ["<postmaster>", "<Postmaster>", "<POSTMASTER>"])
def test_bare_postmaster_only_for_rcpt(text: str) -> None:
    """<postmaster> without a domain is a recipient in any case, never a sender."""
    mailbox, raw = rcpt(text)
    assert mailbox == Mailbox(local_part="postmaster", domain="")
    assert str(mailbox) == "postmaster"
    assert raw == text[1:-1]
    with pytest.raises(ParameterError) as excinfo:
        mail(text)
    assert reply_of(excinfo) == SENDER_SYNTAX


def test_length_limits_are_exact() -> None:
    """Local part 64, domain 255 and path 256 octets pass; one more is refused."""
    local = "l" * 64
    assert rcpt(f"<{local}@x>")[0] == Mailbox(local_part=local, domain="x")
    with pytest.raises(ParameterError) as excinfo:
        rcpt(f"<l{local}@x>")
    assert reply_of(excinfo) == (501, "5.1.3", "Local part too long")

    domain = ".".join(["d" * 63] * 4)  # 255 octets; the path limit is lifted to see it
    assert len(domain) == 255
    assert parse_path(
        f"<a@{domain}>", allow_null=True, allow_postmaster=False, utf8=False, max_path=300
    )[0] == Mailbox(local_part="a", domain=domain)
    with pytest.raises(ParameterError) as excinfo:
        parse_path(
            f"<a@d{domain}>", allow_null=True, allow_postmaster=False, utf8=False, max_path=300
        )
    assert reply_of(excinfo) == (501, "5.1.7", "Domain too long")

    path = f"<{'l' * 60}@{'d' * 63}.{'d' * 63}.{'d' * 63}.{'d'}>"  # 256 octets
    assert len(path) == 256
    assert rcpt(path)[0] is not None
    with pytest.raises(ParameterError) as excinfo:
        rcpt(path[:-1] + "d>")
    assert reply_of(excinfo) == (501, "5.1.3", "Path too long")


def test_limits_are_keywords() -> None:
    """Each limit can be raised or lowered by its keyword."""
    with pytest.raises(ParameterError):
        parse_path(
            "<abc@x>", allow_null=False, allow_postmaster=False, utf8=False, max_local_part=2
        )
    long_local = "l" * 100
    mailbox, _ = parse_path(
        f"<{long_local}@x>",
        allow_null=False,
        allow_postmaster=False,
        utf8=False,
        max_local_part=100,
    )
    assert mailbox is not None
    assert mailbox.local_part == long_local


def test_limits_count_octets_not_characters() -> None:
    """A UTF-8 local part is measured in octets (RFC 5321 §4.5.3.1 says octets)."""
    assert rcpt(f"<{'é' * 32}@x>", utf8=True)[0] is not None
    with pytest.raises(ParameterError):
        rcpt(f"<{'é' * 33}@x>", utf8=True)


@pytest.mark.parametrize(
    "text", ["<jörg@example.com>", "<a@bücher.example>", '<"jö rg"@x>', "<@bü.example:a@x>"]
)
def test_utf8_addresses_need_smtputf8(text: str) -> None:
    """Non-ASCII is 553 5.6.7 without SMTPUTF8 and accepted with it (RFC 6531)."""
    with pytest.raises(ParameterError) as excinfo:
        rcpt(text)
    assert reply_of(excinfo) == NON_ASCII
    mailbox, _ = rcpt(text, utf8=True)
    assert mailbox is not None
    assert mailbox.is_utf8 == (not str(mailbox).isascii())


@pytest.mark.parametrize(
    "text",
    ["<a\u0085@x>", "<a@b\u200b.example>", "<a@b\U000e0001.example>", "<a\ud800@x>", "<a@☃.x>"],
)
def test_utf8_controls_and_non_letters_refused(text: str) -> None:
    """C1 controls and lone surrogates never pass; U-labels hold letters, marks, digits."""
    with pytest.raises(ParameterError) as excinfo:
        rcpt(text, utf8=True)
    assert reply_of(excinfo) == RECIPIENT_SYNTAX


@pytest.mark.parametrize(
    ("text", "path", "rest"),
    [
        ("<a@b>", "<a@b>", ""),
        ("<a@b> SIZE=10", "<a@b>", " SIZE=10"),
        (" <a@b>  X Y", "<a@b>", "  X Y"),
        ("<>", "<>", ""),
        ('<"x > y"@b> BODY=8BITMIME', '<"x > y"@b>', " BODY=8BITMIME"),
        ('<"x \\" > y"@b>', '<"x \\" > y"@b>', ""),
    ],
)
def test_split_path(text: str, path: str, rest: str) -> None:
    """split_path finds the closing ">" outside quotes and hands back the parameters."""
    assert split_path(text, sender=True) == (path, rest)


@pytest.mark.parametrize("text", ["", "a@b", "<a@b>X=1", "<a@b", '<"a>', "<<a@b>>"])
def test_split_path_refuses(text: str) -> None:
    """No bracketed path, or text glued to ">", is a syntax error for the role."""
    with pytest.raises(ParameterError) as excinfo:
        split_path(text, sender=False)
    assert reply_of(excinfo) == RECIPIENT_SYNTAX


@pytest.mark.parametrize(
    ("mailbox", "text"),
    [
        (Mailbox(local_part="a", domain="b"), "a@b"),
        (Mailbox(local_part="a b", domain="b"), '"a b"@b'),
        (Mailbox(local_part='a"\\', domain="b"), '"a\\"\\\\"@b'),
        (Mailbox(local_part="", domain="b"), '""@b'),
        (Mailbox(local_part="a.", domain="b"), '"a."@b'),
        (Mailbox(local_part="jörg", domain="bücher.de"), "jörg@bücher.de"),
        (Mailbox(local_part="postmaster", domain=""), "postmaster"),
    ],
)
def test_mailbox_str_quotes_when_needed(mailbox: Mailbox, text: str) -> None:
    """str(Mailbox) gives the wire form, quoting only local parts that need it."""
    assert str(mailbox) == text


@pytest.mark.parametrize(
    ("local_part", "domain"),
    [
        ("a\r\nRCPT TO:<x@y>", "b"),
        ("a", "b\n"),
        ("a", "b c"),
        ("bob", ""),
        ("a", "[x"),
        ("a", "[1.2.3 4]"),
        ("a", "[IPv6:zz]"),
    ],
)
def test_mailbox_refuses_bad_fields(local_part: str, domain: str) -> None:
    """A Mailbox built by the application can never smuggle CR/LF or a bad domain."""
    with pytest.raises(ValueError, match=r"mailbox|domain|postmaster|literal"):
        Mailbox(local_part=local_part, domain=domain)


_local_parts = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=0, max_size=30
) | st.from_regex(r"[a-z0-9!#$%&'*+/=?^_`{|}~-]{1,10}(\.[a-z0-9-]{1,10}){0,3}", fullmatch=True)
_domains = st.from_regex(
    r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\.[a-z0-9]{1,10}){0,3}", fullmatch=True
)


@settings(max_examples=200)
@given(local_part=_local_parts, domain=_domains)
def test_round_trip_ascii(local_part: str, domain: str) -> None:
    """parse_path(<str(m)>) gives back m for any printable ASCII local part."""
    mailbox = Mailbox(local_part=local_part, domain=domain)
    assert rcpt(f"<{mailbox}>") == (mailbox, str(mailbox))


_utf8_local = st.text(
    alphabet=st.characters(
        min_codepoint=0x20, blacklist_categories=("Cc", "Cs"), blacklist_characters="\x7f"
    ),
    min_size=1,
    max_size=15,
)


@settings(max_examples=100)
@given(local_part=_utf8_local)
def test_round_trip_utf8(local_part: str) -> None:
    """With SMTPUTF8, any local part without controls survives str() and parsing."""
    mailbox = Mailbox(local_part=local_part, domain="例え.jp")
    assert rcpt(f"<{mailbox}>", utf8=True) == (mailbox, str(mailbox))


@settings(max_examples=200)
@given(text=st.text(max_size=80))
def test_arbitrary_text_parses_or_raises_parameter_error(text: str) -> None:
    """Any text either parses or raises ParameterError with a 5xx reply."""
    for utf8 in (False, True):
        outcome = _parse_or_reply(text, utf8=utf8)
        if isinstance(outcome, int):
            assert outcome in (501, 553)
        else:
            assert outcome is None or "\n" not in str(outcome)


def _parse_or_reply(text: str, *, utf8: bool) -> Mailbox | int | None:
    try:
        return parse_path(text, allow_null=True, allow_postmaster=True, utf8=utf8)[0]
    except ParameterError as error:
        return error.reply.code


def test_sender_keyword_overrides_the_wording() -> None:
    """sender=True words errors for a reverse-path even when <> is not allowed."""
    with pytest.raises(ParameterError) as excinfo:
        parse_path("<>", allow_null=False, allow_postmaster=False, utf8=False, sender=True)
    assert reply_of(excinfo) == SENDER_SYNTAX
