"""The SMTP envelope grammar as compiled regular expressions.

Each pattern quotes the ABNF it implements. Sources:

- RFC 5321 §4.1.2 (command argument syntax) and §4.1.3 (address literals),
  with ``atext`` from RFC 5322 §3.2.3;
- RFC 6531 §3.3 (SMTPUTF8: UTF-8 in atext, qtextSMTP, sub-domain, esmtp-value);
- RFC 3461 §4 (xtext) and §4.2 (ORCPT);
- RFC 6533 §3 (utf-8-addr-xtext and utf-8-addr-unitext for the "utf-8" address type);
- RFC 1870 §3 (SIZE value).

Everything here works on ``str``: the engine decodes a command line as UTF-8 before
parsing, so "UTF8-non-ascii" (RFC 6532 §3.1: UTF8-2 / UTF8-3 / UTF8-4) is any code point
at or above U+0080. Those classes only appear in the ``*_UTF8`` variants, used after
``SMTPUTF8`` is in force.

Deviations, all deliberate:

- Lengths (local part 64, domain 255, path 256, RFC 5321 §4.5.3.1) are not in the
  patterns; ``_address`` checks them *before* matching, so no pattern ever runs on
  more than a few hundred characters.
- ``IPv4-address-literal`` and ``IPv6-address-literal`` are matched loosely here and then
  validated by :mod:`ipaddress`, which also rejects IPv4 octets with leading zeros (the
  ABNF ``Snum = 1*3DIGIT`` allows "010", which some resolvers read as octal).
- ``General-address-literal`` is recognised but refused by ``_address``: no standardized
  tag besides "IPv6" has ever been registered (RFC 5321 §4.1.3 requires one).
- U-labels (RFC 6531 §3.3 ``sub-domain =/ U-label``) are matched as runs of letters,
  digits, marks and hyphens; full IDNA 2008 validation (RFC 5891) needs Unicode tables
  we do not ship. ``_address`` adds the per-character category check.
"""

from __future__ import annotations

import re

__all__ = [
    "ADDRESS_LITERAL",
    "ATOM",
    "DOMAIN",
    "DOMAIN_UTF8",
    "DOT_STRING",
    "DOT_STRING_UTF8",
    "ESMTP_KEYWORD",
    "ESMTP_VALUE",
    "ESMTP_VALUE_UTF8",
    "GENERAL_ADDRESS_LITERAL",
    "IPV4_ADDRESS_LITERAL",
    "IPV6_ADDRESS_LITERAL",
    "MAILBOX",
    "MAILBOX_UTF8",
    "QUOTED_PAIR",
    "QUOTED_STRING",
    "QUOTED_STRING_UTF8",
    "SIZE_VALUE",
    "UTF8_ADDR_UNITEXT",
    "UTF8_ADDR_XTEXT",
    "XTEXT",
    "XTEXT_UTF8",
]

# --- RFC 5322 §3.2.3 / RFC 6531 §3.3 -----------------------------------------------
#   atext = ALPHA / DIGIT / "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "/" /
#           "=" / "?" / "^" / "_" / "`" / "{" / "|" / "}" / "~"
#   atext =/ UTF8-non-ascii                                   ; RFC 6531 §3.3
_ATEXT = r"A-Za-z0-9!#$%&'*+\-/=?^_`{|}~"
# UTF8-non-ascii (RFC 6532 §3.1) is UTF-8 of scalar values: surrogates are not characters.
_UTF8_NON_ASCII = r"\u0080-\ud7ff\ue000-\U0010ffff"

# --- RFC 5321 §4.1.2 ------------------------------------------------------------------
#   Atom       = 1*atext
#   Dot-string = Atom *("."  Atom)
_ATOM = rf"[{_ATEXT}]+"
_ATOM_UTF8 = rf"[{_ATEXT}{_UTF8_NON_ASCII}]+"
_DOT_STRING = rf"{_ATOM}(?:\.{_ATOM})*"
_DOT_STRING_UTF8 = rf"{_ATOM_UTF8}(?:\.{_ATOM_UTF8})*"

