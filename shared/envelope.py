"""The signed event envelope: CloudEvents 1.0 in structured JSON mode (CloudEvents spec v1.0.2,
JSON event format) with the CareLedger extension members `signer` and `signature`.

The contract is written up in docs/envelope.md. In short: the closed set of members below,
strings restricted to printable ASCII where they become keys, `type` of the form
``org.careledger.<domain>.<name>.v<N>``, `time` in RFC 3339 UTC with a ``Z``, `data` a JSON
object, the whole event at most `MAX_EVENT_BYTES`, and `signature` the unpadded base64url
Ed25519 signature by `signer` over the RFC 8785 bytes of the event without `signature`.
"""

from __future__ import annotations

import datetime
import enum
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

from shared.canonical import CanonicalizationError, canonicalize, parse_canonical, parse_json
from shared.crypto import (
    SIGNATURE_BYTES,
    EncodingError,
    InvalidDIDError,
    SignatureError,
    SigningKey,
    b64url_decode,
    b64url_encode,
    public_key_from_did,
    verify_signature,
)
from shared.errors import VerificationError

__all__ = [
    "CONTENT_TYPE",
    "CONTENT_TYPE_HEADER",
    "DATA_CONTENT_TYPE",
    "EVENT_TYPE_PATTERN",
    "MAX_EVENT_BYTES",
    "MAX_EVENT_DEPTH",
    "SPEC_VERSION",
    "EventRejected",
    "EventSignatureError",
    "ParsedEvent",
    "Reason",
    "build_event",
    "encode_event",
    "is_rfc3339_utc",
    "kafka_key",
    "parse_and_verify",
    "parse_canonical_event",
    "parse_event",
    "parse_event_object",
    "sign_event",
    "signature_rejection",
    "uuid7",
    "verify_event",
]

MAX_EVENT_BYTES: Final = 64 * 1024
#: The deepest nesting of objects and arrays an event may have, the event object itself being
#: level 1 (so `data` is level 2). Checked on the bytes before they are parsed, so the verdict
#: is the same in every process whatever its stack depth or recursion limit.
MAX_EVENT_DEPTH: Final = 32
CONTENT_TYPE: Final = "application/cloudevents+json"
CONTENT_TYPE_HEADER: Final = "content-type"
SPEC_VERSION: Final = "1.0"
DATA_CONTENT_TYPE: Final = "application/json"

# Lower-case reverse-DNS segments: a domain (letters and digits), one or more name segments
# (letters, digits, '_' and '-'), and a version `v<N>` without leading zeros.
EVENT_TYPE_PATTERN: Final = re.compile(
    r"org\.careledger\.[a-z][a-z0-9]*(?:\.[a-z][a-z0-9_-]*)+\.v[1-9][0-9]{0,5}"
)
# id, source, subject and dataschema become Kafka keys, dedup keys and URLs: printable ASCII.
_TOKEN_LIMITS: Final = {"id": 128, "source": 512, "subject": 256, "dataschema": 1024}
_TOKEN: Final = re.compile(r"[\x21-\x7e]+")
# The time of day is range-checked here; the calendar date by datetime.date.fromisoformat.
_RFC3339_UTC: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?Z"
)

_UNSIGNED_REQUIRED: Final = frozenset(
    {"specversion", "id", "source", "type", "time", "datacontenttype", "data"}
)
_SIGNED_REQUIRED: Final = _UNSIGNED_REQUIRED | {"signer", "signature"}
_ALLOWED: Final = _SIGNED_REQUIRED | {"subject", "dataschema"}
_STRING_MEMBERS: Final = tuple(sorted(_ALLOWED - {"data"}))
# The signature member as JCS writes it; see `_without_signature` for why this is safe.
_SIGNATURE_MEMBER: Final = b',"signature":"'
# A string token (escapes included) or one bracket: what `_check_text_depth` scans. Brackets in
# strings are inside the string tokens, so only structural ones are seen on their own.
_OPENING: Final = (b"{", b"[")
_CLOSING: Final = (b"}", b"]")
_DEPTH_TOKEN: Final = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
# JCS writes an integral float below 1e21 as its digits; from 2**53 (16 digits) on, they read
# back as an integer outside the safe range. No such run of digits: no such float.
_SAFE_INTEGRAL: Final = 2**53
_LONG_DIGITS: Final = re.compile(rb"[0-9]{16}")


