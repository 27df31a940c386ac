"""Helpers shared by the harnesses: a structured-input reader and the atheris launcher.

Nothing here imports atheris at module level: the harnesses must stay importable (and
their ``test_one_input`` callable) where atheris is not installed.
"""

from __future__ import annotations

import gc
import sys
import types
from collections.abc import Callable, Sequence
from typing import TypeVar

__all__ = ["ByteProvider", "run_fuzzer"]

T = TypeVar("T")


class ByteProvider:
    """Reads typed values off the front of a fuzz input, deterministically.

    A pure-Python stand-in for ``atheris.FuzzedDataProvider`` (same idea, snake_case
    names). It is used even under atheris so that one input means the same session with
    or without atheris: a crash found by the fuzzer replays byte for byte in the corpus
    and regression tests. Once the data runs out every method returns its smallest value.
    """

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def remaining(self) -> int:
        """Returns how many input bytes are left."""
        return len(self._data) - self._pos

    def consume_bytes(self, count: int) -> bytes:
        """Returns up to ``count`` raw bytes (fewer when the input ends)."""
        chunk = self._data[self._pos : self._pos + max(count, 0)]
        self._pos += len(chunk)
        return chunk

    def consume_int(self, low: int, high: int) -> int:
        """Returns an integer in ``[low, high]`` built from just enough bytes."""
        span = high - low
        if span <= 0:
            return low
        width = (span.bit_length() + 7) // 8
        raw = self.consume_bytes(width)
        return low + int.from_bytes(raw, "big") % (span + 1)

    def consume_bool(self) -> bool:
        """Returns one bit of decision."""
        return self.consume_int(0, 1) == 1

    def consume_sized_bytes(self, max_len: int) -> bytes:
        """Returns a length-prefixed byte string of at most ``max_len`` bytes."""
        return self.consume_bytes(self.consume_int(0, max_len))

    def consume_text(self, max_len: int) -> str:
        """Returns a length-prefixed string (UTF-8 decoded, invalid bytes replaced)."""
        return self.consume_sized_bytes(max_len).decode("utf-8", "replace")

    def pick(self, choices: Sequence[T]) -> T:
        """Returns one element of a non-empty sequence."""
        return choices[self.consume_int(0, len(choices) - 1)]


def _instrument_packages(atheris: types.ModuleType, packages: Sequence[str]) -> int:
    """Instruments every loaded function of the given packages; returns how many."""
    count = 0
    for obj in gc.get_objects():
        if not isinstance(obj, types.FunctionType):
            continue
        module = getattr(obj, "__module__", None) or ""
        if any(module == p or module.startswith(p + ".") for p in packages):
            atheris.instrument_func(obj)
            count += 1
    return count


def run_fuzzer(test_one_input: Callable[[bytes], None], *, packages: Sequence[str]) -> None:
    """Starts libFuzzer on ``test_one_input`` with coverage from ``packages``.

    The harness module has already imported the packages (it needs their names for its
    types), so instead of ``atheris.instrument_imports`` this patches the bytecode of
    every function they define, which also keeps ``isinstance`` checks working.
    """
    import atheris  # optional dependency, only needed to fuzz

    count = _instrument_packages(atheris, packages)
    sys.stderr.write(f"INFO: instrumented {count} functions from {', '.join(packages)}\n")
    # Let libFuzzer see str.startswith/endswith arguments, as it sees == comparisons.
    atheris.enabled_hooks.add("str")
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
