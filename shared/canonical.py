"""The one canonical encoder: RFC 8785 JSON Canonicalization Scheme (JCS) bytes.

`rfc8785` is the reference. Most ledger values (events, block headers, attestations) hold only
strings, small integers, booleans and nulls; for those the standard library's C encoder
produces byte-for-byte the same output at a quarter of the cost, so it is used as a fast path
when, and only when, that equality is guaranteed:

- no floats anywhere: JCS prints numbers the ECMAScript way (``1.0`` -> ``1``, ``1e+30``),
  `json` prints Python's ``repr``;
- every integer within ±(2**53 - 1): JCS refuses the others, `json` prints them;
- every object key a `str` within the Basic Multilingual Plane: JCS sorts keys by UTF-16 code
  units, `sort_keys` by code points, and the two orders agree exactly when no key holds a
  surrogate pair (an astral character such as an emoji sorts *before* U+E000..U+FFFF in
  UTF-16);
- only the exact built-in types: subclasses (enums, dict subclasses) go to the reference;
- no lone surrogates: `json` would emit them and the UTF-8 encode fails, in which case the
  reference decides (it rejects them too).

String escaping needs no condition: with ``ensure_ascii=False`` both escape exactly ``"``,
``\\`` and U+0000..U+001F, using ``\\b \\f \\n \\r \\t`` and lower-case ``\\u00xx`` otherwise.

The fast path calls the C encoder `json.dumps` would build, made once (`_ENCODE`) rather than
on every call. ``json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``
makes a `json.JSONEncoder` whose ``encode`` returns ``encode_basestring(value)`` for a string
and otherwise joins the chunks of ``make_encoder({}, default, encode_basestring, None, ":",
",", True, False, True)(value, 0)``, ``encode_basestring`` being the C one. `_ENCODE` has the
same arguments but one, and writes a top-level string with that same C function. The one is
``markers``, the circular-reference check, None here: it cannot matter, because
`_fast_path_is_exact` has already recursed into every container, so a circular value never
gets past it (it ends in RecursionError). An encoder of C functions with no per-call state is
safe to share between calls and threads.
"""

from __future__ import annotations

import json
import re
from _json import encode_basestring, make_encoder
from collections.abc import Iterable
from typing import Final, cast

import rfc8785

from shared.errors import CareLedgerError

__all__ = [
    "MAX_SAFE_INTEGER",
    "CanonicalizationError",
    "canonicalize",
    "parse_canonical",
    "parse_json",
    "read_canonical",
]

#: The integers an IEEE 754 double represents exactly; RFC 8785 (via I-JSON) allows no others
#: (a larger magnitude has no canonical form, so nothing holding one can be hashed or signed).
MAX_SAFE_INTEGER: Final = 2**53 - 1
_LAST_BMP_CHARACTER: Final = "\uffff"
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
_SCALARS: Final = frozenset({str, bool, type(None)})
# json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False), built once; see above.
_ENCODE: Final = make_encoder(
    None, json.JSONEncoder().default, encode_basestring, None, ":", ",", True, False, True
)


class _NotExact(Exception):  # noqa: N818 - an internal signal, never escapes this module
    """A token `read_canonical` cannot vouch for without a walk: a float, NaN/Infinity, or an
    integer beyond ±(2**53 - 1)."""


def _not_exact(_token: str) -> object:
    raise _NotExact


def _exact_int(token: str) -> int:
    number = int(token)
    if -MAX_SAFE_INTEGER <= number <= MAX_SAFE_INTEGER:
        return number
    raise _NotExact


# The standard library's reader without a hook per object, refusing floats (JCS prints them
# the ECMAScript way), NaN/Infinity (not JSON) and unsafe integers (JCS has no form for them):
# what it returns holds exactly dict, list, str, int within ±(2**53 - 1), bool and None. Its
# only state is the scanner's cache of member names, cleared after each call: one can be
# shared between calls and threads.
_EXACT_READER: Final = json.JSONDecoder(
    parse_float=_not_exact, parse_constant=_not_exact, parse_int=_exact_int
)


class CanonicalizationError(CareLedgerError):
    """The value has no RFC 8785 form: a non-JSON type, a NaN/infinity, an unsafe integer,
    a non-string key, a lone surrogate, or nesting too deep (or circular)."""