class Reason(enum.StrEnum):
    """Why an event went to `ledger.rejected` (the brief's reason codes)."""

    MALFORMED = "malformed"
    TOO_LARGE = "too_large"
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_SIGNER = "unknown_signer"
    REVOKED_SIGNER = "revoked_signer"
    UNAUTHORIZED_TYPE = "unauthorized_type"
    DUPLICATE = "duplicate"


class EventRejected(VerificationError):  # noqa: N818 - the name is the public contract
    """An event is not admitted. `reason` is the code for `ledger.rejected`; `detail` says why
    in words and never quotes the event's data. A VerificationError: admission is a check."""

    def __init__(self, reason: Reason | str, detail: str, **context: Any) -> None:
        self.reason = Reason(reason)
        self.detail = detail
        super().__init__(f"{self.reason.value}: {detail}", reason=self.reason.value, **context)


class EventSignatureError(EventRejected, SignatureError):
    """The event's signature does not verify: reason `bad_signature`. Both an `EventRejected`
    (for admission) and a `SignatureError` (for verifiers)."""

    def __init__(self, detail: str, **context: Any) -> None:
        super().__init__(Reason.BAD_SIGNATURE, detail, **context)


@dataclass(frozen=True, slots=True)
class ParsedEvent:
    """A structurally valid event with its two canonical byte strings, computed once."""

    event: dict[str, object]
    raw: bytes
    signing_bytes: bytes  # JCS(event without "signature"): what the signer signed
    leaf_bytes: bytes  # JCS(event): the RFC 6962 leaf input
    dedup_key: tuple[str, str]  # (source, id)
    signer: str
    type: str
    signature: bytes


def uuid7(unix_ms: int, rand: bytes) -> str:
    """An RFC 9562 §5.7 UUIDv7: 48-bit Unix milliseconds, then 74 bits from `rand` (10 bytes;
    its first 4 and its 17th-18th bits are overwritten by the version and the variant)."""
    if not 0 <= unix_ms < 1 << 48:
        raise ValueError("unix_ms must fit in 48 bits")
    if len(rand) != 10:
        raise ValueError("rand must be exactly 10 bytes")
    octets = bytearray(unix_ms.to_bytes(6, "big") + rand)
    octets[6] = 0x70 | (octets[6] & 0x0F)  # version 7
    octets[8] = 0x80 | (octets[8] & 0x3F)  # variant 0b10
    text = octets.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def is_rfc3339_utc(value: str) -> bool:
    """Whether `value` is an RFC 3339 date-time in UTC written with ``T`` and ``Z`` (optional
    fraction of up to 9 digits; no leap second, which Python cannot represent)."""
    if _RFC3339_UTC.fullmatch(value) is None:
        return False
    try:
        datetime.date.fromisoformat(value[:10])
    except ValueError:  # 2026-02-30, month 13, year 0
        return False
    return True


def build_event(
    *,
    source: str,
    type: str,  # the CloudEvents attribute name
    id: str,  # the CloudEvents attribute name
    time: str,
    data: Mapping[str, object],
    subject: str | None = None,
) -> dict[str, object]:
    """An unsigned event; raise `ValueError` if it would not pass `parse_event`'s checks."""
    event: dict[str, object] = {
        "specversion": SPEC_VERSION,
        "id": id,
        "source": source,
        "type": type,
        "time": time,
        "datacontenttype": DATA_CONTENT_TYPE,
        "data": dict(data),
    }
    if subject is not None:
        event["subject"] = subject
    problem = _structure_problem(event, _UNSIGNED_REQUIRED)
    if problem is not None:
        raise ValueError(problem)
    return event


