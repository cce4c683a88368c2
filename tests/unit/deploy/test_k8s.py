"""deploy/k8s: schema-valid Kubernetes objects (kubernetes-validate's bundled schemas, offline)
that deploy every service as the code expects.

Semantic checks: the workload kinds (StatefulSets for the sealer and validators, Deployments
for the APIs), probes on /readyz and /healthz at the service's own port, requests and limits,
a non-root security context, a PodDisruptionBudget that keeps the validators' quorum, every
variable read by the service's settings class, every secret a file from a Secret that is
referenced, never committed.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from careledger.devchain import ensure_dev_chain
from careledger.topology import ServiceSpec, default_services
from shared.keystore import read_genesis_file
from tests.unit.deploy.deployed import ROOT, SETTINGS

K8S = ROOT / "deploy/k8s"
#: The oldest Kubernetes release still supported upstream when this was written, and the newest
#: the validator bundles.
VERSIONS = ["1.31.0", kubernetes_validate.latest_version()]
KINDS = {
    "identity": "Deployment",
    "records": "Deployment",
    "billing": "Deployment",
    "sealer": "StatefulSet",
    "validator-1": "StatefulSet",
    "validator-2": "StatefulSet",
    "validator-3": "StatefulSet",
}
#: Replicated but without a PDB, and why: the standby is never ready while the writer holds
#: the lease, so any budget would forbid evicting the writer and block its node's drain.
NO_PDB = {"sealer"}


def manifests() -> list[Path]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return [K8S / name for name in kustomization["resources"]]


@functools.cache
def parsed() -> tuple[dict[str, Any], ...]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    texts = [path.read_text() for path in manifests()]
    return tuple(doc for text in texts for doc in yaml.load_all(text, loader) if doc)


def objects() -> list[dict[str, Any]]:
    """Fresh copies: a test may change what it got."""
    return copy.deepcopy(list(parsed()))


def find(kind: str, name: str) -> dict[str, Any]:
    [found] = [o for o in parsed() if o["kind"] == kind and o["metadata"]["name"] == name]
    return copy.deepcopy(found)


def workload(spec: ServiceSpec) -> dict[str, Any]:
    return find(KINDS[spec.name], spec.name)


def container(spec: ServiceSpec) -> dict[str, Any]:
    [only] = workload(spec)["spec"]["template"]["spec"]["containers"]
    return only


def test_kustomization_lists_every_manifest_once() -> None:
    listed = sorted(p.name for p in manifests())
    on_disk = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert listed == on_disk
    assert len(set(listed)) == len(listed)


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_matches_the_kubernetes_schema(version: str) -> None:
    for document in objects():
        kubernetes_validate.validate(document, version, strict=True)


def test_the_schema_check_rejects_a_broken_object() -> None:
    broken = find("StatefulSet", "sealer")
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"
    broken["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


def test_everything_lives_in_the_careledger_namespace() -> None:
    for document in objects():
        if document["kind"] != "Namespace":
            assert document["metadata"]["namespace"] == "careledger", document["metadata"]


@pytest.mark.parametrize("spec", default_services(), ids=lambda spec: spec.name)
def test_each_service_runs_its_module_on_its_port_behind_a_service(spec: ServiceSpec) -> None:
    running = workload(spec)
    assert running["kind"] == KINDS[spec.name]
    if running["kind"] == "StatefulSet":
        assert running["spec"]["serviceName"] == spec.name
    main = container(spec)
    assert main["args"] == [spec.module]
    assert main["ports"] == [{"name": "http", "containerPort": spec.port, "protocol": "TCP"}]
    pod_labels = running["spec"]["template"]["metadata"]["labels"]
    selector = running["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    service = find("Service", spec.name)
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["port"] == spec.port
    assert service["spec"]["ports"][0]["targetPort"] == "http"


@pytest.mark.parametrize("spec", default_services(), ids=lambda spec: spec.name)
def test_probes_requests_limits_and_a_non_root_context(spec: ServiceSpec) -> None:
    main = container(spec)
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert main["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    for kind in ("requests", "limits"):
        assert set(main["resources"][kind]) == {"cpu", "memory"}, kind
    pod = workload(spec)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] not in {0, None}
    assert pod["automountServiceAccountToken"] is False
    context = main["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"]["drop"] == ["ALL"]


def test_every_replicated_workload_has_a_budget_and_the_validators_keep_their_quorum(
    tmp_path: Path,
) -> None:
    budgets = [o for o in objects() if o["kind"] == "PodDisruptionBudget"]
    for spec in default_services():
        running = workload(spec)
        pod_labels = running["spec"]["template"]["metadata"]["labels"]
        covering = [
            b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        ]
        if running["spec"]["replicas"] > 1 and spec.name not in NO_PDB:
            assert covering, spec.name
        for budget in covering:  # a budget of 0 evictions over one pod would block drains
            assert budget["spec"].get("maxUnavailable", 1) >= 1, budget["metadata"]["name"]
    ensure_dev_chain(tmp_path)
    _, genesis = read_genesis_file(tmp_path / "genesis.json")
    [validators] = [b for b in budgets if b["metadata"]["name"] == "validators"]
    covered = [
        spec.name
        for spec in default_services()
        if validators["spec"]["selector"]["matchLabels"].items()
        <= workload(spec)["spec"]["template"]["metadata"]["labels"].items()
    ]
    assert covered == ["validator-1", "validator-2", "validator-3"]
    assert 1 <= validators["spec"]["maxUnavailable"] <= len(genesis.validators) - genesis.quorum


def test_the_sealer_has_a_standby_on_another_node() -> None:
    sealer = find("StatefulSet", "sealer")
    assert sealer["spec"]["replicas"] == 2
    [term] = sealer["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    assert term["topologyKey"] == "kubernetes.io/hostname"


def pod_environment(spec: ServiceSpec) -> dict[str, str]:
    """What the container's process sees: the ConfigMaps it takes whole, then its own env."""
    main = container(spec)
    environment: dict[str, str] = {}
    for source in main.get("envFrom", []):
        environment |= find("ConfigMap", source["configMapRef"]["name"])["data"]
    for variable in main["env"]:
        assert "valueFrom" not in variable, "a variable taken from a Secret: use a *_FILE"
        environment[variable["name"]] = variable["value"]
    return environment


