"""Hypothesis strategies for valid Minger messages, shared by the minger tests."""

from hypothesis import strategies as st

import minger

ATEXT = "abcXYZ019!#$%&'*+-/=?^_`{|}~"
TAG_ALPHABET = "abcdDxyzXYZ019_"
QTEXT = "abc XYZ019!#$%&'()*+,-./:;<=>?@[]^_`{|}~"

atoms = st.text(alphabet=ATEXT, min_size=1, max_size=8)
dot_strings = st.lists(atoms, min_size=1, max_size=4).map(".".join)
quoted_content = st.lists(
    st.sampled_from(list(QTEXT.replace(" ", ""))) | st.sampled_from(['\\"', "\\\\", "\\a"]),
    max_size=10,
).map("".join)
quoted_strings = quoted_content.map(lambda s: f'"{s}"')
local_parts = st.one_of(dot_strings, quoted_strings).filter(
    lambda s: len(s) <= minger.MAX_LOCAL_PART
)
labels = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9-]{0,8}[A-Za-z0-9])?", fullmatch=True)
domains = st.one_of(
    st.lists(labels, min_size=1, max_size=4).map(".".join),
    st.just("[192.0.2.1]"),
    st.just("[IPv6:2001:db8::1]"),
)
mailboxes = st.builds(lambda local, domain: f"{local}@{domain}", local_parts, domains)
secrets = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E),
    min_size=1,
    max_size=minger.MAX_SECRET,
)
tag_texts = st.text(alphabet=TAG_ALPHABET, min_size=1, max_size=6)
tag_lists = st.dictionaries(tag_texts.filter(lambda n: n != "d"), tag_texts, max_size=4).map(
    lambda d: tuple(d.items())
)


@st.composite
def queries(draw: st.DrawFn) -> minger.Query:
    """A valid query: signed or anonymous, with or without tags."""
    mailbox = draw(mailboxes)
    secret = draw(st.none() | secrets)
    return minger.make_query(mailbox, secret=secret, tags=draw(tag_lists))


responses = st.builds(
    lambda mailbox, status: minger.Response(mailbox=mailbox, status=status),
    st.none() | mailboxes,
    st.sampled_from(minger.Status),
)
