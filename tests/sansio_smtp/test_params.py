"""MAIL/RCPT parameters: typed values, exact replies, xtext, and round trips."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sansio_smtp._errors import ParameterError
from sansio_smtp._params import (
    Body,
    MailParams,
    Notify,
    OriginalRecipient,
    RcptParams,
    Ret,
    format_mail_params,
    format_rcpt_params,
    parse_mail_params,
    parse_rcpt_params,
    utf8_addr_unitext_encode,
    utf8_addr_xtext_decode,
    utf8_addr_xtext_encode,
    xtext_decode,
    xtext_encode,
)

ALL_MAIL: dict[str, Any] = {
    "size": True,
    "eightbitmime": True,
    "binarymime": True,
    "smtputf8": True,
    "dsn": True,
    "auth": True,
}
MALFORMED = (501, "5.5.4", "Syntax error in parameters")
DUPLICATE = (501, "5.5.4", "Duplicate parameter")
TOO_BIG = (552, "5.3.4", "Message size exceeds fixed maximum message size")


def unknown(keyword: str) -> tuple[int, str, str]:
    return (555, "5.5.4", f"Unsupported parameter {keyword}")


def mail_reply(text: str, **kwargs: Any) -> tuple[int, str | None, str]:
    with pytest.raises(ParameterError) as excinfo:
        parse_mail_params(text, **{**ALL_MAIL, **kwargs})
    reply = excinfo.value.reply
    return reply.code, reply.status, reply.text


def rcpt_reply(text: str, **kwargs: Any) -> tuple[int, str | None, str]:
    with pytest.raises(ParameterError) as excinfo:
        parse_rcpt_params(text, **{"dsn": True, **kwargs})
    reply = excinfo.value.reply
    return reply.code, reply.status, reply.text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", MailParams()),
        ("   ", MailParams()),
        (" SIZE=0", MailParams(size=0)),
        (" size=12345", MailParams(size=12345)),
        (" SIZE=00000000000000000042", MailParams(size=42)),
        (" BODY=7bit", MailParams(body=Body.SEVEN_BIT)),
        (" Body=8BITMIME", MailParams(body=Body.EIGHT_BIT_MIME)),
        (" BODY=BINARYMIME", MailParams(body=Body.BINARY_MIME)),
        (" SMTPUTF8", MailParams(smtputf8=True)),
        (" AUTH=<>", MailParams(auth="<>")),
        (" AUTH=e+3Dmc2@example.com", MailParams(auth="e=mc2@example.com")),
        (" RET=FULL", MailParams(ret=Ret.FULL)),
        (" ret=hdrs", MailParams(ret=Ret.HDRS)),
        (" ENVID=QQ314159", MailParams(envid="QQ314159")),
        (" ENVID=a+2Bb+20c", MailParams(envid="a+b c")),
        (
            "  SIZE=10  BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=x AUTH=<>  ",
            MailParams(
                size=10,
                body=Body.EIGHT_BIT_MIME,
                smtputf8=True,
                ret=Ret.HDRS,
                envid="x",
                auth="<>",
            ),
        ),
        (
            " SMTPUTF8 AUTH=j\u00f6rg@b\u00fccher.de",
            MailParams(smtputf8=True, auth="jörg@bücher.de"),
        ),
    ],
)
def test_valid_mail_params(text: str, expected: MailParams) -> None:
    """Known MAIL parameters parse to typed values, keywords in any case."""
    assert parse_mail_params(text, **ALL_MAIL) == expected


@pytest.mark.parametrize(
    ("text", "kwargs", "expected"),
    [
        ("SIZE", {}, MALFORMED),
        ("SIZE=", {}, MALFORMED),
        ("SIZE=-1", {}, MALFORMED),
        ("SIZE=1e3", {}, MALFORMED),
        ("SIZE=" + "9" * 21, {}, MALFORMED),
        ("SIZE=" + "9" * 100_000, {}, MALFORMED),
        ("SIZE=1001", {"max_message_size": 1000}, TOO_BIG),
        ("SIZE=1 SIZE=1", {}, DUPLICATE),
        ("SIZE=1 size=2", {}, DUPLICATE),
        ("BODY=9BIT", {}, MALFORMED),
        ("BODY", {}, MALFORMED),
        ("BODY=BINARYMIME", {"binarymime": False}, (555, "5.5.4", "Unsupported BODY=BINARYMIME")),
        ("BODY=8BITMIME", {"eightbitmime": False}, (555, "5.5.4", "Unsupported BODY=8BITMIME")),
        ("BODY=8BITMIME", {"eightbitmime": False, "binarymime": False}, unknown("BODY")),
        ("SMTPUTF8=yes", {}, MALFORMED),
        ("SMTPUTF8", {"smtputf8": False}, unknown("SMTPUTF8")),
        ("AUTH", {}, MALFORMED),
        ("AUTH=bob", {}, MALFORMED),
        ("AUTH=a+2bb@c", {}, MALFORMED),
        ("AUTH=a+0D+0A@c", {}, MALFORMED),
        ("AUTH=<>", {"auth": False}, unknown("AUTH")),
        ("AUTH=j\u00f6rg@x", {}, MALFORMED),
        ("RET=ALL", {}, MALFORMED),
        ("RET", {}, MALFORMED),
        ("ENVID", {}, MALFORMED),
        ("ENVID=" + "x" * 101, {}, (501, "5.5.4", "ENVID too long")),
        ("ENVID=a+0Db", {}, MALFORMED),
        ("ENVID=a+C3+A9", {}, MALFORMED),
        ("ENVID=a+FF", {}, MALFORMED),
        ("RET=FULL", {"dsn": False}, unknown("RET")),
        ("ENVID=x", {"dsn": False}, unknown("ENVID")),
        ("NOTIFY=NEVER", {}, unknown("NOTIFY")),
        ("X-FOO=bar", {}, unknown("X-FOO")),
        ("X-FOO=bar SIZE=x", {}, unknown("X-FOO")),
        ("SIZE=x X-FOO=bar", {}, MALFORMED),
        ("-X=1", {}, MALFORMED),
        ("A=b=c", {}, MALFORMED),
        ("=1", {}, MALFORMED),
        ("SIZE=1\tBODY=7BIT", {}, MALFORMED),
        ("SIZE=1\r\n", {}, MALFORMED),
        ("X=\u00e9", {}, MALFORMED),
    ],
)
def test_invalid_mail_params(
    text: str, kwargs: dict[str, Any], expected: tuple[int, str, str]
) -> None:
    """Bad MAIL parameters get the exact reply: 501, 555 or 552 with 5.x.x."""
    assert mail_reply(" " + text, **kwargs) == expected


def test_everything_unknown_when_no_extension_enabled() -> None:
    """With every switch at its default (off), each MAIL parameter is 555 5.5.4."""
    for keyword in ("SIZE=1", "BODY=7BIT", "SMTPUTF8", "AUTH=<>", "RET=FULL", "ENVID=x"):
        with pytest.raises(ParameterError) as excinfo:
            parse_mail_params(keyword)
        assert excinfo.value.reply.code == 555


def test_size_limit_is_inclusive() -> None:
    """SIZE equal to the limit passes; the limit None means no limit."""
    assert parse_mail_params("SIZE=1000", size=True, max_message_size=1000).size == 1000
    assert parse_mail_params("SIZE=" + "9" * 20, size=True).size == 10**20 - 1


def test_envid_length_is_a_keyword() -> None:
    """max_envid_length changes the ENVID cap (measured on the xtext as sent)."""
    assert parse_mail_params("ENVID=" + "x" * 100, dsn=True).envid == "x" * 100
    with pytest.raises(ParameterError):
        parse_mail_params("ENVID=abc", dsn=True, max_envid_length=2)


def test_extra_keywords_preserve_case_and_value() -> None:
    """Keywords the application names land in extra, as given and in order."""
    params = parse_mail_params(
        " MT-PRIORITY=3 x-flag SIZE=5", size=True, extra_keywords=("mt-priority", "X-FLAG")
    )
    assert params == MailParams(size=5, extra=(("MT-PRIORITY", "3"), ("x-flag", None)))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", RcptParams()),
        (" NOTIFY=NEVER", RcptParams(notify=frozenset({Notify.NEVER}))),
        (
            " notify=success,Failure,DELAY",
            RcptParams(notify=frozenset({Notify.SUCCESS, Notify.FAILURE, Notify.DELAY})),
        ),
        (" NOTIFY=DELAY", RcptParams(notify=frozenset({"DELAY"}))),  # type: ignore[arg-type]
        (
            " ORCPT=rfc822;bob+40example.com",
            RcptParams(orcpt=OriginalRecipient(addr_type="rfc822", address="bob@example.com")),
        ),
        (
            " ORCPT=RFC822;not-an-address",
            RcptParams(orcpt=OriginalRecipient(addr_type="RFC822", address="not-an-address")),
        ),
        (
            " ORCPT=utf-8;j\\x{F6}rg@b\\x{FC}cher.de",
            RcptParams(orcpt=OriginalRecipient(addr_type="utf-8", address="jörg@bücher.de")),
        ),
        (
            " ORCPT=UTF-8;\\x{1F600}@x",
            RcptParams(orcpt=OriginalRecipient(addr_type="UTF-8", address="\U0001f600@x")),
        ),
    ],
)
def test_valid_rcpt_params(text: str, expected: RcptParams) -> None:
    """NOTIFY and ORCPT parse to typed values; ORCPT addresses are decoded."""
    assert parse_rcpt_params(text, dsn=True) == expected


@pytest.mark.parametrize(
    ("text", "kwargs", "expected"),
    [
        ("NOTIFY=NEVER,SUCCESS", {}, MALFORMED),
        ("NOTIFY=SUCCESS,SUCCESS", {}, MALFORMED),
        ("NOTIFY=", {}, MALFORMED),
        ("NOTIFY=SUCCESS,", {}, MALFORMED),
        ("NOTIFY=ALWAYS", {}, MALFORMED),
        ("NOTIFY", {}, MALFORMED),
        ("NOTIFY=NEVER NOTIFY=NEVER", {}, DUPLICATE),
        ("NOTIFY=NEVER", {"dsn": False}, unknown("NOTIFY")),
        ("ORCPT=rfc822;a@b", {"dsn": False}, unknown("ORCPT")),
        ("ORCPT", {}, MALFORMED),
        ("ORCPT=rfc822", {}, MALFORMED),
        ("ORCPT=rfc822;", {}, MALFORMED),
        ("ORCPT=;a@b", {}, MALFORMED),
        ("ORCPT=rfc.822;a@b", {}, MALFORMED),
        ("ORCPT=rfc822;a+2bb", {}, MALFORMED),
        ("ORCPT=rfc822;a+0D+0Ab", {}, MALFORMED),
        ("ORCPT=rfc822;" + "x" * 494, {}, (501, "5.5.4", "ORCPT too long")),
        ("ORCPT=utf-8;a+b", {}, MALFORMED),
        ("ORCPT=utf-8;j\\x{f6}rg", {}, MALFORMED),
        ("ORCPT=utf-8;\\x{D800}", {}, MALFORMED),
        ("ORCPT=utf-8;\\x{110000}", {}, MALFORMED),
        ("ORCPT=utf-8;\\x{0}", {}, MALFORMED),
        ("ORCPT=utf-8;j\u00f6rg", {"utf8": True}, None),
        ("ORCPT=utf-8;j\u00f6rg", {}, MALFORMED),
        ("SIZE=10", {}, unknown("SIZE")),
    ],
)
def test_invalid_rcpt_params(
    text: str, kwargs: dict[str, Any], expected: tuple[int, str, str] | None
) -> None:
    """Bad RCPT parameters get the exact reply (None: accepted in that mode)."""
    if expected is None:
        parse_rcpt_params(text, **{"dsn": True, **kwargs})
    else:
        assert rcpt_reply(" " + text, **kwargs) == expected


def test_rcpt_extra_keywords() -> None:
    """RCPT keywords the application names land in extra, as given."""
    params = parse_rcpt_params(" x-Route=abc NOTIFY=NEVER", dsn=True, extra_keywords=["X-ROUTE"])
    assert params == RcptParams(notify=frozenset({Notify.NEVER}), extra=(("x-Route", "abc"),))


def test_orcpt_limit_is_exact() -> None:
    """An ORCPT value of 500 characters passes, 501 does not (RFC 3461 §4.2)."""
    value = "rfc822;" + "x" * 493
    assert len(value) == 500
    assert parse_rcpt_params(f"ORCPT={value}", dsn=True).orcpt is not None


@pytest.mark.parametrize(
    ("decoded", "encoded"),
    [
        ("", ""),
        ("plain", "plain"),
        ("a+b=c", "a+2Bb+3Dc"),
        ("sp ace", "sp+20ace"),
        ("\r\n", "+0D+0A"),
        ("é", "+C3+A9"),
        ("~!", "~!"),
    ],
)
def test_xtext_table(decoded: str, encoded: str) -> None:
    """xtext encodes "+", "=" and non-graphic characters as upper-case +XX."""
    assert xtext_encode(decoded) == encoded
    assert xtext_decode(encoded) == decoded


@pytest.mark.parametrize("bad", ["+2b", "+2", "+", "a=b", "a b", "+G0", "\u00e9", "+FF"])
def test_xtext_decode_refuses(bad: str) -> None:
    """Lower-case hex, short escapes, raw '=', spaces and non-UTF-8 octets are not xtext."""
    with pytest.raises(ValueError, match="xtext"):
        xtext_decode(bad)


def test_xtext_decode_utf8_mode() -> None:
    """After SMTPUTF8, raw UTF-8 stands for itself beside +XX escapes (RFC 6531 §3.3)."""
    assert xtext_decode("j\u00f6rg+2B1@x", utf8=True) == "jörg+1@x"
    with pytest.raises(ValueError, match="xtext"):
        xtext_decode("j\u00f6rg", utf8=False)
    with pytest.raises(ValueError, match="xtext"):
        xtext_decode("a b", utf8=True)


def test_xtext_encode_refuses_surrogates() -> None:
    """A lone surrogate cannot be encoded (it has no UTF-8 form)."""
    with pytest.raises(ValueError, match="surrogate"):
        xtext_encode("\ud800")


_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)


@settings(max_examples=200)
@given(text=_text)
def test_xtext_round_trip(text: str) -> None:
    """xtext_decode(xtext_encode(s)) == s, and the encoding is always valid xtext."""
    encoded = xtext_encode(text)
    assert encoded.isascii()
    assert xtext_decode(encoded) == text


@settings(max_examples=200)
@given(text=_text.filter(bool))
def test_utf8_addr_xtext_round_trip(text: str) -> None:
    """utf-8-addr-xtext encoding is ASCII and decodes back, also as unitext."""
    encoded = utf8_addr_xtext_encode(text)
    assert encoded.isascii()
    assert utf8_addr_xtext_decode(encoded) == text
    assert utf8_addr_xtext_decode(encoded, unitext=True) == text


_printable = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)
_mailboxes = st.from_regex(
    r"[a-z0-9=+_-]{1,8}(\.[a-z0-9]{1,5})?@[a-z]{1,8}\.[a-z]{2,4}", fullmatch=True
)
_mail_params = st.builds(
    MailParams,
    size=st.none() | st.integers(min_value=0, max_value=10**20 - 1),
    body=st.none() | st.sampled_from(Body),
    smtputf8=st.booleans(),
    auth=st.none() | st.just("<>") | _mailboxes,
    ret=st.none() | st.sampled_from(Ret),
    envid=st.none() | _printable.filter(lambda s: 0 < len(xtext_encode(s)) <= 100),
    extra=st.lists(
        st.tuples(st.from_regex(r"X-[A-Z]{1,5}", fullmatch=True), st.none() | st.just("v")),
        max_size=2,
        unique_by=lambda kv: kv[0],
    ).map(tuple),
)


@settings(max_examples=200)
@given(params=_mail_params)
def test_mail_params_round_trip(params: MailParams) -> None:
    """parse_mail_params(format_mail_params(p)) == p for every valid MailParams."""
    text = format_mail_params(params)
    extra = [keyword for keyword, _ in params.extra]
    assert parse_mail_params(text, **ALL_MAIL, extra_keywords=extra) == params


_notify = (
    st.none()
    | st.just(frozenset({Notify.NEVER}))
    | st.frozensets(st.sampled_from([Notify.SUCCESS, Notify.FAILURE, Notify.DELAY]), min_size=1)
)
_orcpt = st.none() | st.builds(
    OriginalRecipient,
    addr_type=st.sampled_from(["rfc822", "RFC822", "utf-8", "x400"]),
    address=st.text(
        alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=20
    ),
)


@settings(max_examples=200)
@given(notify=_notify, orcpt=_orcpt)
def test_rcpt_params_round_trip(
    notify: frozenset[Notify] | None, orcpt: OriginalRecipient | None
) -> None:
    """parse_rcpt_params(format_rcpt_params(p)) == p, with and without SMTPUTF8."""
    params = RcptParams(notify=notify, orcpt=orcpt)
    text = format_rcpt_params(params)
    assert text.isascii()
    assert parse_rcpt_params(text, dsn=True, max_orcpt_length=10_000) == params
    assert parse_rcpt_params(text, dsn=True, utf8=True, max_orcpt_length=10_000) == params


@settings(max_examples=200)
@given(notify=_notify, orcpt=_orcpt)
def test_rcpt_params_round_trip_as_unitext(
    notify: frozenset[Notify] | None, orcpt: OriginalRecipient | None
) -> None:
    """In an SMTPUTF8 transaction the unitext form round-trips and is never longer."""
    params = RcptParams(notify=notify, orcpt=orcpt)
    text = format_rcpt_params(params, utf8=True)
    assert parse_rcpt_params(text, dsn=True, utf8=True, max_orcpt_length=10_000) == params
    assert len(text) <= len(format_rcpt_params(params))


def test_unitext_keeps_non_ascii_and_escapes_ascii_specials() -> None:
    """utf8_addr_unitext_encode leaves UTF-8 as is and escapes only +, = and backslash."""
    assert utf8_addr_unitext_encode("jö+p=\\@ü.example") == "jö\\x{2B}p\\x{3D}\\x{5C}@ü.example"
    assert utf8_addr_xtext_decode(utf8_addr_unitext_encode("jö+p"), unitext=True) == "jö+p"


def test_lone_surrogates_are_not_utf8_text() -> None:
    """The UTF-8 grammar classes refuse lone surrogates (RFC 6532 §3.1 UTF8-non-ascii)."""
    with pytest.raises(ValueError, match="utf-8-addr"):
        utf8_addr_xtext_decode("52\udcab", unitext=True)


def test_format_examples() -> None:
    """The formatters write canonical keyword order and spelling."""
    mail = MailParams(
        size=10, body=Body.EIGHT_BIT_MIME, smtputf8=True, auth="a=b@c", ret=Ret.FULL, envid="x y"
    )
    assert (
        format_mail_params(mail)
        == "SIZE=10 BODY=8BITMIME SMTPUTF8 AUTH=a+3Db@c RET=FULL ENVID=x+20y"
    )
    rcpt = RcptParams(
        notify=frozenset({Notify.DELAY, Notify.SUCCESS}),
        orcpt=OriginalRecipient(addr_type="rfc822", address="a+b@c"),
    )
    assert format_rcpt_params(rcpt) == "NOTIFY=SUCCESS,DELAY ORCPT=rfc822;a+2Bb@c"
    assert format_mail_params(MailParams()) == ""
    assert format_rcpt_params(RcptParams()) == ""


@pytest.mark.parametrize(
    "build",
    [
        lambda: MailParams(size=-1),
        lambda: MailParams(size=10**20),
        lambda: MailParams(envid=""),
        lambda: MailParams(auth=""),
        lambda: MailParams(auth="bob"),
        lambda: MailParams(extra=(("BAD KEY", None),)),
        lambda: MailParams(extra=(("X", "a\r\nRSET"),)),
        lambda: RcptParams(notify=frozenset()),
        lambda: RcptParams(notify=frozenset({Notify.NEVER, Notify.DELAY})),
        lambda: RcptParams(extra=(("X", ""),)),
        lambda: OriginalRecipient(addr_type="rfc 822", address="a@b"),
        lambda: OriginalRecipient(addr_type="rfc822", address=""),
        lambda: OriginalRecipient(addr_type="rfc822", address="a\nb"),
    ],
)
def test_values_refuse_invalid_construction(build: Any) -> None:
    """Parameter values built by the application are validated (no CRLF injection)."""
    with pytest.raises(ValueError, match=r"."):
        build()


_param_pieces = st.sampled_from(
    [
        *" =+,;<>@\\x{}AaFZ09-\u00e9\r\n\x00",
        *("SIZE", "BODY", "AUTH", "RET", "ENVID", "NOTIFY", "ORCPT", "SMTPUTF8", "8BITMIME"),
        *("utf-8;", "rfc822;", "+2B", "NEVER", "SUCCESS"),
    ]
)


def _parse_reply_code(parse: Any) -> int | None:
    try:
        parse()
    except ParameterError as error:
        return error.reply.code
    return None


@settings(max_examples=200)
@given(text=st.lists(_param_pieces, max_size=25).map("".join))
def test_arbitrary_parameter_text_parses_or_gets_a_reply(text: str) -> None:
    """Any parameter text parses, or raises ParameterError with a 5xx reply; nothing else."""
    for parse in (
        lambda: parse_mail_params(text, **ALL_MAIL, max_message_size=1000),
        lambda: parse_rcpt_params(text, dsn=True, utf8=True),
        lambda: parse_rcpt_params(text, dsn=True),
    ):
        assert _parse_reply_code(parse) in (None, 501, 552, 555)
