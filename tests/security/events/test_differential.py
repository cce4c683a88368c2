"""Differential properties: the sealer (raw Kafka value -> admitted or `ledger.rejected`
reason) and a validator (that event inside a block -> accepted, or refused with the same
reason as `EventAdmissionError` / `inadmissible_event`) agree on every input, and neither
raises. The verdicts are taken by `pipeline.Pipeline` through the real sealer and validator."""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.envelope import MAX_EVENT_BYTES, Reason, encode_event
from tests.security.events.mutations import TOPICS, base_event, hostile_value, signed
from tests.security.events.pipeline import ADMITTED, Outcome, Pipeline
from tests.unit.core.chainfactory import ChainFactory

FACTORY = ChainFactory()  # keys and genesis as every Pipeline's; ids fresh per event
REASONS = {reason.value for reason in Reason}
SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(autouse=True)
def _quiet(caplog: pytest.LogCaptureFixture) -> None:
    # Every refusal logs an error line; hundreds of examples would flood the report.
    caplog.set_level(logging.CRITICAL)


def _check(outcome_sealer: str) -> None:
    assert outcome_sealer == ADMITTED or outcome_sealer in REASONS


@SETTINGS
@given(raw=st.binary(max_size=2048), topic=st.sampled_from(TOPICS))
def test_arbitrary_bytes_get_one_verdict(raw: bytes, topic: str) -> None:
    outcome = Pipeline().judge(raw, topic=topic)
    _check(outcome.sealer)
    assert outcome.sealer != ADMITTED  # random bytes are never a signed event


@SETTINGS
@given(
    text=st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
        lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(st.text(max_size=6), c)),
        max_leaves=20,
    ).map(lambda value: json.dumps(value).encode()),
    topic=st.sampled_from(TOPICS),
)
def test_arbitrary_json_gets_one_verdict(text: bytes, topic: str) -> None:
    outcome = Pipeline().judge(text, topic=topic)
    _check(outcome.sealer)
    assert outcome.sealer != ADMITTED


@SETTINGS
@given(data=st.data())
def test_near_valid_events_get_the_same_verdict_on_both_sides(data: st.DataObject) -> None:
    raw, topic = data.draw(hostile_value(FACTORY))
    outcome = Pipeline().judge(raw, topic=topic)
    _check(outcome.sealer)
    # A block spelling the event with repeated names is not even a block (strict JSON).
    assert outcome.validator in {None, outcome.sealer, "BlockFormatError"}
    assert outcome.ingest in {None, outcome.sealer}


@settings(SETTINGS, max_examples=100)
@given(data=st.data())
def test_a_signed_event_is_sealed_once_whatever_its_spelling(data: st.DataObject) -> None:
    """The same signed event sent again and again, in any JSON spelling, on any topic: at
    most one is admitted; after it, every replay is a `duplicate` (or, on a topic the signer
    may not use, `unauthorized_type`, which admission checks first)."""
    event = data.draw(base_event(FACTORY))
    pipeline = Pipeline()
    spellings = (
        encode_event(event),
        json.dumps(event, indent=2).encode(),
        json.dumps(dict(reversed(list(event.items())))).encode(),
    )
    sealed = False
    for _ in range(4):
        raw = data.draw(st.sampled_from(spellings))
        outcome = pipeline.judge(raw, topic=data.draw(st.sampled_from(TOPICS)))
        _check(outcome.sealer)
        if sealed:
            assert outcome.sealer in {Reason.DUPLICATE.value, Reason.UNAUTHORIZED_TYPE.value}
        sealed = sealed or outcome.sealer == ADMITTED


def test_the_canonical_size_limit_is_judged_alike() -> None:
    """A value within 64 KiB whose canonical form is over it (numbers grow when written
    canonically: 1e300 is 1e+300) is `too_large` for the sealer; a validator refuses it in a
    block for the same reason."""
    pipeline = Pipeline()
    raw = encode_event(FACTORY.event()).decode()
    pad = (MAX_EVENT_BYTES - len(raw) - 10) // 6
    # 1e300 is written 1e+300 in RFC 8785: one byte more each.
    text = raw.replace('"data":{', '"data":{"f":[' + ",".join(["1e300"] * pad) + "],", 1)
    assert len(text.encode()) <= MAX_EVENT_BYTES
    outcome = pipeline.judge(text.encode())
    assert outcome.sealer == "too_large"
    assert outcome.validator == "too_large"


def test_an_integral_float_beyond_the_safe_range_is_malformed_on_both_sides() -> None:
    """Found by this suite: `{"x": 1e20}`, signed over its RFC 8785 bytes (where it is the
    integer 100000000000000000000), was admitted by the sealer, and every validator refused
    the block that sealed it (its leaf reads back as an unsafe integer): one signed event by
    any authorised publisher stopped the chain. Now `malformed` for the sealer too."""
    pipeline = Pipeline()
    body = {**FACTORY.event(), "data": {"x": 1e20, "y": 1e21, "z": 9007199254740991.0}}
    event = signed(FACTORY, body, FACTORY.keys["publisher"])
    assert event is not None
    outcome = pipeline.judge(json.dumps(event).encode())
    assert outcome == Outcome("malformed", "malformed", ingest="malformed")
    # Below 2**53 and from 1e21 on, floats read back as themselves: admitted.
    body = {**FACTORY.event(), "data": {"y": 1e21, "z": 9007199254740991.0, "w": -1e300}}
    event = signed(FACTORY, body, FACTORY.keys["publisher"])
    assert event is not None
    assert pipeline.judge(json.dumps(event).encode()) == Outcome(ADMITTED, ADMITTED, ADMITTED)
