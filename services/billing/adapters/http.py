"""The billing service's HTTP API (docs/billing-api.md): translate requests to use cases.

Every route needs a bearer token (`shared.runtime.auth`); errors take the one shape
`{"reason", "detail"}` (`shared.runtime.errors`). No rule lives here.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures at run time, and
# `CallerOf` below is local to `billing_router`.
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
)

from services.billing.core.fhir import fhir_json
from services.billing.core.model import DeployedContract
from services.billing.core.settlement import Party
from services.billing.errors import (
    ConflictError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    RequestError,
)
from services.billing.service import BillingService, PaymentOutcome
from shared.block import format_timestamp
from shared.events.billing import BillingId, DisputeReason, VoidReason
from shared.runtime.auth import Authenticator, Caller
from shared.runtime.bounds import MAX_SAFE_INTEGER
from shared.runtime.errors import ApiError

__all__ = ["billing_router"]

_STATUS: Final[dict[type[RequestError], int]] = {
    ForbiddenError: 403,
    NotFoundError: 404,
    ConflictError: 409,
    InvalidRequestError: 422,
}
_ID: Final = TypeAdapter(BillingId)


class _Request(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NewPayment(_Request):
    """A payment towards the invoice by one party; `idempotency_key` makes a retry safe."""

    party: Party
    amount: StrictInt = Field(ge=1, le=MAX_SAFE_INTEGER)
    currency: StrictStr = Field(pattern=r"^[A-Z]{3}$")
    reference: StrictStr = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$")
    idempotency_key: StrictStr = Field(min_length=1, max_length=200)


class NewDispute(_Request):
    """Who disputes the invoice, and why (a code: free text could carry PHI)."""

    party: Party
    reason: DisputeReason


class Void(_Request):
    reason: VoidReason


def billing_router(service: BillingService[Any], authenticate: Authenticator) -> APIRouter:
    # Request bodies are limited for every service by `shared.runtime.body`.
    router = APIRouter(prefix="/v1", tags=["billing"])
    CallerOf = Annotated[Caller, Depends(authenticate)]  # noqa: N806 - a type alias

    @router.post("/tariffs", status_code=201)
    def deploy_tariff(body: dict[str, Any], caller: CallerOf) -> JSONResponse:
        """The admin deploys the next tariff contract version (`ContractDeployed`)."""
        with _answers():
            deployed, created = service.deploy_contract(caller.did, body)
            return JSONResponse(_contract(deployed, service), status_code=201 if created else 200)

    @router.get("/tariffs")
    def list_tariffs(caller: CallerOf) -> dict[str, Any]:  # noqa: ARG001 - authenticates
        """Every deployed contract version, oldest first."""
        return {"contracts": [_contract(c, service) for c in service.contracts()]}

    @router.get("/invoices/{invoice_id}")
    def read_invoice(invoice_id: str, caller: CallerOf) -> dict[str, Any]:
        """The invoice, its settlement, payments, refunds and disputes."""
        with _answers():
            return service.invoice(caller.did, _id(invoice_id))

    @router.get("/invoices")
    def list_invoices(
        caller: CallerOf,
        encounter: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    ) -> dict[str, Any]:
        """The invoice of an encounter, or (without `encounter`) a patient's own invoices."""
        with _answers():
            return {"invoices": service.invoices(caller.did, encounter=encounter)}

    @router.get("/invoices/{invoice_id}/fhir")
    def export_invoice(invoice_id: str, caller: CallerOf) -> Response:
        """The invoice as a FHIR R4 Bundle of an `Invoice` and a `Claim`."""
        with _answers():
            bundle = service.fhir(caller.did, _id(invoice_id))
            # `fhir_json`: FastAPI's own encoder would write the exact decimals as floats.
            return Response(fhir_json(bundle), media_type="application/fhir+json")

    @router.get("/invoices/{invoice_id}/journal")
    def journal(invoice_id: str, caller: CallerOf) -> dict[str, Any]:
        """The invoice's double-entry journal entries, in the order they were written."""
        with _answers():
            entries = service.journal(caller.did, _id(invoice_id))
            return {"entries": [entry.model_dump(mode="json") for entry in entries]}

    @router.post("/invoices/{invoice_id}/payments", status_code=201)
    def pay(invoice_id: str, body: NewPayment, caller: CallerOf) -> JSONResponse:
        """Count a payment once per idempotency key (201; the same again: 200)."""
        with _answers():
            outcome = service.pay(
                caller.did,
                _id(invoice_id),
                party=body.party,
                amount=body.amount,
                currency=body.currency,
                reference=body.reference,
                idempotency_key=body.idempotency_key,
            )
            return JSONResponse(
                _payment(outcome, service), status_code=201 if outcome.created else 200
            )

    @router.post("/invoices/{invoice_id}/disputes", status_code=201)
    def dispute(invoice_id: str, body: NewDispute, caller: CallerOf) -> JSONResponse:
        """Open a dispute on the invoice (`InvoiceDisputed`)."""
        with _answers():
            opened, _ = service.dispute(
                caller.did, _id(invoice_id), party=body.party, reason=body.reason
            )
            answer = {
                "dispute_id": opened.dispute_id,
                "invoice": service.invoice(caller.did, opened.invoice_id),
            }
            return JSONResponse(answer, status_code=201)

    @router.post("/invoices/{invoice_id}/void")
    def void(invoice_id: str, body: Void, caller: CallerOf) -> dict[str, Any]:
        """The admin voids an unpaid invoice (`InvoiceVoided`; the journal entry reversed)."""
        with _answers():
            voided = service.void(caller.did, _id(invoice_id), reason=body.reason)
            return service.invoice(caller.did, voided.invoice_id)

    return router


def _contract(deployed: DeployedContract, service: BillingService[Any]) -> dict[str, Any]:
    return {
        "contract_id": deployed.contract.contract_id,
        "version": deployed.contract.version,
        "content_hash": deployed.content_hash,
        "effective_from": deployed.contract.effective_from,
        "deployed_at": format_timestamp(deployed.deployed_at),
        "event": {"source": service.source, "id": deployed.event_id},
        "contract": deployed.contract.model_dump(mode="json"),
    }


def _payment(outcome: PaymentOutcome, service: BillingService[Any]) -> dict[str, Any]:
    payment = outcome.payment
    return {
        "payment_id": payment.payment_id,
        "created": outcome.created,
        "applied": payment.applied,
        "excess": payment.excess,
        "event": {"source": service.source, "id": payment.event_id},
        "refund_id": None if outcome.refund is None else outcome.refund.refund_id,
        "invoice": service.invoice_document_of(outcome.invoice),
    }


def _id(text: str) -> str:
    try:
        return _ID.validate_python(text)
    except ValidationError:
        raise NotFoundError("no such invoice") from None


@contextmanager
def _answers() -> Iterator[None]:
    """The use cases' deliberate errors as API errors; anything else is a bug (500)."""
    try:
        yield
    except RequestError as exc:
        status = next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), 400)
        raise ApiError(status, exc.reason, str(exc)) from exc
