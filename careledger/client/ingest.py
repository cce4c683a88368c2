"""The HTTP ingest from the publisher's side: `POST /v1/events` on the sealer (docs/client.md).

For platforms that cannot reach Kafka: the event is signed here as for Kafka and posted in
the CloudEvents HTTP binding's structured mode, with a bearer token (EdDSA JWT, `aud`
``sealer``) signed by the same key, since the ingest accepts only events its caller signed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx

from careledger.client.closing import HttpBacked
from careledger.client.errors import IngestError, ServiceUnavailableError
from shared.auth import bearer_headers
from shared.crypto import SigningKey
from shared.envelope import CONTENT_TYPE, encode_event

__all__ = ["INGEST_AUDIENCE", "IngestAccepted", "IngestClient"]

#: The `aud` of the ingest's bearer tokens: the service that hosts it (ADR 0016).
INGEST_AUDIENCE: Final = "sealer"


@dataclass(frozen=True, slots=True)
class IngestAccepted:
    """The 202 answer: the event is durably queued for `topic`; poll `receipt_url`."""

    source: str
    id: str
    topic: str
    receipt_url: str


class IngestClient(HttpBacked):
    """Posts signed events to a sealer's HTTP ingest (default ``http://127.0.0.1:8104``)."""

    def __init__(
        self,
        key: SigningKey,
        *,
        url: str = "http://127.0.0.1:8104",
        http: httpx.Client | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._key = key
        self._url = f"{url.rstrip('/')}/v1/events"
        super().__init__(http, timeout=timeout)

    def post(self, event: Mapping[str, Any]) -> IngestAccepted:
        """Post one signed event; `IngestError` (status, reason, detail) if refused."""
        headers = {"Content-Type": CONTENT_TYPE, **bearer_headers(self._key, INGEST_AUDIENCE)}
        try:
            response = self._http.post(self._url, content=encode_event(event), headers=headers)
        except httpx.HTTPError as exc:
            raise ServiceUnavailableError(f"{self._url}: {exc}") from exc
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        if response.status_code != 202:
            raise IngestError(
                response.status_code,
                str(body.get("reason", "http_error")),
                str(body.get("detail", response.text[:300])),
            )
        return IngestAccepted(
            source=str(body["source"]),
            id=str(body["id"]),
            topic=str(body["topic"]),
            receipt_url=response.headers.get("Location", ""),
        )