#   Quoted-string   = DQUOTE *QcontentSMTP DQUOTE
#   QcontentSMTP    = qtextSMTP / quoted-pairSMTP
#   quoted-pairSMTP = %d92 %d32-126          ; backslash followed by any ASCII graphic
#                                            ; (including itself) or SPace
#   qtextSMTP       = %d32-33 / %d35-91 / %d93-126
#   qtextSMTP       =/ UTF8-non-ascii                         ; RFC 6531 §3.3
_QTEXT = r"\x20\x21\x23-\x5b\x5d-\x7e"
_QUOTED_PAIR = r"\\[\x20-\x7e]"
_QUOTED_STRING = rf'"(?:[{_QTEXT}]|{_QUOTED_PAIR})*"'
_QUOTED_STRING_UTF8 = rf'"(?:[{_QTEXT}{_UTF8_NON_ASCII}]|{_QUOTED_PAIR})*"'

#   Domain     = sub-domain *("." sub-domain)
#   sub-domain = Let-dig [Ldh-str]
#   Let-dig    = ALPHA / DIGIT
#   Ldh-str    = *( ALPHA / DIGIT / "-" ) Let-dig
#   sub-domain =/ U-label                                     ; RFC 6531 §3.3
_SUB_DOMAIN = r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
_LET_DIG_UTF8 = rf"[A-Za-z0-9{_UTF8_NON_ASCII}]"
_SUB_DOMAIN_UTF8 = rf"{_LET_DIG_UTF8}(?:[A-Za-z0-9\-{_UTF8_NON_ASCII}]*{_LET_DIG_UTF8})?"
_DOMAIN = rf"{_SUB_DOMAIN}(?:\.{_SUB_DOMAIN})*"
_DOMAIN_UTF8 = rf"{_SUB_DOMAIN_UTF8}(?:\.{_SUB_DOMAIN_UTF8})*"

# --- RFC 5321 §4.1.3 ------------------------------------------------------------------
#   address-literal  = "[" ( IPv4-address-literal / IPv6-address-literal /
#                            General-address-literal ) "]"
#   IPv4-address-literal    = Snum 3("."  Snum)
#   Snum                    = 1*3DIGIT     ; representing a decimal integer 0..255
#   IPv6-address-literal    = "IPv6:" IPv6-addr
#   General-address-literal = Standardized-tag ":" 1*dcontent
#   Standardized-tag        = Ldh-str
#   dcontent                = %d33-90 / %d94-126   ; Printable US-ASCII, excl. "[", "\", "]"
# ABNF quoted strings are case-insensitive (RFC 5234 §2.3), so "ipv6:" is accepted too.
# The IPv6 body is only a character class here; ipaddress validates it (and the class
# keeps out the "%scope" suffix that ipaddress would otherwise accept).
_IPV4_ADDRESS_LITERAL = r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}"
_IPV6_ADDRESS_LITERAL = r"[Ii][Pp][Vv]6:[0-9A-Fa-f:.]+"
_GENERAL_ADDRESS_LITERAL = r"[A-Za-z0-9\-]*[A-Za-z0-9]:[\x21-\x5a\x5e-\x7e]+"
_ADDRESS_LITERAL = r"\[[^\[\]\\]+\]"

#   Mailbox    = Local-part "@" ( Domain / address-literal )
#   Local-part = Dot-string / Quoted-string
_MAILBOX = rf"(?P<local>{_DOT_STRING}|{_QUOTED_STRING})@(?P<domain>{_DOMAIN}|{_ADDRESS_LITERAL})"
_MAILBOX_UTF8 = (
    rf"(?P<local>{_DOT_STRING_UTF8}|{_QUOTED_STRING_UTF8})"
    rf"@(?P<domain>{_DOMAIN_UTF8}|{_ADDRESS_LITERAL})"
)

#   esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
#   esmtp-value   = 1*(%d33-60 / %d62-126)   ; any CHAR excluding "=", SP, and controls
#   esmtp-value   =/ UTF8-non-ascii                           ; RFC 6531 §3.3
_ESMTP_KEYWORD = r"[A-Za-z0-9][A-Za-z0-9\-]*"
_ESMTP_VALUE = r"[\x21-\x3c\x3e-\x7e]+"
_ESMTP_VALUE_UTF8 = rf"[\x21-\x3c\x3e-\x7e{_UTF8_NON_ASCII}]+"

