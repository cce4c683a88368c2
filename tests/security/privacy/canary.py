"""PHI canaries and the byte scan that looks for them wherever a leak could land.

A canary is a secret (a patient name, a birth date, a note; or raw key material) made unique
per run. The scan looks for every form a careless encoder could turn it into: the exact UTF-8
bytes, its JSON escapes (the short `ensure_ascii` form and every character as `\\uXXXX`),
base64 and base64url at each of the three alignments it can have inside a longer encoded
string, and hex. Both sides are case-folded (ASCII), which also catches upper-case hex and
`\\u00EB`; for base64 that makes the match looser, never stricter.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

#: Needles shorter than this would match by chance somewhere in megabytes of stores.
MIN_NEEDLE = 8


@dataclass(frozen=True, slots=True)
class Canary:
    """One secret to look for, named by what it stands for (`name`, `birth_date`, ...)."""

    kind: str
    secret: bytes

    @classmethod
    def text(cls, kind: str, value: str) -> Canary:
        return cls(kind, value.encode("utf-8"))

    def needles(self) -> dict[str, bytes]:
        """Every encoding scanned for, case-folded, by the encoding's name."""
        found: dict[str, bytes] = {"raw": self.secret}
        try:
            text = self.secret.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None:
            found["json"] = json.dumps(text)[1:-1].encode("ascii")
            found["json-all-escaped"] = "".join(_u_escape(c) for c in text).encode("ascii")
        for shift in range(3):
            found[f"base64+{shift}"] = _aligned(base64.b64encode, self.secret, shift)
            found[f"base64url+{shift}"] = _aligned(base64.urlsafe_b64encode, self.secret, shift)
        found["hex"] = self.secret.hex().encode("ascii")
        return {name: needle.lower() for name, needle in found.items() if len(needle) >= MIN_NEEDLE}


def _u_escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000  # a UTF-16 surrogate pair, as JSON writes characters beyond the BMP
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def _aligned(encode: Callable[[bytes], bytes], secret: bytes, shift: int) -> bytes:
    """The base64 characters that depend on `secret` alone when it starts `shift` bytes into
    the encoded data (the characters it shares with its neighbours are cut off)."""
    encoded = encode(b"\0" * shift + secret)
    first = -(-8 * shift // 6)  # the first character whose 6 bits all come from `secret`
    last = 8 * (shift + len(secret)) // 6
    return encoded[first:last]


@dataclass(frozen=True, slots=True)
class Leak:
    where: str
    kind: str
    encoding: str


def find_leaks(places: Mapping[str, bytes], canaries: Iterable[Canary]) -> list[Leak]:
    """Every (place, canary, encoding) where a canary shows; empty means none was found."""
    needles = [
        (canary.kind, name, needle)
        for canary in canaries
        for name, needle in canary.needles().items()
    ]
    leaks = []
    for where, content in places.items():
        folded = content.lower()
        leaks += [Leak(where, kind, name) for kind, name, needle in needles if needle in folded]
    return leaks