def canonicalize(value: object) -> bytes:
    """Return the RFC 8785 (JCS) bytes of a JSON value made of dict/list/tuple/str/int/float/
    bool/None; raise `CanonicalizationError` for anything else."""
    try:
        if _fast_path_is_exact(value):
            try:
                return "".join(_ENCODE(value, 0)).encode("utf-8")
            except UnicodeEncodeError:
                pass  # a lone surrogate: let the reference give its verdict
        # The reference is also the judge of values that are not JSON at all.
        return rfc8785.dumps(value)  # type: ignore[arg-type]
    except RecursionError as exc:
        raise CanonicalizationError("value is nested too deeply (or is circular)") from exc
    except (ValueError, TypeError) as exc:
        # rfc8785's own errors are ValueErrors; a lone surrogate in a key escapes its sort
        # as UnicodeEncodeError, also a ValueError.
        raise CanonicalizationError(f"value has no RFC 8785 form: {exc}") from exc


def _fast_path_is_exact(value: object) -> bool:
    """True when `json.dumps(sort_keys=True)` provably equals RFC 8785 for `value`.

    Scalars inside containers are checked inline rather than by recursion: this walk runs on
    every event, and a function call per leaf would cost as much as the encoding it saves.
    """
    kind = type(value)
    if kind is dict:
        items: Iterable[tuple[object, object]] = cast("dict[object, object]", value).items()
    elif kind is list or kind is tuple:
        # Indices stand in for keys; being ints they skip the key check below.
        items = enumerate(cast("list[object]", value))
    else:
        return _scalar_is_exact(value)
    for key, item in items:
        if type(key) is str:
            if not key.isascii() and max(key) > _LAST_BMP_CHARACTER:
                return False
        elif kind is dict:
            return False  # json would stringify the key; JCS refuses it
        item_kind = type(item)
        if item_kind in _SCALARS:
            continue
        if item_kind is int:
            if -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:  # type: ignore[operator]
                continue
            return False
        if not _fast_path_is_exact(item):
            return False
    return True


def _scalar_is_exact(value: object) -> bool:
    kind = type(value)
    if kind is int:
        return -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER  # type: ignore[operator]
    # Floats, subclasses of the JSON types and non-JSON values: the reference decides.
    return kind in _SCALARS


def parse_json(raw: bytes | str) -> object:
    """The strict reader for what is hashed or signed: UTF-8 only, unique member names, no
    NaN/Infinity. Raises `ValueError` (also `UnicodeDecodeError`) or `RecursionError`.

    I-JSON (RFC 7493), which RFC 8785 builds on, forbids repeated names; `json` keeps the
    last, another parser the first: a signed document must not mean two things. Bytes are
    decoded explicitly: `json.loads(bytes)` would also accept UTF-16 and UTF-32.
    """
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    return json.loads(text, object_pairs_hook=_unique_members, parse_constant=_no_constant)


def _unique_members(pairs: list[tuple[str, object]]) -> dict[str, object]:
    members = dict(pairs)
    if len(members) != len(pairs):
        raise ValueError("a member name is repeated in an object")
    return members


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def read_canonical(text: str, start: int = 0) -> tuple[object, int] | None:
    """The JSON value that starts at `text[start]` and where it ends, if its text is exactly
    its RFC 8785 form; None if it is not, or if telling would need `canonicalize`'s walk (the
    caller then takes the general path). No whitespace is skipped before the value.

    For verifiers handed canonical text (events from publishers, events inside a block): the
    value is read once and encoded once, both in C, and the text is the canonical bytes, to
    hash directly. Why the text of a value it returns is the value's JCS form:

    - the reader refused floats, constants and unsafe integers, so the value holds exactly
      dict, list, str, int within ±(2**53 - 1), bool and None;
    - the C encoder wrote exactly that text, which holds no astral character, so no key of
      the value holds one (an escaped one in the text would have been written unescaped and
      differ), nor any string a lone surrogate (written raw, it differs from its escape);
    - these are the conditions of `_fast_path_is_exact`, under which the C encoder writes the
      JCS form (module docstring).

    It also rules out what `parse_json` refuses: the encoder writes each member name once, so
    an object repeating one would have been written shorter than its text.
    """
    if text[start : start + 1].isspace():
        return None  # the reader would skip it; JCS writes none
    try:
        value, end = _EXACT_READER.raw_decode(text, start)
        encoded = "".join(_ENCODE(value, 0))
    except (ValueError, _NotExact, RecursionError):
        return None
    span = text[start:end]
    if encoded != span:
        return None
    if not span.isascii() and (max(span) > _LAST_BMP_CHARACTER or _SURROGATE.search(span)):
        return None  # an astral character, or a lone surrogate (a `str` given, not UTF-8)
    return value, end


def parse_canonical(raw: bytes) -> object | None:
    """The JSON value whose RFC 8785 form is exactly `raw` (UTF-8), or None: see
    `read_canonical`, here for a whole text with nothing after the value."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    read = read_canonical(text)
    if read is None or read[1] != len(text):
        return None
    return read[0]