def mounted_files(spec: ServiceSpec) -> dict[str, dict[str, Any]]:
    """Every file a Secret or ConfigMap volume puts in the container -> its volume."""
    pod = workload(spec)["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    files = {}
    for mount in container(spec)["volumeMounts"]:
        volume = volumes[mount["name"]]
        source = volume.get("secret") or volume.get("configMap")
        for item in (source or {}).get("items", []):
            files[f"{mount['mountPath']}/{item['path']}"] = volume
    return files


@pytest.mark.parametrize("spec", default_services(), ids=lambda spec: spec.name)
def test_every_variable_is_read_by_the_settings_and_they_start_in_prod(
    spec: ServiceSpec, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings_type = SETTINGS[spec.module]
    environment = pod_environment(spec)
    assert set(environment) - set(settings_type.environment_variables()) == set()
    files = mounted_files(spec)
    for variable, value in environment.items():
        if variable.endswith("_FILE"):
            assert value in files, f"{variable}={value} is not a mounted file"
            local = tmp_path / variable
            local.write_text("stand-in\n")
            value = str(local)  # noqa: PLW2901 - the local stand-in of the mounted file
        monkeypatch.setenv(variable, value)
    settings = settings_type()
    assert settings.env == "prod"
    assert settings.instance_name == spec.name
    assert settings.listen_port == spec.port
    assert settings.resolved_database_url.endswith(f"/{spec.name}")


@pytest.mark.parametrize("spec", default_services(), ids=lambda spec: spec.name)
def test_each_service_mounts_its_own_key_and_no_other(spec: ServiceSpec) -> None:
    environment = pod_environment(spec)
    files = mounted_files(spec)
    key = files[environment["CARELEDGER_KEY_FILE"]]
    assert key["secret"]["secretName"] == f"careledger-{spec.name}-key"
    secrets = {v["secret"]["secretName"] for v in files.values() if "secret" in v}
    keys = {name for name in secrets if name.endswith("-key")}
    pseudonymizing = "CARELEDGER_PSEUDONYM_KEY_FILE" in environment
    assert keys == {f"careledger-{spec.name}-key"} | (
        {"careledger-pseudonym-key"} if pseudonymizing else set()
    )
    for volume in files.values():
        if "secret" in volume:
            assert volume["secret"]["defaultMode"] & 0o007 == 0, "secrets readable by others"


def test_no_secret_or_genesis_is_committed() -> None:
    kinds = {o["kind"] for o in objects()}
    assert "Secret" not in kinds
    assert not [o for o in objects() if o["metadata"]["name"] == "careledger-genesis"]
    for document in objects():
        if document["kind"] == "ConfigMap":
            for name in document["data"]:
                assert not any(w in name for w in ("PASSWORD", "SECRET", "TOKEN")) or (
                    name.endswith("_FILE")
                ), name


def test_the_topics_job_creates_replicated_topics_once() -> None:
    job = find("Job", "careledger-topics")
    [main] = job["spec"]["template"]["spec"]["containers"]
    assert main["args"] == ["careledger", "topics", "--replication-factor", "3"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"
    # It names the topics with the prefix the services read from the same ConfigMap.
    shared = {"name": "careledger-config", "key": "CARELEDGER_TOPIC_PREFIX"}
    taken = {v["name"]: v["valueFrom"]["configMapKeyRef"] for v in main["env"]}
    assert taken["CARELEDGER_TOPIC_PREFIX"] == shared
    assert "CARELEDGER_TOPIC_PREFIX" in find("ConfigMap", "careledger-config")["data"]
    for spec in default_services():
        assert {"configMapRef": {"name": "careledger-config"}} in container(spec)["envFrom"]
