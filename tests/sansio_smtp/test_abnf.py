"""The grammar patterns of _abnf match exactly what their RFC ABNF allows."""

from __future__ import annotations

import re

import pytest

from sansio_smtp import _abnf


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        (_abnf.DOT_STRING, "first.last", True),
        (_abnf.DOT_STRING, "a!#$%&'*+-/=?^_`{|}~z", True),
        (_abnf.DOT_STRING, ".lead", False),
        (_abnf.DOT_STRING, "trail.", False),
        (_abnf.DOT_STRING, "two..dots", False),
        (_abnf.DOT_STRING, "sp ace", False),
        (_abnf.DOT_STRING, "jörg", False),
        (_abnf.DOT_STRING_UTF8, "jörg.日本", True),
        (_abnf.QUOTED_STRING, '""', True),
        (_abnf.QUOTED_STRING, '"a b@c"', True),
        (_abnf.QUOTED_STRING, '"a\\"b"', True),
        (_abnf.QUOTED_STRING, '"a"b"', False),
        (_abnf.QUOTED_STRING, '"tab\tin"', False),
        (_abnf.QUOTED_STRING, '"a\\\tb"', False),
        (_abnf.QUOTED_STRING, '"ü"', False),
        (_abnf.QUOTED_STRING_UTF8, '"ü x"', True),
        (_abnf.DOMAIN, "example.com", True),
        (_abnf.DOMAIN, "localhost", True),
        (_abnf.DOMAIN, "a-b.c0", True),
        (_abnf.DOMAIN, "-a.com", False),
        (_abnf.DOMAIN, "a-.com", False),
        (_abnf.DOMAIN, "a..com", False),
        (_abnf.DOMAIN, "example.com.", False),
        (_abnf.DOMAIN, "under_score.com", False),
        (_abnf.DOMAIN_UTF8, "bücher.de", True),
        (_abnf.IPV4_ADDRESS_LITERAL, "192.0.2.1", True),
        (_abnf.IPV4_ADDRESS_LITERAL, "1.2.3", False),
        (_abnf.IPV6_ADDRESS_LITERAL, "IPv6:2001:db8::1", True),
        (_abnf.IPV6_ADDRESS_LITERAL, "ipv6:::1", True),
        (_abnf.IPV6_ADDRESS_LITERAL, "IPv6:fe80::1%eth0", False),
        (_abnf.GENERAL_ADDRESS_LITERAL, "x-tag:stuff", True),
        (_abnf.ESMTP_KEYWORD, "X-FOO", True),
        (_abnf.ESMTP_KEYWORD, "-FOO", False),
        (_abnf.ESMTP_VALUE, "a<b>c", True),
        (_abnf.ESMTP_VALUE, "a=b", False),
        (_abnf.ESMTP_VALUE, "", False),
        (_abnf.ESMTP_VALUE, "ü", False),
        (_abnf.ESMTP_VALUE_UTF8, "ü", True),
        (_abnf.XTEXT, "", True),
        (_abnf.XTEXT, "a+2Bb", True),
        (_abnf.XTEXT, "a+2bb", False),
        (_abnf.XTEXT, "a+2", False),
        (_abnf.XTEXT, "a=b", False),
        (_abnf.XTEXT, "a b", False),
        (_abnf.UTF8_ADDR_XTEXT, "j\\x{F6}rg@x", True),
        (_abnf.UTF8_ADDR_XTEXT, "j\\x{f6}rg@x", False),
        (_abnf.UTF8_ADDR_XTEXT, "a+b", False),
        (_abnf.UTF8_ADDR_XTEXT, "jörg", False),
        (_abnf.UTF8_ADDR_UNITEXT, "jörg", True),
        (_abnf.SIZE_VALUE, "0", True),
        (_abnf.SIZE_VALUE, "9" * 20, True),
        (_abnf.SIZE_VALUE, "9" * 21, False),
        (_abnf.SIZE_VALUE, "-1", False),
    ],
)
def test_pattern_table(pattern: re.Pattern[str], text: str, matches: bool) -> None:
    """Each pattern accepts the RFC's examples and refuses the near misses."""
    assert bool(pattern.fullmatch(text)) is matches


def test_mailbox_groups_split_at_the_right_at_sign() -> None:
    """A quoted local part may hold "@": the groups split at the domain's "@"."""
    match = _abnf.MAILBOX.fullmatch('"a@b"@example.com')
    assert match is not None
    assert match.group("local") == '"a@b"'
    assert match.group("domain") == "example.com"


def test_ascii_patterns_refuse_every_non_ascii_character() -> None:
    """Without SMTPUTF8 no pattern lets a non-ASCII character through."""
    for pattern in (_abnf.MAILBOX, _abnf.ESMTP_VALUE, _abnf.XTEXT, _abnf.UTF8_ADDR_XTEXT):
        assert not pattern.fullmatch("a\u00e9@b.c")
