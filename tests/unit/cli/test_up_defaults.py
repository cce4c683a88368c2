"""`careledger up` runs the sealer with one verify worker when the validators share its box."""

from __future__ import annotations

from careledger.topology import ServiceSpec, default_services
from careledger.up import VERIFY_WORKERS_ENV, one_box_defaults

SERVICES = default_services(port_offset=0)


def only(*names: str) -> list[ServiceSpec]:
    return [spec for spec in SERVICES if spec.name in names]


def test_the_sealer_checks_in_process_when_validators_share_the_box() -> None:
    assert one_box_defaults(SERVICES, {}) == {VERIFY_WORKERS_ENV: "1"}
    assert one_box_defaults(only("sealer", "validator-2"), {}) == {VERIFY_WORKERS_ENV: "1"}


def test_a_sealer_alone_keeps_its_pool_and_a_setting_given_is_kept() -> None:
    assert one_box_defaults(only("sealer"), {}) == {}
    assert one_box_defaults(only("validator-1", "identity"), {}) == {}
    assert one_box_defaults(SERVICES, {VERIFY_WORKERS_ENV: "2"}) == {}
