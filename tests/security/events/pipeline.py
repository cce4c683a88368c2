"""The two verdicts of the differential fuzzers, each taken end to end through the real code.

- The **sealer's**: a raw Kafka value of an input topic goes through a real `Sealer` (memory
  store, in-memory topics and publisher): `step` parses it (`shared.envelope.parse_event`,
  in `_batch`) and admits it (`BlockBuilder.admit` -> `shared.admission.admit`), then `cut`
  seals what was admitted. The verdict is ``"admitted"`` (a block was published) or the
  `reason` of the `ledger.rejected` record.
- The **validator's**: a real `Validator` (memory store) follows the sealer's blocks through
  `receive_block` (`read_block`, `ChainVerifier.verify_next`, which re-runs
  `parse_canonical_event` / `parse_event_object` and `BlockBuilder.admit`). For an event the
  sealer rejected, a faulty sealer (`faulty_block`: right header, sealer-signed, no admission)
  puts the event in a block anyway; the validator must refuse that block with
  `EventAdmissionError` carrying the sealer's reason, counted under the fault code
  `inadmissible_event`.

Each block is also given to the validator in a second JSON form (indented: the general parse,
no leaves): both forms must get the same verdict. The sealer's HTTP ingest
(`services.sealer.core.ingest.check_posted`, ADR 0016) judges the same bytes, posted by their
own signer, against the sealer's registry and sealed keys: it must give the Kafka path's
verdict whenever the event's type names the topic it was sent on.

Nothing here may raise: a crash or an unexpected exception type is a finding. Shared by the
Hypothesis tests and the atheris target.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from services.sealer.adapters.memory import MemoryChainStore as SealerStore
from services.sealer.core.cut import CutPolicy
from services.sealer.core.ingest import IngestRefusedError, check_posted, topic_of
from services.sealer.seen import StoredSeenEvents
from services.sealer.service import Sealer
from services.validator.adapters.memory import MemoryChainStore as ValidatorStore
from services.validator.service import NullValidatorMetrics, Validator
from shared.block import BlockHeader, SourceRange, block_to_json, seal_block
from shared.canonical import CanonicalizationError, canonicalize, parse_json
from shared.chain import ChainState
from shared.envelope import (
    CONTENT_TYPE,
    MAX_EVENT_BYTES,
    EventRejected,
    encode_event,
    parse_event,
)
from shared.events import parse_timestamp
from shared.events.identity import PUBLISHER_REGISTERED, PUBLISHER_REVOKED
from shared.merkle import leaf_hash
from shared.sources import utc_now
from shared.topics import CLINICAL_EVENTS, IDENTITY_EVENTS
from tests.unit.core.chainfactory import ChainFactory
from tests.unit.sealer.fakes import FakePublisher, FakeSource, FakeTopics

ADMITTED = "admitted"


class DifferentialMismatch(AssertionError):  # noqa: N818 - an assertion, read as a finding
    """The sealer and a validator disagree about one input (or a validator's two paths do)."""


@dataclass
class RecordingMetrics(NullValidatorMetrics):
    """`ValidatorMetrics` that keeps the fault codes (`careledger_validator_faults_total`)."""

    faults: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def block_refused(self, *, reason: str) -> None:
        self.refused.append(reason)

    def fault(self, *, reason: str) -> None:
        self.faults.append(reason)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one input came to: the sealer's verdict and, where one exists, the validator's."""

    sealer: str
    validator: str | None
    #: The sealer's HTTP ingest (`POST /v1/events`, ADR 0016) on the same bytes, when the
    #: event's type names this topic (the ingest picks the topic from the type).
    ingest: str | None = None


class Pipeline:
    """A sealer and a validator of one chain (ChainFactory keys and genesis), in process."""

    def __init__(self) -> None:
        self.factory = ChainFactory()
        self.topics = FakeTopics()
        self.publisher = FakePublisher()
        self.sealer_store = SealerStore()
        self.sealer = Sealer(
            store=self.sealer_store,
            source=FakeSource(self.topics),
            publisher=self.publisher,
            key=self.factory.keys["sealer"],
            genesis_event=self.factory.genesis_event,
            # One event per block: each input is judged on its own, and cut at once.
            policy=CutPolicy(max_events=1, max_wait=0.0),
            idle_wait=0.0,
        )
        self.sealer.recover()
        self.metrics = RecordingMetrics()
        self.validator = self._validator(ValidatorStore(), self.metrics)
        self.general = self._validator(ValidatorStore(), RecordingMetrics())
        self._delivered = 0
        self._follow()
        # publisher-2 is registered, then revoked: its events are `revoked_signer`.
        grant = {"did": self.factory.did("publisher-2"), "name": "p2"}
        grant |= {"topic": CLINICAL_EVENTS, "types": ["org.careledger.clinical.*"]}
        for event_type, data in (
            (PUBLISHER_REGISTERED, grant),
            (PUBLISHER_REVOKED, {"did": grant["did"]}),
        ):
            event = self.factory.identity_event(event_type, data)
            if self.judge(encode_event(event), topic=IDENTITY_EVENTS).sealer != ADMITTED:
                raise DifferentialMismatch("the pipeline's identity events were not sealed")

    def _validator(self, store: ValidatorStore, metrics: RecordingMetrics) -> Validator:
        return make_validator(self.factory, store, metrics)

    def _follow(self) -> list[bytes]:
        """Give the sealer's new blocks to both validators; each must accept each."""
        fresh = [raw for _, raw in self.publisher.blocks[self._delivered :]]
        self._delivered = len(self.publisher.blocks)
        for raw in fresh:
            for validator, form in ((self.validator, raw), (self.general, _indented(raw))):
                if validator.receive_block(form) is None:
                    raise DifferentialMismatch(
                        f"the sealer sealed a block a validator refuses: {validator.fault}"
                    )
        return fresh

    def judge(self, raw: bytes, *, topic: str = CLINICAL_EVENTS) -> Outcome:
        """Both verdicts on one Kafka value of `topic`; raise `DifferentialMismatch` if they
        disagree."""
        ingest = self._ingest_verdict(raw, topic)
        offset = self.topics.append(topic, raw)
        rejected_before = len(self.publisher.rejections)
        self.sealer.step()
        self.sealer.cut()
        self.publisher.flush(timeout=0)
        sealed = self._follow()
        rejections = self.publisher.rejections[rejected_before:]
        if sealed:
            if rejections or len(sealed) != 1:
                raise DifferentialMismatch("one input gave a block and a rejection")
            _same(ADMITTED, ingest)
            return Outcome(ADMITTED, ADMITTED, ingest)
        if len(rejections) != 1:
            raise DifferentialMismatch(f"one input gave {len(rejections)} rejections, no block")
        record = json.loads(rejections[0])
        if (record["topic"], record["offset"]) != (topic, offset):
            raise DifferentialMismatch(f"the rejection names another message: {record}")
        reason = str(record["reason"])
        _same(reason, ingest)
        return Outcome(reason, self._validator_verdict(raw, topic, offset, reason), ingest)

    def _ingest_verdict(self, raw: bytes, topic: str) -> str | None:
        """What the HTTP ingest answers for `raw` posted by its own signer, now: ADMITTED or
        the refusal's reason; None when it would send the event to another topic."""
        state = self._state()
        try:
            caller = parse_event(raw).signer
        except EventRejected:
            caller = self.factory.did("publisher")  # the parse refuses it whoever posts it
        try:
            posted = check_posted(
                raw,
                content_type=CONTENT_TYPE,
                caller=caller,
                registry=state.registry,
                seen=StoredSeenEvents(self.sealer_store),
                at=utc_now(),
            )
        except IngestRefusedError as exc:
            if exc.reason == "unknown_topic":
                return None
            if exc.reason in {"malformed", "too_large"}:
                return exc.reason  # refused before the topic is known
            return exc.reason if _topic_of(raw) == topic else None
        return ADMITTED if posted.topic == topic else None

    def _validator_verdict(self, raw: bytes, topic: str, offset: int, reason: str) -> str | None:
        """The validators' verdict on blocks holding the rejected event, checked against the
        sealer's `reason`; None when no block can hold it (its text is not a JSON object).

        Two blocks, as a faulty sealer could write them: the value's own text spliced into
        the block (whatever its spelling: repeated names, escapes, unsafe numbers), which must
        be refused; and, when the value is strict JSON, the event as `block_to_json` writes
        it, in two JSON forms, which must be refused for the sealer's reason.
        """
        try:
            text = raw.decode("utf-8")
            loose = json.loads(text)
        except (ValueError, RecursionError):
            return None
        if type(loose) is not dict:
            return None
        spliced = faulty_block(
            self.factory, self._state(), text.strip(), loose, topic=topic, offset=offset
        )
        verdict = self._refused(self.validator, self.metrics, spliced, reason, exact=False)
        try:
            event = parse_json(raw)
        except (ValueError, RecursionError):
            return verdict  # repeated names or a constant: no other spelling holds it
        assert type(event) is dict
        try:
            written = canonicalize(event).decode()
        except CanonicalizationError:
            return verdict  # no RFC 8785 form (unsafe numbers): only the spliced text exists
        if reason == "too_large" and len(raw) > MAX_EVENT_BYTES >= len(written.encode()):
            return None  # only the Kafka value was over the limit, not the event
        block = faulty_block(
            self.factory, self._state(), written, event, topic=topic, offset=offset
        )
        self._refused(self.validator, self.metrics, block, reason, exact=True)
        self._refused(self.general, None, _indented(block), reason, exact=True)
        return reason

    def _state(self) -> ChainState:
        state = self.sealer.state
        assert state is not None
        return state

    def _refused(
        self,
        validator: Validator,
        metrics: RecordingMetrics | None,
        block: bytes,
        reason: str,
        *,
        exact: bool,
    ) -> str:
        """The validator refuses `block`; with `exact`, as `EventAdmissionError(reason)`.
        Returns the refusal (the admission reason, or the error class)."""
        faults_before = None if metrics is None else len(metrics.faults)
        if validator.receive_block(block) is not None:
            raise DifferentialMismatch(
                f"the sealer rejected an event ({reason}) a validator admits in a block"
            )
        fault = validator.fault or {}
        error = str(fault.get("error"))
        if error == "EventAdmissionError":
            if metrics is not None and metrics.faults[faults_before:] != ["inadmissible_event"]:
                raise DifferentialMismatch(f"fault codes counted: {metrics.faults}")
            found = str(fault.get("admission_reason"))
            if found != reason:
                raise DifferentialMismatch(f"sealer says {reason}, a validator says {found}")
            return found
        if exact or error != "BlockFormatError":
            raise DifferentialMismatch(f"the block is refused for another fault: {fault}")
        return error


def make_validator(
    factory: ChainFactory, store: ValidatorStore, metrics: RecordingMetrics
) -> Validator:
    """validator-1 of the factory's chain over `store`, restored from it."""
    validator = Validator(
        store=store,
        key=factory.keys["validator-1"],
        genesis=factory.config,
        genesis_event=factory.genesis_event,
        publisher=_Drop(),
        metrics=metrics,
    )
    validator.restore()
    return validator


def faulty_block(
    factory: ChainFactory,
    state: ChainState,
    event_text: str,
    event: dict[str, Any],
    *,
    topic: str,
    offset: int,
) -> bytes:
    """The next block after `state` holding `event_text` (the JSON of `event`) read at
    (topic, 0, offset), its header consistent and signed by the genesis sealer, without
    admission: a sealer that lets anything through, and writes the event's text as it is."""
    log = state.log.copy()
    try:
        leaf = canonicalize(event)
    except CanonicalizationError:
        leaf = event_text.encode("utf-8", "surrogatepass")  # no leaf: any log_root will do
    log.append(leaf_hash(leaf))
    sealed_at = parse_timestamp(state.head.sealed_at) + timedelta(microseconds=1)
    header = BlockHeader(
        version=1,
        chain_id=state.genesis.chain_id,
        height=state.head.height + 1,
        prev_hash=state.head_hash,
        tree_size=log.size,
        log_root=log.root().hex(),
        event_count=1,
        sources=(SourceRange(topic=topic, partition=0, first_offset=offset, last_offset=offset),),
        sealed_at=sealed_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        sealer=factory.did("sealer"),
    )
    # The events are not under the hash or the signature: only the header is.
    sealed = seal_block(header, [{}], factory.keys["sealer"])
    written = block_to_json(sealed).decode()
    return written.replace('"events":[{}]', '"events":[' + event_text + "]", 1).encode(
        "utf-8", "surrogatepass"
    )


def _same(sealer: str, ingest: str | None) -> None:
    if ingest is not None and ingest != sealer:
        raise DifferentialMismatch(f"the sealer says {sealer}, its HTTP ingest {ingest}")


def _topic_of(raw: bytes) -> str | None:
    try:
        return topic_of(parse_event(raw).type)
    except (EventRejected, IngestRefusedError):
        return None


def _indented(raw: bytes) -> bytes:
    """Another JSON text of the same block: the validator reads it by the general parse."""
    return json.dumps(json.loads(raw), indent=1).encode()


class _Drop:
    def publish(self, attestation: object) -> None:
        pass
