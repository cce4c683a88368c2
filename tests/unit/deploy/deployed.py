"""What the deployment files deploy: the repository root and each service module's settings."""

from __future__ import annotations

from pathlib import Path

from services.billing.config import BillingSettings
from services.identity.config import IdentitySettings
from services.records.config import RecordsSettings
from services.sealer.config import SealerSettings
from services.validator.config import ValidatorSettings
from shared.runtime.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[3]
#: `python -m <module>` reads these settings (the modules of careledger.topology).
SETTINGS: dict[str, type[ServiceSettings]] = {
    "services.identity": IdentitySettings,
    "services.records": RecordsSettings,
    "services.billing": BillingSettings,
    "services.sealer": SealerSettings,
    "services.validator": ValidatorSettings,
}