# --- RFC 3461 §4 ----------------------------------------------------------------------
#   xtext   = *( xchar / hexchar )
#   xchar   = any ASCII CHAR between "!" (33) and "~" (126) inclusive,
#             except for "+" and "=".
#   hexchar = ASCII "+" immediately followed by two upper case hexadecimal digits
# Upper case only, as written: "+2b" is not xtext. Being strict costs nothing here
# because every encoder we know of (ours included) writes upper case.
_XTEXT = r"(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})*"
# After SMTPUTF8, RFC 6531 §3.3 lets every esmtp-value carry UTF8-non-ascii; for the
# xtext-valued parameters (AUTH, ENVID, ORCPT) we read that as raw UTF-8 xchars.
_XTEXT_UTF8 = rf"(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e{_UTF8_NON_ASCII}]|\+[0-9A-F]{{2}})*"

# --- RFC 6533 §3 ----------------------------------------------------------------------
#   utf-8-addr-xtext    = 1*(QCHAR / EmbeddedUnicodeChar)
#   utf-8-addr-unitext  = 1*(QUCHAR / EmbeddedUnicodeChar)
#   QCHAR    = %x21-2a / %x2c-3c / %x3e-5b / %x5d-7e
#              ; ASCII printable characters except CTLs, SP, '\', '+' and '='
#   QUCHAR   = QCHAR / UTF8-2 / UTF8-3 / UTF8-4
#   EmbeddedUnicodeChar = %x5C.78 "{" HEXPOINT "}"    ; "\x{...}"
#   HEXPOINT = 2*6 upper case HEXDIG naming a Unicode scalar value
# Deviation: RFC 6533 spells HEXPOINT as an enumeration that forbids surrogates and
# non-shortest forms; the pattern takes 1*6 HEXDIG and ``_params`` checks the value
# range, which is the same set of strings minus the enumeration's bulk.
_QCHAR = r"\x21-\x2a\x2c-\x3c\x3e-\x5b\x5d-\x7e"
_EMBEDDED_UNICODE_CHAR = r"\\x\{[0-9A-F]{1,6}\}"
_UTF8_ADDR_XTEXT = rf"(?:[{_QCHAR}]|{_EMBEDDED_UNICODE_CHAR})+"
_UTF8_ADDR_UNITEXT = rf"(?:[{_QCHAR}{_UTF8_NON_ASCII}]|{_EMBEDDED_UNICODE_CHAR})+"

# --- RFC 1870 §3 ----------------------------------------------------------------------
#   size-value ::= 1*20DIGIT
# The digit cap also keeps int() away from huge strings (its cost is quadratic).
_SIZE_VALUE = r"[0-9]{1,20}"


def _full(pattern: str) -> re.Pattern[str]:
    """Compiles a pattern meant to be used with ``fullmatch`` only."""
    return re.compile(pattern)


ATOM = _full(_ATOM)
DOT_STRING = _full(_DOT_STRING)
DOT_STRING_UTF8 = _full(_DOT_STRING_UTF8)
QUOTED_PAIR = _full(_QUOTED_PAIR)
QUOTED_STRING = _full(_QUOTED_STRING)
QUOTED_STRING_UTF8 = _full(_QUOTED_STRING_UTF8)
DOMAIN = _full(_DOMAIN)
DOMAIN_UTF8 = _full(_DOMAIN_UTF8)
ADDRESS_LITERAL = _full(_ADDRESS_LITERAL)
IPV4_ADDRESS_LITERAL = _full(_IPV4_ADDRESS_LITERAL)
IPV6_ADDRESS_LITERAL = _full(_IPV6_ADDRESS_LITERAL)
GENERAL_ADDRESS_LITERAL = _full(_GENERAL_ADDRESS_LITERAL)
MAILBOX = _full(_MAILBOX)
MAILBOX_UTF8 = _full(_MAILBOX_UTF8)
ESMTP_KEYWORD = _full(_ESMTP_KEYWORD)
ESMTP_VALUE = _full(_ESMTP_VALUE)
ESMTP_VALUE_UTF8 = _full(_ESMTP_VALUE_UTF8)
XTEXT = _full(_XTEXT)
XTEXT_UTF8 = _full(_XTEXT_UTF8)
UTF8_ADDR_XTEXT = _full(_UTF8_ADDR_XTEXT)
UTF8_ADDR_UNITEXT = _full(_UTF8_ADDR_UNITEXT)
SIZE_VALUE = _full(_SIZE_VALUE)
