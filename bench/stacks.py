"""Summaries of py-spy's raw (collapsed) stack output: where the samples are spent.

Each line of `py-spy record --format raw` is `frame;frame;...;leaf COUNT`, a frame being
`function (file:line)`. Self time is counted at the leaf; inclusive time once per
function per stack.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

__all__ = ["summarise"]

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")


def _name(frame: str) -> str:
    """`function (path:line)` -> `function (short/path)`, line numbers dropped."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    path = match["file"]
    for marker in ("/src/", "/site-packages/", "/bench/", "/lib/python3"):
        if marker in path:
            path = path[path.index(marker) + len(marker) :]
            break
    return f"{match['func']} ({path})"


def summarise(raw: Path, top: int = 15) -> str:
    """A plain-text table of the top functions by self and by inclusive samples."""
    self_counts: Counter[str] = Counter()
    incl_counts: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_name(f) for f in stack.split(";")]
        self_counts[frames[-1]] += count
        for name in set(frames):
            incl_counts[name] += count
    if total == 0:
        return "(no samples)"
    lines = [f"{total} samples", "", "self%  function (file)"]
    lines += [f"{100 * n / total:5.1f}  {name}" for name, n in self_counts.most_common(top)]
    lines += ["", "incl%  function (file)"]
    lines += [f"{100 * n / total:5.1f}  {name}" for name, n in incl_counts.most_common(top)]
    return "\n".join(lines)
