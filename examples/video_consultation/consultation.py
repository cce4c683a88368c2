"""A video-consultation platform reports a finished visit to CareLedger and keeps the proof.

Run against a local chain (`careledger up`, or `careledger up --only
sealer,validator-1,validator-2,validator-3`):

    python examples/video_consultation/consultation.py --data-dir data

It signs an `org.careledger.clinical.consultation.completed.v1` event with the
`publisher-demo` key, publishes it to `clinical.events` (Kafka, or the sealer's HTTP ingest
with `--via http`), waits until the event is in a block a quorum of validators attested,
verifies that receipt offline against the pinned genesis, and prints it as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from careledger.client import (
    CareLedgerClientError,
    IngestClient,
    Publisher,
    ReceiptClient,
    genesis_fingerprint,
)

CONSULTATION_COMPLETED = "org.careledger.clinical.consultation.completed.v1"
SOURCE = "https://videoconsult.example/app"


def consultation_data(
    encounter: str, *, practitioner: str | None, patient: str | None
) -> dict[str, object]:
    """What the platform knows at the end of a visit, without PHI: opaque ids, a patient
    pseudonym (never a name), billing codes and times."""
    end = datetime.now(UTC).replace(microsecond=0)
    data: dict[str, object] = {
        "encounter_id": encounter,
        "plan_id": "coinsurance",
        "service_code": "98005",  # a synchronous audio-video visit
        "modifiers": ["95"],
        "place_of_service": "10",  # telehealth in the patient's home
        "start": (end - timedelta(minutes=25)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if practitioner:
        data["practitioner"] = practitioner
    if patient:
        data["patient"] = patient
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers")
    parser.add_argument("--topic-prefix", default="")
    parser.add_argument("--validator", default="http://127.0.0.1:8111")
    parser.add_argument("--sealer", default="http://127.0.0.1:8104", help="for --via http")
    parser.add_argument("--via", choices=("kafka", "http"), default="kafka")
    parser.add_argument("--encounter", default=f"enc-{uuid.uuid4().hex[:12]}")
    parser.add_argument("--practitioner", help="the practitioner's did:key (billing needs it)")
    parser.add_argument("--patient", help="the patient's pseudonym (billing needs it)")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)

    key_file = args.data_dir / "keys" / "publisher-demo.json"
    genesis = json.loads((args.data_dir / "genesis.json").read_text(encoding="utf-8"))
    data = consultation_data(args.encounter, practitioner=args.practitioner, patient=args.patient)
    try:
        with Publisher.from_key_file(
            key_file,
            source=SOURCE,
            bootstrap_servers=args.bootstrap,
            topic_prefix=args.topic_prefix,
        ) as publisher:
            if args.via == "kafka":
                delivery = publisher.publish(
                    type=CONSULTATION_COMPLETED, data=data, subject=args.encounter
                )
                source, event_id = delivery.source, delivery.id
            else:
                event = publisher.event(
                    type=CONSULTATION_COMPLETED, data=data, subject=args.encounter
                )
                with IngestClient(publisher.key, url=args.sealer) as ingest:
                    accepted = ingest.post(event)
                source, event_id = accepted.source, accepted.id
        # The genesis is pinned by its fingerprint: a validator of another chain is refused.
        with ReceiptClient(args.validator, genesis_sha256=genesis_fingerprint(genesis)) as receipts:
            receipt = receipts.wait_for(source, event_id, timeout=args.timeout)
    except CareLedgerClientError as exc:
        print(json.dumps({"verified": False, "reason": exc.reason, "error": str(exc)}))
        return 1
    print(json.dumps({"verified": True, "via": args.via, **asdict(receipt)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