def sign_event(event: Mapping[str, object], key: SigningKey) -> dict[str, object]:
    """Return `event` with `signer` = the key's DID and `signature` = base64url Ed25519 over
    JCS(event without signature). Any previous signer/signature is replaced. Raise
    `ValueError` for an event `parse_event` would reject, `CanonicalizationError` for data
    that is not JSON."""
    unsigned = {name: value for name, value in event.items() if name != "signature"}
    unsigned["signer"] = key.did
    problem = _structure_problem(unsigned, _UNSIGNED_REQUIRED)
    if problem is not None:
        raise ValueError(problem)
    signed = {**unsigned, "signature": b64url_encode(key.sign(canonicalize(unsigned)))}
    # What consumers receive must parse back to the same event. This catches the size limit
    # and the one JSON value JCS cannot round-trip: an integral float of magnitude 2**53 or
    # more below 1e21 is written as an integer literal, which parses back as an unsafe int.
    try:
        parse_event(canonicalize(signed))
    except EventRejected as exc:
        raise ValueError(f"the signed event would be rejected: {exc.detail}") from None
    return signed


def encode_event(event: Mapping[str, object]) -> bytes:
    """The Kafka value for an event: its RFC 8785 bytes (compact UTF-8 JSON)."""
    return canonicalize(dict(event))


def kafka_key(event: Mapping[str, object]) -> str:
    """The Kafka key for an event: its `subject`, or its `id` when it has none."""
    return str(event.get("subject") or event["id"])


def parse_event(raw: bytes) -> ParsedEvent:
    """Parse and structurally validate a Kafka value; raise `EventRejected` (`too_large` or
    `malformed`). The signature is decoded but not checked: see `verify_event`.

    Publishers send canonical bytes (`encode_event`), so the value is first read by
    `shared.canonical.parse_canonical`: when `raw` is exactly the RFC 8785 form of what it
    holds, the value is read once (no duplicate-name hook, no walk, no second encoding) and
    `raw` is the leaf. This gives the verdict the general path would:

    - `parse_json` accepts `raw` (it is a JCS text: UTF-8, one value, each member name once,
      no NaN or Infinity), and builds the same dicts in the same order as the plain reader;
    - `_parsed` depends only on the dict's contents and order, and its `canonicalize(event)`
      would give `raw` back, which `parse_canonical` established.

    Otherwise (any other text, a `raw` that is not exactly `bytes`) the strict reader decides.
    Before either, the nesting depth is counted on the bytes (`MAX_EVENT_DEPTH`).
    """
    if len(raw) > MAX_EVENT_BYTES:
        raise EventRejected(
            Reason.TOO_LARGE, f"{len(raw)} bytes, over {MAX_EVENT_BYTES}", size=len(raw)
        )
    _check_text_depth(raw)
    if type(raw) is bytes:
        event = parse_canonical(raw)
        if type(event) is dict:
            return _parsed(event, raw, raw)
    try:
        event = parse_json(raw)
    except ValueError as exc:  # also UnicodeDecodeError and over-long integers
        raise EventRejected(Reason.MALFORMED, f"not UTF-8 JSON: {exc}") from None
    if type(event) is not dict:
        raise EventRejected(Reason.MALFORMED, "the event is not a JSON object")
    return _parsed(event, raw)


def parse_canonical_event(event: dict[str, object], leaf_bytes: bytes) -> ParsedEvent:
    """Like `parse_event` for an event already read whose canonical bytes are known to be
    `leaf_bytes` (a block's event read by `shared.canonical.read_canonical`): nothing is read
    or encoded again. Same verdicts as `parse_event(leaf_bytes)`."""
    if len(leaf_bytes) > MAX_EVENT_BYTES:
        raise EventRejected(
            Reason.TOO_LARGE,
            f"{len(leaf_bytes)} bytes, over {MAX_EVENT_BYTES}",
            size=len(leaf_bytes),
        )
    _check_text_depth(leaf_bytes)
    return _parsed(event, leaf_bytes, leaf_bytes)


