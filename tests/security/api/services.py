"""Every CareLedger HTTP API, built for an attack from outside: in process, no broker.

Identity, records, billing and the sealer are built by their own `wiring.build` from settings
over a dev chain (keys, genesis, pseudonym key) and SQLite stores in a temporary data
directory, exactly as `careledger up` builds them, so the request limits and every setting
are the deployed ones. Their lifespan is never started (`without_lifespan`): the outbox relay
and the chain follower would dial a broker, and nothing an HTTP request does needs them. Where
a role only exists once the chain says so (a practitioner or a registered patient at the
records service) it is written into the service's store as the follower would have.

The validator is built as its wiring builds it (the same three routers over an SQLite chain
store and witness store) but with the keys of `tests.unit.core.chainfactory`, which seals a
short chain of real blocks for it to serve, attested by a quorum so that checkpoints exist.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from careledger.devchain import ensure_dev_chain, key_path, pseudonym_key_path
from services.billing.config import BillingSettings
from services.billing.wiring import build as build_billing
from services.identity.config import IdentitySettings
from services.identity.wiring import build as build_identity
from services.records.adapters.sql import SqlRecordsStore
from services.records.config import RecordsSettings
from services.records.core.model import Practitioner
from services.records.wiring import build as build_records
from services.sealer.adapters.http import ingest_router
from services.sealer.adapters.sql import migrate_sealer
from services.sealer.config import SealerSettings
from services.sealer.wiring import build_ingest
from services.validator.adapters.explorer import explorer_router
from services.validator.adapters.http import checkpoint_router, validator_router
from services.validator.adapters.metrics import PrometheusValidatorMetrics
from services.validator.adapters.sql import SqlChainStore, migrate_chain_store
from services.validator.adapters.witness_store import SqlWitnessStore
from services.validator.config import ValidatorSettings
from services.validator.queries import ChainQueries
from services.validator.service import Validator
from services.validator.witness import CheckpointWitness, WitnessedLog
from shared.attestation import sign_attestation
from shared.auth import bearer_headers
from shared.block import block_to_json, build_genesis_block, format_timestamp
from shared.chain import ChainVerifier
from shared.checkpoint import default_origin
from shared.crypto import SigningKey
from shared.keystore import read_key_file, read_pseudonym_key_file
from shared.pseudonym import patient_pseudonym
from shared.runtime.app import service_app
from shared.runtime.auth import wire_authenticator
from shared.runtime.identity import ServiceIdentity, load_identity
from shared.runtime.metrics import ServiceMetrics
from shared.runtime.outbox import wire_outbox
from shared.store import open_database
from tests.unit.billing.conftest import CONTRACT_V1
from tests.unit.core.chainfactory import ChainFactory
from tests.unit.records.conftest import observation

ASGIApp = Callable[..., Any]


@dataclass
class Api:
    """One service's app, whom it knows, and which role each of its routes needs."""

    name: str
    app: FastAPI
    audience: str | None  # None: the API is open (the validator's)
    keys: dict[str, SigningKey] = field(default_factory=dict)
    #: (method, path template) -> the role whose key signs the token; others: `default_role`.
    roles: dict[tuple[str, str], str] = field(default_factory=dict)
    default_role: str = "patient"
    #: Parameter name -> values that exist in this API's store (a record id, a height), which
    #: the fuzzer's own values would almost never hit: with them it reaches the handlers'
    #: paths past "not found".
    known: dict[str, list[str]] = field(default_factory=dict)

    def role_of(self, method: str, path: str) -> str:
        return self.roles.get((method.upper(), path), self.default_role)

    def bearer(self, method: str, path: str) -> dict[str, str]:
        """A fresh token (new jti) of the key with the role the route needs."""
        assert self.audience is not None
        return bearer_headers(self.keys[self.role_of(method, path)], self.audience)


