"""What every answer of every API must be, whatever was sent: the checks of the fuzz run.

- No 5xx (schemathesis's `not_a_server_error`).
- Every 4xx is in the one error shape: a JSON object whose `reason` is a snake_case string and
  `detail` a string (shared/runtime/errors.py). Two documented exceptions keep their own
  standard shape: the FHIR face answers an `OperationOutcome` whose first issue carries the
  same reason and detail (docs/fhir.md), and the C2SP witness's 409 is the size it holds as
  `text/x.tlog.size` (the tlog-witness spec).
- No 4xx body repeats anything the request carried: no run of `ECHO_WINDOW` characters of any
  string the fuzzer generated (path, query, header, cookie or body value, member names too)
  appears in it. Inputs may be PHI, and an error body ends up in logs and screenshots.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any, Final
from urllib.parse import unquote

#: The shortest run of a sent string that counts as echoed.
ECHO_WINDOW: Final = 8
SNAKE_CASE: Final = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
#: Strings longer than this are sampled at their start and end (a megabyte of fuzz is slow to
#: slide a window over, and an echo of it would show in either end anyway).
_SAMPLE: Final = 2048


def error_fields(status: int, content_type: str, text: str) -> tuple[str, str] | None:
    """(reason, detail) of a 4xx body, or None if it is not in a documented error shape."""
    if status == 409 and content_type.startswith("text/x.tlog.size"):
        return ("conflict", text) if re.fullmatch(r"[0-9]+\n", text) else None
    try:
        body = json.loads(text)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    if body.get("resourceType") == "OperationOutcome":
        try:
            issue = body["issue"][0]
            body = {
                "reason": issue["details"]["coding"][0]["code"],
                "detail": issue["diagnostics"],
            }
        except (KeyError, IndexError, TypeError):
            return None
    reason, detail = body.get("reason"), body.get("detail")
    if not (isinstance(reason, str) and SNAKE_CASE.match(reason) and isinstance(detail, str)):
        return None
    return reason, detail


def sent_strings(case: Any) -> Iterator[str]:
    """Every string the fuzzer put into the request: values and member names, in every part
    (the Authorization header is ours, not the fuzzer's)."""
    for part in (case.path_parameters, case.query, case.cookies):
        yield from _strings(part)
    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    yield from _strings(headers)
    body = case.body
    if isinstance(body, bytes):
        yield body.decode("utf-8", "replace")
    else:
        yield from _strings(body)


def _strings(value: object) -> Iterator[str]:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
            if "%" in item:
                yield unquote(item)
        elif isinstance(item, Mapping):
            for key, member in item.items():
                stack.extend((key, member))
        elif isinstance(item, list | tuple):
            stack.extend(item)


#: Words of the HTTP contract that the OpenAPI documents do not hold (docs/auth.md).
_PROTOCOL_WORDS: Final = frozenset({"Authorization", "Bearer"})


def vocabulary(document: Mapping[str, Any]) -> frozenset[str]:
    """The API's own words in its OpenAPI document: member and parameter names, enumerated
    values. An error may name them ("base_version: ..."); they are not the caller's data."""
    words: set[str] = set(_PROTOCOL_WORDS)
    stack: list[Any] = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            if isinstance(item.get("properties"), Mapping):
                words.update(item["properties"])
            if isinstance(item.get("name"), str) and "in" in item:  # a parameter
                words.add(item["name"])
            words.update(value for value in item.get("enum", ()) if isinstance(value, str))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return frozenset(words)


#: Words of the messages the APIs and their validators write themselves ("Field required",
#: "Input should be a valid integer"): a fuzzed string that happens to contain one (the fuzzer
#: likes words such as "consent_required") is not repeated when the message says it.
MESSAGE_WORDS: Final = frozenset(
    [
        "required",
        "missing",
        "invalid",
        "should",
        "integer",
        "string",
        "characters",
        "dictionary",
        "boolean",
        "number",
        "greater",
        "less",
        "equal",
        "expected",
        "object",
        "allowed",
        "supported",
        "parameter",
        "resource",
        "contract",
        "credential",
        "member",
        "members",
        "version",
        "patient",
        "consent",
        "unknown",
        "request",
        "signature",
        "malformed",
        "verifier",
        "evaluate",
        "envelope",
        "practitioner",
        "registered",
        "revoked",
        "authority",
        "publisher",
        "validation",
        "timestamp",
    ]
)


def echoed(sent: str, body: str, window: int = ECHO_WINDOW) -> str | None:
    """The first run of `window` characters of `sent` found in `body`, if any (a run that
    is only part of one of the `MESSAGE_WORDS` does not count)."""
    if len(sent) < window:
        return None
    text = sent if len(sent) <= 2 * _SAMPLE else sent[:_SAMPLE] + sent[-_SAMPLE:]
    for start in range(len(text) - window + 1):
        run = text[start : start + window]
        if run in body and not _message_word(run):
            return run
    return None


def _message_word(run: str) -> bool:
    return run.isalpha() and any(run.lower() in word for word in MESSAGE_WORDS)


def in_error_shape(ctx: Any, response: Any, case: Any) -> None:
    """A 4xx answer is in the one documented error shape."""
    del ctx
    if not 400 <= response.status_code < 500:
        return
    content_type = response.headers.get("content-type", [""])
    if isinstance(content_type, list):
        content_type = content_type[0] if content_type else ""
    if error_fields(response.status_code, content_type, response.text) is None:
        raise AssertionError(
            f"{case.method} {case.path} answered {response.status_code} outside the error "
            f"shape: {response.text[:300]!r}"
        )


#: Members of an error body that hold codes of the shape (a reason, an issue code), not text
#: about the request.
_CONSTANT_MEMBERS: Final = frozenset(
    {"reason", "resourceType", "severity", "code", "system", "type"}
)


def free_text(text: str) -> str:
    """The text of an error body that may say something about the request: every string in
    it but the constants of the shape (an OperationOutcome's `resourceType`, issue codes)."""
    try:
        body = json.loads(text)
    except ValueError:
        return text
    found: list[str] = []
    stack: list[Any] = [body]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            stack.extend(v for k, v in item.items() if k not in _CONSTANT_MEMBERS)
        elif isinstance(item, list):
            stack.extend(item)
    return "\n".join(found)


def echoes_nothing(own_words: frozenset[str]) -> Any:
    """The check that a 4xx answer repeats no string of the request but `own_words`."""

    def check(ctx: Any, response: Any, case: Any) -> None:
        del ctx
        if not 400 <= response.status_code < 500:
            return
        body = free_text(response.text)
        for sent in sent_strings(case):
            run = None if sent in own_words else echoed(sent, body)
            if run is not None:
                raise AssertionError(
                    f"{case.method} {case.path} answered {response.status_code} repeating "
                    f"{run!r} of what was sent: {body[:300]!r}"
                )

    check.__name__ = "echoes_nothing"
    return check