def parse_event_object(event: Mapping[str, object]) -> ParsedEvent:
    """Like `parse_event` for an event already decoded (e.g. inside a block); `raw` is then
    its canonical form, and the size and depth limits apply to that."""
    if not isinstance(event, Mapping):
        raise EventRejected(Reason.MALFORMED, "the event is not a JSON object")
    value = dict(event)
    if _value_depth(value) > MAX_EVENT_DEPTH:
        raise _too_deep()
    return _parsed(value, None)


def _too_deep() -> EventRejected:
    return EventRejected(
        Reason.MALFORMED, f"JSON nested deeper than {MAX_EVENT_DEPTH} levels of objects and arrays"
    )


def _check_text_depth(raw: bytes | str) -> None:
    """Raise `malformed` if the JSON text nests deeper than `MAX_EVENT_DEPTH`.

    Most events hold fewer brackets in all than the limit, which bounds their depth: one C
    count decides. Otherwise the structural brackets are followed (`_DEPTH_TOKEN` steps over
    strings whole). Text that is not JSON gets some depth here and its verdict from the reader.
    """
    text = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if text.count(b"{") + text.count(b"[") <= MAX_EVENT_DEPTH:
        return
    depth = 0
    for token in _DEPTH_TOKEN.findall(text):
        if token in _OPENING:
            depth += 1
            if depth > MAX_EVENT_DEPTH:
                raise _too_deep()
        else:  # a string token, or a closing bracket
            depth -= token in _CLOSING


def _value_depth(value: object) -> int:
    """How deeply `value` nests dicts and lists (a scalar: 0), without recursion, stopping
    once past `MAX_EVENT_DEPTH`."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if type(item) is dict:
            children: Iterable[object] = cast("dict[str, object]", item).values()
        elif type(item) is list:
            children = cast("list[object]", item)
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_EVENT_DEPTH:
            break
        stack.extend((child, depth + 1) for child in children)
    return deepest


def verify_event(parsed: ParsedEvent) -> None:
    """Check the event's signature; raise `EventSignatureError` (reason `bad_signature`)."""
    try:
        verify_signature(parsed.signer, parsed.signing_bytes, parsed.signature)
    except SignatureError as exc:
        raise signature_rejection(parsed, exc) from exc


def signature_rejection(parsed: ParsedEvent, failure: SignatureError) -> EventSignatureError:
    """What `verify_event` raises when the check of `parsed` failed with `failure`: one
    phrasing, whichever process ran the check (the sealer's verify pool rebuilds it)."""
    source, event_id = parsed.dedup_key
    return EventSignatureError(
        "the signature does not verify for the signer",
        source=source,
        id=event_id,
        **failure.context,
    )


def parse_and_verify(raw: bytes) -> ParsedEvent:
    """`parse_event` then `verify_event`: a structurally valid, correctly signed event."""
    parsed = parse_event(raw)
    verify_event(parsed)
    return parsed