def without_lifespan(app: ASGIApp) -> ASGIApp:
    """`app` with its lifespan refused before it starts, as a server without lifespan support
    would: no component (broker probe, outbox relay, follower) is started."""

    async def serve(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("the fuzzed app starts no component")
        await app(scope, receive, send)

    return serve


def _fresh_key(name: str) -> SigningKey:
    return SigningKey.from_seed(name.encode().ljust(32, b"#"))


def dev_data(data_dir: Path) -> dict[str, SigningKey]:
    """A dev chain under `data_dir`; the keys of the dev actors by name."""
    ensure_dev_chain(data_dir)
    names = ("admin", "authority-demo", "publisher-demo", "records", "identity", "billing")
    return {name: read_key_file(key_path(data_dir, name)) for name in names}


def identity_api(data_dir: Path) -> Api:
    keys = dev_data(data_dir)
    app = build_identity(IdentitySettings(data_dir=data_dir, log_format="text"))
    admin_routes = ("/v1/authorities", "/v1/publishers", "/v1/publishers/{did}/revoke")
    roles = {("POST", path): "admin" for path in admin_routes}
    roles[("POST", "/v1/credentials/revoke")] = "authority"
    roles[("POST", "/v1/practitioners")] = "authority"
    patient = _fresh_key("fuzz-patient")
    return Api(
        "identity",
        app,
        "identity",
        {"admin": keys["admin"], "authority": keys["authority-demo"], "patient": patient},
        roles,
        known={"did": [keys["admin"].did, keys["publisher-demo"].did, patient.did]},
    )


def records_api(data_dir: Path) -> Api:
    keys = dev_data(data_dir)
    settings = RecordsSettings(data_dir=data_dir, log_format="text")
    app = build_records(settings)
    practitioner, patient = _fresh_key("fuzz-practitioner"), _fresh_key("fuzz-patient")
    pseudonym = patient_pseudonym(
        read_pseudonym_key_file(pseudonym_key_path(data_dir)), patient.did
    )
    now = datetime.now(UTC)
    standing = Practitioner(
        did=practitioner.did,
        since=1,
        issuer=keys["authority-demo"].did,
        credential="ab" * 32,
        valid_from=now - timedelta(days=30),
        valid_until=now + timedelta(days=365),
    )
    # What the chain follower writes once the identity events are sealed at height 1.
    with open_database(settings.resolved_database_url) as database, database.transaction() as tx:
        SqlRecordsStore(database=database).apply_block(
            tx,
            practitioners=[standing],
            authorities={},
            patients={pseudonym: 1},
            marks=[],
            position={"height": 1},
        )
    practitioner_routes = [
        ("POST", "/v1/records"),
        ("POST", "/v1/records/{record_id}/versions"),
        ("POST", "/v1/records/{record_id}/break-glass"),
        ("POST", "/fhir"),
        ("POST", "/fhir/{resource_type}"),
    ]
    api = Api(
        "records",
        app,
        "records",
        {"practitioner": practitioner, "patient": patient},
        dict.fromkeys(practitioner_routes, "practitioner"),
    )
    client = TestClient(app)
    created = client.post(
        "/v1/records",
        json={"patient": patient.did, "resource": observation("fuzz seed")},
        headers=api.bearer("POST", "/v1/records"),
    )
    assert created.status_code == 201, created.text
    expires = format_timestamp(now + timedelta(days=30))
    granted = client.post(
        "/v1/consents",
        json={"grantee": practitioner.did, "resource_types": ["Observation"], "expires": expires},
        headers=api.bearer("POST", "/v1/consents"),
    )
    assert granted.status_code == 201, granted.text
    record = str(created.json()["record"])
    api.known = {
        "record_id": [record],
        "resource_id": [record],
        "consent_id": [str(granted.json()["consent"]["consent"])],
        "did": [patient.did, practitioner.did],
        "resource_type": ["Observation", "Patient", "Consent", "AuditEvent"],
        "version_id": ["1"],
        "version": ["1"],
        "_id": [record],
        "patient": [patient.did],
    }
    return api


def billing_api(data_dir: Path) -> Api:
    keys = dev_data(data_dir)
    app = build_billing(BillingSettings(data_dir=data_dir, log_format="text"))
    admin_routes = [
        ("POST", "/v1/tariffs"),
        ("POST", "/v1/invoices/{invoice_id}/payments"),
        ("POST", "/v1/invoices/{invoice_id}/void"),
        ("GET", "/v1/invoices/{invoice_id}"),
        ("GET", "/v1/invoices/{invoice_id}/fhir"),
        ("GET", "/v1/invoices/{invoice_id}/journal"),
    ]
    api = Api(
        "billing",
        app,
        "billing",
        {"admin": keys["admin"], "patient": _fresh_key("fuzz-patient")},
        dict.fromkeys(admin_routes, "admin"),
    )
    deployed = TestClient(app).post(
        "/v1/tariffs", json=CONTRACT_V1, headers=api.bearer("POST", "/v1/tariffs")
    )
    assert deployed.status_code == 201, deployed.text
    return api


def sealer_api(data_dir: Path) -> Api:
    """The sealer's app as `wiring.build` makes it, but with the ingest reading the chain
    state a sealer holds after sealing genesis on an empty store (its sealing loop, which
    would recover that state, needs a broker and is not built)."""
    keys = dev_data(data_dir)
    settings = SealerSettings(data_dir=data_dir, log_format="text")
    identity = load_identity(settings, role="sealer", dids=lambda genesis: {genesis.sealer})
    genesis = build_genesis_block(identity.genesis_event, identity.key, datetime.now(UTC))
    state = ChainVerifier(trusted_genesis=identity.genesis_event).verify_block(genesis).state
    database = open_database(settings.resolved_database_url)
    migrate_sealer(database)
    metrics = ServiceMetrics(service="sealer", instance="sealer", version="fuzz")
    outbox = wire_outbox(settings, database, metrics)
    authenticator = wire_authenticator(settings, database, metrics)
    ingest = build_ingest(
        settings, sealer=SimpleNamespace(state=state), database=database, outbox=outbox
    )
    app = service_app(
        settings,
        version="fuzz",
        identity=identity,
        database=database,
        metrics=metrics,
        components=[outbox.component],
        routers=[ingest_router(ingest)],
    )
    authenticator.install(app)
    return Api(
        "sealer", app, "sealer", {"publisher": keys["publisher-demo"]}, default_role="publisher"
    )


def validator_api(data_dir: Path) -> Iterator[Api]:
    """The validator's routers over SQLite, serving a chain of 4 blocks made final."""
    factory = ChainFactory()
    settings = ValidatorSettings(data_dir=data_dir, log_format="text")
    with open_database(settings.resolved_database_url) as database:
        migrate_chain_store(database)
        store = SqlChainStore(database=database)
        metrics = ServiceMetrics(service="validator", instance="validator-1", version="fuzz")
        validator_metrics = PrometheusValidatorMetrics(metrics.registry)
        origin = default_origin(factory.config.chain_id)

        class Discard:
            def publish(self, attestation: object) -> None:
                del attestation

        validator = Validator(
            store=store,
            key=factory.keys["validator-1"],
            genesis=factory.config,
            genesis_event=factory.genesis_event,
            publisher=Discard(),
            metrics=validator_metrics,
            checkpoint_origin=origin,
        )
        validator.restore()
        factory.seal_many(3, 3)
        for block in factory.blocks:
            validator.receive_block(block_to_json(block))
            for name in ("validator-2", "validator-3"):
                other = sign_attestation(block.header, factory.keys[name], checkpoint_origin=origin)
                validator.receive_attestation(other.model_dump_json().encode())
        queries = ChainQueries(store=store, validator=validator, checkpoint_origin=origin)
        witness = CheckpointWitness(
            store=SqlWitnessStore(database=database),
            key=factory.keys["validator-1"],
            logs={origin: WitnessedLog.of(factory.config)},
            metrics=validator_metrics,
            own_origin=origin,
            own_root=queries.log_root_at,
        )
        identity = ServiceIdentity(
            key=factory.keys["validator-1"],
            genesis=factory.config,
            genesis_event=factory.genesis_event,
        )
        app = service_app(
            settings,
            version="fuzz",
            identity=identity,
            database=database,
            metrics=metrics,
            routers=[
                validator_router(queries),
                checkpoint_router(queries, witness),
                explorer_router(),
            ],
        )
        event = factory.blocks[1].events[0]
        yield Api(
            "validator",
            app,
            None,
            known={
                "height": ["0", "1", "3"],
                "source": [str(event["source"])],
                "id": [str(event["id"])],
                "first": ["1", "2"],
                "second": ["3", str(factory.blocks[-1].header.tree_size)],
                "tree_size": ["2", str(factory.blocks[-1].header.tree_size)],
            },
        )


@contextmanager
def serving(name: str, data_dir: Path) -> Iterator[Api]:
    """The API of service `name`, built under `data_dir`."""
    if name == "validator":
        yield from _once(validator_api(data_dir))
        return
    builders = {
        "identity": identity_api,
        "records": records_api,
        "billing": billing_api,
        "sealer": sealer_api,
    }
    yield builders[name](data_dir)


def _once(apis: Iterator[Api]) -> Iterator[Api]:
    api = next(apis)
    try:
        yield api
    finally:
        apis.close()


SERVICES = ("identity", "records", "billing", "sealer", "validator")
