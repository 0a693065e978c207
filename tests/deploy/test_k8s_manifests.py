"""deploy/k8s builds (base, production, production-hpa) into objects that pass the Kubernetes schemas and the checks
a platform team makes before applying them.

The overlays use only `resources:` and JSON6902 `patches:`, so the build below is exactly kustomize's for them (and
it refuses any other kustomization field rather than ignore it). Core objects are validated with kubernetes-validate
(the Kubernetes OpenAPI schemas ship inside the package, strict: unknown fields fail); the KEDA ScaledObject, a CRD,
against its vendored openAPIV3Schema (tests/deploy/schemas/), as strict as `kubectl apply --validate=strict`.
No network and no cluster.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonpatch
import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from relay_contracts.topics import INTEGRATION_TYPES, deliveries_requested
from relay_deliver_azure_blob.settings import Settings as AzureBlobSettings
from relay_deliver_email.settings import Settings as EmailSettings
from relay_deliver_s3.settings import Settings as S3Settings
from relay_deliver_sftp.settings import Settings as SftpSettings
from relay_deliver_zapier.settings import Settings as ZapierSettings
from relay_delivery import DelivererSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
# The oldest Kubernetes minor still commonly run; the manifests use nothing newer.
KUBERNETES_VERSION = "1.31"
OPS_PORT = 9100
BUILDS = {
    "base": K8S / "base",
    "production": K8S / "overlays" / "production",
    "production-hpa": K8S / "overlays" / "production-hpa",
    "production-sizing": K8S / "overlays" / "production-sizing",
}
# Every service folder of the workspace: a new service without manifests fails here.
SERVICES = {path.name for path in (ROOT / "services").iterdir() if (path / "pyproject.toml").is_file()}
# The deliverers' own defaults, so a renamed group or topic fails here rather than silently stopping the scaling.
DELIVERER_SETTINGS: dict[str, type[DelivererSettings]] = {
    "email": EmailSettings,
    "sftp": SftpSettings,
    "s3": S3Settings,
    "azure-blob": AzureBlobSettings,
    "zapier": ZapierSettings,
}
DELIVERER_GROUPS: dict[str, str] = {
    f"deliver-{integration_type}": settings.model_fields["consumer_group"].default
    for integration_type, settings in DELIVERER_SETTINGS.items()
}
DELIVERER_TOPICS = {f"deliver-{t}": deliveries_requested(t) for t in INTEGRATION_TYPES}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|SIGNING_KEY|PRIVATE_KEY|DATABASE_URL|CONNECTION_STRING")
# Secrets the operator creates (docs/deployment.md); manifests only reference them.
OPERATOR_SECRETS = {"recipe-relay-secrets", "recipe-relay-tenants", "recipe-relay-integrations"}
KUSTOMIZATION_FIELDS = {"apiVersion", "kind", "resources", "patches"}

Manifest = dict[str, Any]


def _load_yaml_documents(path: Path) -> list[Manifest]:
    with path.open(encoding="utf-8") as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc is not None]


def _matches(target: dict[str, str], obj: Manifest) -> bool:
    group, _, version = obj["apiVersion"].rpartition("/")
    wanted = {"group": group, "version": version, "kind": obj["kind"], "name": obj["metadata"]["name"]}
    unknown = set(target) - set(wanted)
    assert not unknown, f"patch target fields this build does not implement: {unknown}"
    return all(wanted[key] == value for key, value in target.items())


@cache
def _build(directory: Path) -> tuple[Manifest, ...]:
    kustomization = _load_yaml_documents(directory / "kustomization.yaml")[0]
    assert set(kustomization) <= KUSTOMIZATION_FIELDS, f"{directory}: only resources and JSON6902 patches"
    objects: list[Manifest] = []
    for resource in kustomization.get("resources", []):
        path = (directory / resource).resolve()
        objects.extend(copy.deepcopy(list(_build(path))) if path.is_dir() else _load_yaml_documents(path))
    for entry in kustomization.get("patches", []):
        assert set(entry) == {"target", "patch"}, f"{directory}: inline JSON6902 patch with a target: {entry}"
        operations = yaml.safe_load(entry["patch"])
        for operation in operations:
            assert operation["op"] in {"add", "replace", "remove", "test"}, operation
        patch = jsonpatch.JsonPatch(operations)
        targets = [i for i, obj in enumerate(objects) if _matches(entry["target"], obj)]
        # kustomize would skip a target that matches nothing; here that is a typo, so it fails.
        assert targets, f"{directory}: patch target {entry['target']} matches no object"
        for index in targets:
            objects[index] = patch.apply(objects[index])
    ids = [(obj["apiVersion"], obj["kind"], obj["metadata"]["name"]) for obj in objects]
    duplicates = {i for i in ids if ids.count(i) > 1}
    assert not duplicates, f"{directory}: kustomize refuses duplicate objects {duplicates}"
    return tuple(objects)


def build(name: str) -> list[Manifest]:
    return copy.deepcopy(list(_build(BUILDS[name])))


def _of_kind(objects: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == kind}


def _strict(schema: Any) -> Any:
    """The CRD schema with unknown fields refused, as the API server's strict field validation does.

    A structural schema prunes unknown fields silently; a misspelt `lagTreshold` would vanish and the scaler
    would run on its default, so the test refuses it instead.
    """
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: _strict(value) for key, value in schema.items()}
    if (
        "properties" in strict
        and "additionalProperties" not in strict
        and not strict.get("x-kubernetes-preserve-unknown-fields")
    ):
        strict["additionalProperties"] = False
    return strict


@cache
def _scaledobject_validator() -> jsonschema.protocols.Validator:
    schema = _strict(_load_yaml_documents(SCHEMAS / "keda-scaledobject-v1alpha1.yaml")[0])
    validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    validator_class.check_schema(schema)
    validator: jsonschema.protocols.Validator = validator_class(schema)
    return validator


def _containers(deployment: Manifest) -> list[Manifest]:
    pod = deployment["spec"]["template"]["spec"]
    return [*pod.get("initContainers", []), *pod["containers"]]


def _port_number(container: Manifest, port: int | str) -> int:
    if isinstance(port, int):
        return port
    [number] = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    return int(number)


_QUANTITY = re.compile(r"^(?P<number>[0-9.]+)(?P<unit>m|Ki|Mi|Gi|Ti)?$")
_UNITS = {None: 1.0, "m": 0.001, "Ki": 1024.0, "Mi": 1024.0**2, "Gi": 1024.0**3, "Ti": 1024.0**4}


def _quantity(text: str | int) -> float:
    match = _QUANTITY.match(str(text))
    assert match is not None, f"unexpected quantity {text!r}"
    return float(match["number"]) * _UNITS[match["unit"]]


def _walk(value: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair in a manifest, at any depth."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key), item
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


# --- schemas -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_every_object_passes_its_schema(name: str) -> None:
    objects = build(name)
    assert objects
    for obj in objects:
        label = f"{name}: {obj['kind']}/{obj['metadata']['name']}"
        if obj["apiVersion"] == "keda.sh/v1alpha1":
            errors = sorted(_scaledobject_validator().iter_errors(obj), key=lambda e: list(e.absolute_path))
            assert not errors, f"{label}: " + "; ".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
        else:
            try:
                kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as error:
                pytest.fail(f"{label}: {'.'.join(map(str, error.path))}: {error.message}")


def test_the_scaledobject_schema_refuses_a_misspelt_field() -> None:
    scaled = _of_kind(build("production"), "ScaledObject")["deliver-s3"]
    assert not list(_scaledobject_validator().iter_errors(scaled))
    scaled["spec"]["maxReplicaCont"] = 4
    scaled["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 50  # metadata values are strings
    assert len(list(_scaledobject_validator().iter_errors(scaled))) == 2


def test_kubernetes_validate_refuses_an_unknown_field() -> None:
    deployment = _of_kind(build("base"), "Deployment")["retry"]
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


# --- what a platform team checks -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_every_service_has_a_deployment_a_service_and_a_pdb_that_select_its_pods(name: str) -> None:
    objects = build(name)
    deployments = _of_kind(objects, "Deployment")
    services = _of_kind(objects, "Service")
    budgets = _of_kind(objects, "PodDisruptionBudget")
    assert set(deployments) == SERVICES
    assert set(services) == SERVICES
    assert set(budgets) == SERVICES
    for service in SERVICES:
        pod_labels = deployments[service]["spec"]["template"]["metadata"]["labels"]
        selector = deployments[service]["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pod_labels.items()
        assert services[service]["spec"]["selector"] == selector
        assert budgets[service]["spec"]["selector"]["matchLabels"] == selector
        # maxUnavailable, not minAvailable: a one-replica service must not block node drains forever.
        assert budgets[service]["spec"].get("maxUnavailable") == 1
        ports = {p["name"]: p["port"] for p in services[service]["spec"]["ports"]}
        assert ports["ops"] == OPS_PORT


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_probes_use_the_ops_port_and_prometheus_scrapes_it(name: str) -> None:
    for service, deployment in _of_kind(build(name), "Deployment").items():
        template = deployment["spec"]["template"]
        [container] = template["spec"]["containers"]
        liveness = container["livenessProbe"]["httpGet"]
        readiness = container["readinessProbe"]["httpGet"]
        assert (liveness["path"], _port_number(container, liveness["port"])) == ("/healthz", OPS_PORT), service
        assert (readiness["path"], _port_number(container, readiness["port"])) == ("/readyz", OPS_PORT), service
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(OPS_PORT)
        assert annotations["prometheus.io/path"] == "/metrics"
        env = {e["name"]: e for e in container.get("env", [])}
        assert env["OTEL_SERVICE_NAME"]["value"] == service


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_every_container_has_requests_within_limits(name: str) -> None:
    for service, deployment in _of_kind(build(name), "Deployment").items():
        for container in _containers(deployment):
            resources = container["resources"]
            for resource in ("cpu", "memory"):
                request = _quantity(resources["requests"][resource])
                limit = _quantity(resources["limits"][resource])
                assert 0 < request <= limit, f"{service}: {resource} request {request} over limit {limit}"


def test_production_is_bigger_than_base() -> None:
    base = _of_kind(build("base"), "Deployment")
    production = _of_kind(build("production"), "Deployment")
    for service in SERVICES:
        [small] = base[service]["spec"]["template"]["spec"]["containers"]
        [large] = production[service]["spec"]["template"]["spec"]["containers"]
        for kind in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                assert _quantity(large["resources"][kind][resource]) >= _quantity(small["resources"][kind][resource])
        if service not in DELIVERER_GROUPS:
            assert production[service]["spec"]["replicas"] >= 2, service


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_pods_run_as_non_root_on_a_read_only_root_filesystem(name: str) -> None:
    for service, deployment in _of_kind(build(name), "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, service
        assert pod["securityContext"]["runAsUser"] != 0, service
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", service
        assert pod["automountServiceAccountToken"] is False, service
        assert pod["serviceAccountName"] == "recipe-relay"
        for container in _containers(deployment):
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, service
            assert context["allowPrivilegeEscalation"] is False, service
            assert context["capabilities"]["drop"] == ["ALL"], service
            assert context.get("privileged", False) is False, service
            assert context.get("runAsUser", 10001) != 0, service


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_no_secret_value_is_in_any_manifest(name: str) -> None:
    objects = build(name)
    assert not [obj for obj in objects if obj["kind"] == "Secret"], "Secrets are the operator's to create"
    [config] = _of_kind(objects, "ConfigMap").values()
    for key in config["data"]:
        assert not SECRET_NAME.search(key), f"ConfigMap carries {key}: it belongs in a Secret"
    for service, deployment in _of_kind(objects, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        for container in _containers(deployment):
            for variable in container.get("env", []):
                if SECRET_NAME.search(variable["name"]):
                    assert "value" not in variable, f"{service}: {variable['name']} has a literal value"
                    assert variable["valueFrom"]["secretKeyRef"]["name"] in OPERATOR_SECRETS
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in OPERATOR_SECRETS
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                assert volume["secret"]["secretName"] in OPERATOR_SECRETS
    # Nothing that looks like a credential anywhere else either (annotations, scaler metadata...).
    for obj in objects:
        for key, value in _walk(obj):
            reference = key in {"secretName", "secretKeyRef", "secretRef"}
            if SECRET_NAME.search(key.upper().replace("-", "_")) and isinstance(value, str) and not reference:
                pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {key}: {value!r}")


def test_the_tenant_file_is_a_read_only_secret_mount_where_the_services_look() -> None:
    objects = build("base")
    [config] = _of_kind(objects, "ConfigMap").values()
    tenants_file = Path(config["data"]["RELAY_TENANTS_FILE"])
    for service, deployment in _of_kind(objects, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        [container] = pod["containers"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        [mount] = [m for m in container["volumeMounts"] if Path(m["mountPath"]) == tenants_file.parent]
        assert mount["readOnly"] is True, service
        secret = volumes[mount["name"]]["secret"]
        assert secret["secretName"] == "recipe-relay-tenants"
        assert [item["path"] for item in secret["items"]] == [tenants_file.name]


def test_only_the_link_signers_and_verifier_get_the_link_key() -> None:
    holders = set()
    for service, deployment in _of_kind(build("base"), "Deployment").items():
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        if "LINKS_SIGNING_KEY" in {e["name"] for e in container.get("env", [])}:
            holders.add(service)
    assert holders == set(DELIVERER_GROUPS) | {"ingest-api"}


def test_every_deliverer_scales_on_its_own_group_and_topic_with_keda() -> None:
    objects = build("production")
    scaled = _of_kind(objects, "ScaledObject")
    deployments = _of_kind(objects, "Deployment")
    [config] = _of_kind(objects, "ConfigMap").values()
    assert set(scaled) == set(DELIVERER_GROUPS)
    assert not _of_kind(objects, "HorizontalPodAutoscaler"), "KEDA makes its own HPA; a second one would fight it"
    for deliverer, group in DELIVERER_GROUPS.items():
        spec = scaled[deliverer]["spec"]
        assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": deliverer}
        [trigger] = spec["triggers"]
        assert trigger["type"] == "kafka"
        metadata = trigger["metadata"]
        assert metadata["consumerGroup"] == group == deliverer
        assert metadata["topic"] == DELIVERER_TOPICS[deliverer]
        assert metadata["bootstrapServers"] == config["data"]["KAFKA_BOOTSTRAP_SERVERS"]
        assert int(metadata["lagThreshold"]) > 0
        assert 1 <= spec["minReplicaCount"] < spec["maxReplicaCount"]
        # The autoscaler owns the count: a replicas field would be reset by every `kubectl apply`.
        assert "replicas" not in deployments[deliverer]["spec"], deliverer


def test_without_keda_every_deliverer_has_a_cpu_hpa() -> None:
    objects = build("production-hpa")
    assert not _of_kind(objects, "ScaledObject")
    hpas = _of_kind(objects, "HorizontalPodAutoscaler")
    deployments = _of_kind(objects, "Deployment")
    assert set(hpas) == set(DELIVERER_GROUPS)
    for deliverer, hpa in hpas.items():
        assert hpa["apiVersion"] == "autoscaling/v2"
        spec = hpa["spec"]
        assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": deliverer}
        [metric] = spec["metrics"]
        assert metric["resource"]["name"] == "cpu"
        assert 1 <= spec["minReplicas"] < spec["maxReplicas"]
        assert "replicas" not in deployments[deliverer]["spec"], deliverer


def test_the_deployment_guide_names_every_secret_key_the_manifests_read() -> None:
    guide = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    keys = set()
    for deployment in _of_kind(build("base"), "Deployment").values():
        for container in _containers(deployment):
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    keys.add(ref["key"])
    assert keys
    for secret in OPERATOR_SECRETS:
        assert secret in guide
    missing = {key for key in keys if f"--from-literal={key}=" not in guide and f"--from-file={key}=" not in guide}
    assert not missing, f"docs/deployment.md does not show how to create {missing}"
