"""Minger queries through the codec and the decision function, in process.

One operation: `answer_datagram` on a signed query datagram (decode, digest check,
directory lookup, decide), then `encode_response` of the answer: all a Minger server does
per datagram besides the socket calls. The queries cycle over known, unknown and
disabled mailboxes so every branch of the directory answer is taken.
"""

from __future__ import annotations

from collections.abc import Callable

import minger

__all__ = ["batch"]

SECRET = "0123456789abcdef0123"
_DIRECTORY = {
    "alice@example.test": minger.Status.ACTIVE,
    "bob@example.test": minger.Status.DISABLED,
}


def _lookup(mailbox: str) -> minger.Status:
    return _DIRECTORY.get(mailbox.lower(), minger.Status.NOT_FOUND)


def batch() -> Callable[[int], None]:
    """n datagrams answered and encoded."""
    datagrams = [
        minger.encode_query(minger.make_query(mailbox, secret=SECRET))
        for mailbox in ("alice@example.test", "bob@example.test", "nobody@example.test")
    ]

    def run(n: int) -> None:
        count = len(datagrams)
        for i in range(n):
            answer = minger.answer_datagram(
                datagrams[i % count],
                peer_allowed=True,
                secret=SECRET,
                allow_anonymous=False,
                lookup=_lookup,
            )
            if answer.response is None:
                raise AssertionError(answer.error)
            minger.encode_response(answer.response)

    return run