def _parsed(
    event: dict[str, object], raw: bytes | None, canonical: bytes | None = None
) -> ParsedEvent:
    """The `ParsedEvent` of a decoded event; `canonical` is its JCS form when known already."""
    problem = _structure_problem(event, _SIGNED_REQUIRED)
    if problem is not None:
        raise EventRejected(Reason.MALFORMED, problem)
    signature_text: str = event["signature"]  # type: ignore[assignment]
    try:
        signature = b64url_decode(signature_text)
    except EncodingError as exc:
        raise EventRejected(Reason.MALFORMED, f"member 'signature': {exc}") from None
    if len(signature) != SIGNATURE_BYTES:
        raise EventRejected(
            Reason.MALFORMED, f"member 'signature' holds {len(signature)} bytes, not 64"
        )
    if canonical is not None:
        return _parsed_event(event, raw, canonical, signature_text, signature)
    try:
        leaf_bytes = canonicalize(event)
    except CanonicalizationError:
        raise EventRejected(
            Reason.MALFORMED,
            "member 'data' has no RFC 8785 form (a number beyond ±(2**53-1), NaN or Infinity, "
            "or a lone surrogate)",
        ) from None
    if len(leaf_bytes) > MAX_EVENT_BYTES:
        # Numbers can grow when canonicalised (1e20 -> 100000000000000000000); checking the
        # canonical size too means a sealed event always passes parse_event_object again.
        raise EventRejected(
            Reason.TOO_LARGE,
            f"canonical form is {len(leaf_bytes)} bytes, over {MAX_EVENT_BYTES}",
            size=len(leaf_bytes),
        )
    if _LONG_DIGITS.search(leaf_bytes) is not None and _has_unsafe_integral_float(event):
        # Its leaf (how a block holds it) would read back as an unsafe integer: every
        # validator would refuse the block that sealed it.
        raise EventRejected(
            Reason.MALFORMED,
            "member 'data' holds an integral float of magnitude 2**53 or more (e.g. 1e20): "
            "its RFC 8785 form reads back as an integer outside ±(2**53-1)",
        )
    return _parsed_event(event, raw, leaf_bytes, signature_text, signature)


def _has_unsafe_integral_float(value: object) -> bool:
    """Whether `value` holds a float that JCS writes as an integer outside the safe range
    (integral, 2**53 <= |x| < 1e21), which `parse_event` of the leaf would refuse. Iterative:
    the depth was bounded before, but no recursion is needed to walk it."""
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is float:
            if item.is_integer() and _SAFE_INTEGRAL <= abs(item) < 1e21:
                return True
        elif type(item) is dict:
            stack.extend(cast("dict[str, object]", item).values())
        elif type(item) is list:
            stack.extend(cast("list[object]", item))
    return False


def _parsed_event(
    event: dict[str, object],
    raw: bytes | None,
    leaf_bytes: bytes,
    signature_text: str,
    signature: bytes,
) -> ParsedEvent:
    # Positional: keyword arguments cost a measurable share of this per-event constructor.
    return ParsedEvent(
        event,  # event
        leaf_bytes if raw is None else raw,  # raw
        _without_signature(leaf_bytes, signature_text),  # signing_bytes
        leaf_bytes,  # leaf_bytes
        (event["source"], event["id"]),  # type: ignore[arg-type]  # dedup_key
        event["signer"],  # type: ignore[arg-type]  # signer
        event["type"],  # type: ignore[arg-type]  # type
        signature,  # signature
    )


def _without_signature(leaf_bytes: bytes, signature_text: str) -> bytes:
    """JCS(event without "signature"), cut out of JCS(event) instead of encoding again.

    Why this equals `canonicalize` of the event minus its signature: JCS writes an object as
    its members in key order, each encoded on its own, so dropping one member from the output
    drops exactly its text and one comma. "signature" is never the first key ("data" is
    required and sorts before it), so its text is ``,"signature":"<base64url>"`` (base64url
    needs no escaping). It is the *last* occurrence of ``,"signature":"``: every member after
    it (signer, source, specversion, subject, time, type) is a string, and inside a JSON
    string a quote is always escaped, so ``,"`` cannot occur there. Earlier occurrences can,
    inside `data`, which is why the search runs from the end.
    """
    start = leaf_bytes.rfind(_SIGNATURE_MEMBER)
    end = start + len(_SIGNATURE_MEMBER) + len(signature_text) + 1
    return leaf_bytes[:start] + leaf_bytes[end:]


