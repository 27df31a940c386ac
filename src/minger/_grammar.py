"""Wire grammar of Minger queries and responses (draft-hathcock-minger-06 §2.1, §3).

The draft's ABNF is quoted next to each expression. The draft points at RFC 2821 for
``mailbox``; we use its successor RFC 5321 §4.1.2, which also allows a dotless domain.

Where we deviate from the letter of the ABNF, and why:

- No space, in the local part or anywhere else: the query is split on SP, so a quoted
  local part containing a space (RFC 5321 allows ``"john doe"@example.com``) cannot be
  carried unambiguously (research notes §4). Such mailboxes are rejected, not guessed at.
- US-ASCII only: the draft has no SMTPUTF8 provision (notes §4).
- Reading is tolerant where no legal field can be confused (notes §1, §3, §8): trailing
  CR, LF and SP are stripped, runs of SP separate fields, and a response may be a bare
  status digit. Everything else is strict.
"""

import re

__all__ = [
    "DEFAULT_PORT",
    "MAX_DATAGRAM",
    "MAX_LOCAL_PART",
    "MAX_MAILBOX",
    "MAX_SECRET",
    "is_vchar_text",
]

#: The UDP port IANA assigned to Minger (-06 §2, §6).
DEFAULT_PORT = 4069

#: Largest datagram we send or accept, in bytes. The draft sets no limit; the research
#: notes §4 advise keeping datagrams within 512 bytes (the largest legal query without tags
#: is about 350 bytes; mingerd reads at most 1023).
MAX_DATAGRAM = 512

#: RFC 5321 §4.5.3.1.1: the local part is at most 64 octets.
MAX_LOCAL_PART = 64
#: RFC 5321 §4.5.3.1.3: a path is at most 256 octets with its angle brackets. This also
#: keeps the domain within its 255 octets (§4.5.3.1.2).
MAX_MAILBOX = 254

#: -06 §2.1: ``shared-secret = 1*50(VCHAR)``.
MAX_SECRET = 50

# RFC 5321 §4.1.2:
#   Local-part     = Dot-string / Quoted-string
#   Dot-string     = Atom *("."  Atom)
#   Atom           = 1*atext
#   Quoted-string  = DQUOTE *QcontentSMTP DQUOTE
#   QcontentSMTP   = qtextSMTP / quoted-pairSMTP
#   quoted-pairSMTP = %d92 %d32-126
#   qtextSMTP      = %d32-33 / %d35-91 / %d93-126
# %d32 (SP) is left out of both quoted forms: see the module docstring.
_ATEXT = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]"
_DOT_STRING = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_QUOTED_STRING = r'"(?:[\x21\x23-\x5b\x5d-\x7e]|\\[\x21-\x7e])*"'
LOCAL_PART = re.compile(rf"(?:{_DOT_STRING}|{_QUOTED_STRING})")

# RFC 5321 §4.1.2 (Domain), §4.1.3 (address-literal):
#   Domain         = sub-domain *("." sub-domain)
#   sub-domain     = Let-dig [Ldh-str]
#   Ldh-str        = *( ALPHA / DIGIT / "-" ) Let-dig
#   address-literal = "[" ( IPv4-address-literal / IPv6-address-literal /
#                     General-address-literal ) "]"
#   dcontent       = %d33-90 / %d94-126
# Address literals are checked only as "[" 1*dcontent "]": the directory decides
# whether such an address exists.
_SUB_DOMAIN = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
DOMAIN = re.compile(rf"(?:{_SUB_DOMAIN}(?:\.{_SUB_DOMAIN})*|\[[\x21-\x5a\x5e-\x7e]+\])")

# -06 §2.1:
#   digest = base64                   ; digest for security
# The digest is base64 (RFC 4648 §4, with padding) of a 16-byte MD5 value: always 22
# significant characters then "==". The last significant character carries 2 bits of
# padding, which must be zero, so it is one of A, Q, g, w (canonical form).
DIGEST = re.compile(r"[A-Za-z0-9+/]{21}[AQgw]==")

# -06 §2.1:
#   tag-spec = tag-name "=" tag-value
#   tag-name = 1 * ( ALPHA / DIGIT / "_") ; except 'd'
#   tag-value = 1 * (ALPHA / DIGIT / "_")
TAG_TEXT = re.compile(r"[A-Za-z0-9_]+")
TAG_SPEC = re.compile(r"([A-Za-z0-9_]+)=([A-Za-z0-9_]+)")

# RFC 5234 appendix B.1: VCHAR = %x21-7E (visible printing US-ASCII).
_VCHAR_TEXT = re.compile(r"[\x21-\x7e]+")


def is_vchar_text(text: str) -> bool:
    """Tell whether ``text`` is one or more visible US-ASCII characters (RFC 5234 VCHAR)."""
    return _VCHAR_TEXT.fullmatch(text) is not None