def _structure_problem(event: dict[str, object], required: frozenset[str]) -> str | None:
    """What is wrong with the envelope's structure, or None. Never quotes member values.

    This runs on every event, nearly always to find nothing: `_is_sound` answers that case in
    one pass, and only when it doubts does `_structure_detail` look for the first problem.
    """
    if _is_sound(event, required):
        return None
    return _structure_detail(event, required)


def _is_sound(event: dict[str, object], required: frozenset[str]) -> bool:
    """True only if `_structure_detail` finds no problem: each test below implies one of its
    checks (a False may be a false alarm; `_structure_detail` then has the last word).

    The member set is compared without building sets; every member but `data` must be a
    string (the allowed names are `_STRING_MEMBERS` and `data`); and a `_TOKEN`, printable
    ASCII without spaces (U+0021..U+007E), is a non-empty ASCII string that `isprintable`
    (ASCII's non-printable characters are exactly U+0000..U+001F and U+007F) with no space.
    """
    names = event.keys()
    if not (names >= required and names <= _ALLOWED) or type(event["data"]) is not dict:
        return False
    for name, value in event.items():
        if type(value) is not str and name != "data":
            return False
    strings: dict[str, str] = event  # type: ignore[assignment]  # all but data are str now
    for name, limit in _TOKEN_LIMITS.items():
        token = strings.get(name)
        if token is not None and not (
            0 < len(token) <= limit and token.isascii() and token.isprintable() and " " not in token
        ):
            return False
    if not (
        strings["specversion"] == SPEC_VERSION
        and strings["datacontenttype"] == DATA_CONTENT_TYPE
        and EVENT_TYPE_PATTERN.fullmatch(strings["type"]) is not None
        and is_rfc3339_utc(strings["time"])
    ):
        return False
    if "signer" in strings:
        try:
            public_key_from_did(strings["signer"])  # cached per DID
        except InvalidDIDError:
            return False
    return True


def _structure_detail(event: dict[str, object], required: frozenset[str]) -> str | None:
    names = event.keys()
    if not names >= required:
        return f"missing member(s) {sorted(required - names)}"
    unknown = names - _ALLOWED
    if unknown:
        shown = sorted(repr(name)[:40] for name in unknown)[:5]
        return f"member(s) not in the envelope: {', '.join(shown)}"
    for name in _STRING_MEMBERS:
        if name in event and type(event[name]) is not str:
            return f"member {name!r} must be a string"
    if type(event["data"]) is not dict:
        return "member 'data' must be a JSON object"
    return _attribute_problem(event)  # type: ignore[arg-type]  # all but data are str now


def _attribute_problem(event: dict[str, str]) -> str | None:
    for name, limit in _TOKEN_LIMITS.items():
        if name in event and (len(event[name]) > limit or _TOKEN.fullmatch(event[name]) is None):
            return f"member {name!r} must be 1-{limit} printable ASCII characters, no spaces"
    for message, holds in _ATTRIBUTE_RULES:
        if not holds(event):
            return message
    if "signer" in event:
        try:
            public_key_from_did(event["signer"])  # cached per DID
        except InvalidDIDError as exc:
            return f"member 'signer': {exc}"
    return None


_ATTRIBUTE_RULES: Final[tuple[tuple[str, Callable[[dict[str, str]], bool]], ...]] = (
    (
        f"member 'specversion' must be {SPEC_VERSION!r}",
        lambda event: event["specversion"] == SPEC_VERSION,
    ),
    (
        "member 'type' must look like org.careledger.<domain>.<name>.v<N>",
        lambda event: EVENT_TYPE_PATTERN.fullmatch(event["type"]) is not None,
    ),
    (
        "member 'time' must be an RFC 3339 UTC date-time ending in 'Z'",
        lambda event: is_rfc3339_utc(event["time"]),
    ),
    (
        f"member 'datacontenttype' must be {DATA_CONTENT_TYPE!r}",
        lambda event: event["datacontenttype"] == DATA_CONTENT_TYPE,
    ),
)
