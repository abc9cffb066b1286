"""deploy/kubernetes, checked without a cluster: the base and the example overlay are rendered
(by tests/deploy/kustomize_lite.py), every object is validated against the Kubernetes API schema
of one concrete version, and the product's facts are asserted on the result."""

from __future__ import annotations

import base64
import functools
import re
import shutil
import subprocess
from dataclasses import fields
from fractions import Fraction
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from shared.settings import PREFIX, Settings, SettingsError, load_settings
from tests.deploy.kustomize_lite import (
    Object,
    object_key,
    pod_containers,
    pod_template,
    render,
    split_image,
)

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
BASE = KUBERNETES / "base"
OVERLAY = KUBERNETES / "overlays" / "example"
VARIANTS = {"base": BASE, "overlay": OVERLAY}

KUBERNETES_VERSION = "1.33.0"
OVERLAY_NAMESPACE = "heartbeat"
OVERLAY_IMAGE = "registry.example.com/heartbeat/heartbeat-control-plane:0.1.0"
IMAGE_UID = 10001  # the Dockerfile's `hb` user

SERVICE_COMMANDS = ("migrate", "ingest", "api", "flusher")
HTTP_PORTS = {"ingest": 8080, "api": 8081}  # the components that serve HTTP, and where
NEEDS_TOKEN_KEYS = {"ingest", "api"}
USES_POSTGRES = {"api", "flusher", "migrate"}
SETTING_NAMES = {PREFIX + f.name.upper() for f in fields(Settings)}


@functools.cache
def _rendered(variant: str) -> list[Object]:
    return render(VARIANTS[variant])


@pytest.fixture(params=sorted(VARIANTS))
def objects(request: pytest.FixtureRequest) -> list[Object]:
    """The rendered objects of the base, then of the example overlay."""
    return _rendered(request.param)


@pytest.fixture
def overlay() -> list[Object]:
    return _rendered("overlay")


# --- helpers -----------------------------------------------------------------------------------


def of_kind(objects: list[Object], kind: str) -> dict[str, Object]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def generated(objects: list[Object], kind: str, name: str) -> Object:
    """The ConfigMap or Secret generated as `name` (its rendered name has a hash suffix)."""
    found = [o for n, o in of_kind(objects, kind).items() if re.fullmatch(rf"{name}-\w{{10}}", n)]
    assert len(found) == 1, f"one generated {kind} {name}"
    return found[0]


def component(obj: Object) -> str:
    return str(obj["metadata"]["labels"]["app.kubernetes.io/component"])


def deployments(objects: list[Object]) -> dict[str, Object]:
    """Deployments by component."""
    return {component(d): d for d in of_kind(objects, "Deployment").values()}


def pod_owners(objects: list[Object]) -> list[Object]:
    return [o for o in objects if pod_template(o) is not None]


def pod_spec(obj: Object) -> Object:
    template = pod_template(obj)
    assert template is not None
    return dict(template["spec"])


def main_container(obj: Object) -> Object:
    (container,) = pod_spec(obj)["containers"]
    return dict(container)


def all_containers(objects: list[Object]) -> list[tuple[Object, Object]]:
    """(owner, container) for every container and init container."""
    return [(o, c) for o in pod_owners(objects) for c in pod_containers(pod_spec(o))]


def where(owner: Object, container: Object) -> str:
    return f"{owner['kind']} {owner['metadata']['name']}, container {container['name']}"


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def quantity(value: str | int | float) -> Fraction:
    """A Kubernetes resource quantity (the forms used here: plain, m, Ki..Ti, k..T)."""
    text = str(value)
    suffixes: dict[str, Fraction] = {"m": Fraction(1, 1000)}
    suffixes |= {s: Fraction(10) ** (3 * (i + 1)) for i, s in enumerate("kMGT")}
    suffixes |= {s + "i": Fraction(2) ** (10 * (i + 1)) for i, s in enumerate("KMGT")}
    for suffix, factor in sorted(suffixes.items(), key=lambda item: -len(item[0])):
        if text.endswith(suffix):
            return Fraction(text[: -len(suffix)]) * factor
    return Fraction(text)


def environment(container: Object, objects: list[Object]) -> dict[str, str]:
    """The variables the container starts with, resolved from the rendered ConfigMaps and
    Secrets (a missing object or key is an error, as it is for the kubelet)."""
    config_maps, secrets = of_kind(objects, "ConfigMap"), of_kind(objects, "Secret")

    def secret_data(name: str) -> dict[str, str]:
        data = secrets[name].get("data", {})
        return {k: base64.b64decode(v).decode() for k, v in data.items()}

    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(config_maps[source["configMapRef"]["name"]].get("data", {}))
        else:
            env.update(secret_data(source["secretRef"]["name"]))
    for variable in container.get("env", []):
        if "value" in variable:
            env[variable["name"]] = variable["value"]
            continue
        value_from = variable["valueFrom"]
        if "secretKeyRef" in value_from:
            ref = value_from["secretKeyRef"]
            env[variable["name"]] = secret_data(ref["name"])[ref["key"]]
        else:
            ref = value_from["configMapKeyRef"]
            env[variable["name"]] = config_maps[ref["name"]]["data"][ref["key"]]
    return env


def subcommand(container: Object) -> str:
    command = container.get("command", [])
    assert command[:1] == ["hb"] and "args" not in container, container["name"]
    return str(command[1])


def option(container: Object, name: str) -> str | None:
    command = container["command"]
    return str(command[command.index(name) + 1]) if name in command else None


# --- the objects are valid Kubernetes ------------------------------------------------------------


def test_every_object_is_valid_for_kubernetes_1_33_with_no_unknown_fields(objects) -> None:
    problems = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            problems.append(f"{obj['kind']} {obj['metadata']['name']}: {path}: {exc.message}")
    assert not problems, "\n".join(problems)


def test_base_and_overlay_ship_the_product_objects(objects) -> None:
    assert set(deployments(objects)) == {"ingest", "api", "flusher"}
    assert set(of_kind(objects, "Job")) == {"hb-migrate"}
    assert set(of_kind(objects, "Service")) == {"hb-ingest", "hb-api"}
    assert set(of_kind(objects, "HorizontalPodAutoscaler")) == {"hb-ingest"}
    assert set(of_kind(objects, "PodDisruptionBudget")) == {"hb-ingest", "hb-api"}
    generated(objects, "ConfigMap", "hb-config")
    generated(objects, "Secret", "hb-secrets")


def test_overlay_puts_every_object_in_its_namespace_and_creates_that_namespace(overlay) -> None:
    (namespace,) = of_kind(overlay, "Namespace").values()
    assert namespace["metadata"]["name"] == OVERLAY_NAMESPACE
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for obj in overlay:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == OVERLAY_NAMESPACE, object_key(obj)


def test_overlay_runs_every_container_from_the_pushed_image(overlay) -> None:
    for owner, container in all_containers(overlay):
        assert container["image"] == OVERLAY_IMAGE, where(owner, container)


def test_every_container_uses_the_one_product_image(objects) -> None:
    images = {split_image(c["image"])[0] for _, c in all_containers(objects)}
    assert len(images) == 1, images


def test_overlay_sets_the_replica_counts_of_api_flusher_and_the_ingest_autoscaler(
    overlay,
) -> None:
    by_component = deployments(overlay)
    assert by_component["api"]["spec"]["replicas"] == 3
    assert by_component["flusher"]["spec"]["replicas"] == 2
    hpa = of_kind(overlay, "HorizontalPodAutoscaler")["hb-ingest"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 20)


# --- processes, ports and probes -----------------------------------------------------------------


def test_every_container_runs_one_of_the_hb_service_commands(objects) -> None:
    for owner, container in all_containers(objects):
        assert subcommand(container) in SERVICE_COMMANDS, where(owner, container)


def test_each_deployment_runs_the_command_of_its_component(objects) -> None:
    for name, deployment in deployments(objects).items():
        assert subcommand(main_container(deployment)) == name


def test_ingest_and_api_listen_on_all_interfaces_at_their_declared_port(objects) -> None:
    for name, port in HTTP_PORTS.items():
        container = main_container(deployments(objects)[name])
        assert option(container, "--host") == "0.0.0.0", name
        assert option(container, "--port") == str(port), name
        assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]


def test_liveness_probes_health_and_readiness_probes_ready_on_the_listening_port(
    objects,
) -> None:
    for name, port in HTTP_PORTS.items():
        container = main_container(deployments(objects)[name])
        named_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for probe, path in (("livenessProbe", "/health"), ("readinessProbe", "/ready")):
            http_get = container[probe]["httpGet"]
            assert http_get["path"] == path, (name, probe)
            assert named_ports.get(http_get["port"], http_get["port"]) == port, (name, probe)


def test_processes_without_http_have_no_port_and_no_probe(objects) -> None:
    for owner, container in all_containers(objects):
        if subcommand(container) not in HTTP_PORTS:
            assert "ports" not in container, where(owner, container)
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                assert probe not in container, where(owner, container)


# --- resources, autoscaling, disruption ------------------------------------------------------


def test_every_container_requests_cpu_and_memory_and_limits_them_at_or_above(objects) -> None:
    for owner, container in all_containers(objects):
        resources = container["resources"]
        for resource in ("cpu", "memory"):
            request = quantity(resources["requests"][resource])
            limit = quantity(resources["limits"][resource])
            assert 0 < request <= limit, (where(owner, container), resource)


def test_the_autoscaler_scales_the_ingest_deployment_on_cpu_utilization(objects) -> None:
    spec = of_kind(objects, "HorizontalPodAutoscaler")["hb-ingest"]["spec"]
    target = spec["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"]) == ("apps/v1", "Deployment")
    assert deployments(objects)["ingest"]["metadata"]["name"] == target["name"]
    ((metric),) = spec["metrics"]
    assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    assert 0 < metric["resource"]["target"]["averageUtilization"] <= 100
    assert 2 <= spec["minReplicas"] < spec["maxReplicas"]


def test_the_ingest_deployment_leaves_its_replica_count_to_the_autoscaler(objects) -> None:
    assert "replicas" not in deployments(objects)["ingest"]["spec"]


def test_disruption_budgets_cover_exactly_the_ingest_and_api_pods(objects) -> None:
    pods = {
        name: d["spec"]["template"]["metadata"]["labels"]
        for name, d in deployments(objects).items()
    }
    for name in ("ingest", "api"):
        budget = of_kind(objects, "PodDisruptionBudget")[f"hb-{name}"]["spec"]
        covered = {
            n for n, labels in pods.items() if selects(budget["selector"]["matchLabels"], labels)
        }
        assert covered == {name}
        assert budget["maxUnavailable"] == 1


# --- selectors -----------------------------------------------------------------------------------


def test_each_deployment_selects_its_own_pods_and_no_other_deployments(objects) -> None:
    by_component = deployments(objects)
    for name, deployment in by_component.items():
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert set(deployment["spec"]["selector"]) == {"matchLabels"}
        for other, other_deployment in by_component.items():
            labels = other_deployment["spec"]["template"]["metadata"]["labels"]
            assert selects(selector, labels) == (other == name), (name, other)


def test_each_service_routes_to_the_http_port_of_its_deployments_pods(objects) -> None:
    by_component = deployments(objects)
    for name, port in HTTP_PORTS.items():
        service = of_kind(objects, "Service")[f"hb-{name}"]["spec"]
        reached = {
            n
            for n, d in by_component.items()
            if selects(service["selector"], d["spec"]["template"]["metadata"]["labels"])
        }
        assert reached == {name}
        ((service_port),) = service["ports"]
        named_ports = {
            p["name"]: p["containerPort"] for p in main_container(by_component[name])["ports"]
        }
        assert named_ports[service_port["targetPort"]] == port
        assert service_port["port"] == port


# --- settings and the Secret -----------------------------------------------------------------


def test_every_config_map_and_secret_a_pod_references_is_rendered_with_that_key(objects) -> None:
    for owner, container in all_containers(objects):
        try:
            environment(container, objects)
        except KeyError as missing:
            pytest.fail(f"{where(owner, container)} references the missing {missing}")


def test_the_secret_provides_token_keys_to_ingest_and_api_and_to_no_other_process(
    objects,
) -> None:
    secret = generated(objects, "Secret", "hb-secrets")["metadata"]["name"]
    for owner, container in all_containers(objects):
        variables = {v["name"]: v for v in container.get("env", [])}
        if subcommand(container) in NEEDS_TOKEN_KEYS:
            ref = variables["HB_TOKEN_KEYS"]["valueFrom"]["secretKeyRef"]
            assert ref == {"name": secret, "key": "HB_TOKEN_KEYS"}, where(owner, container)
        else:
            assert "HB_TOKEN_KEYS" not in environment(container, objects), where(owner, container)


def test_store_urls_come_from_the_secret_and_only_postgres_users_get_the_database_url(
    objects,
) -> None:
    secret = generated(objects, "Secret", "hb-secrets")["metadata"]["name"]
    config = generated(objects, "ConfigMap", "hb-config")
    assert not {"HB_REDIS_URL", "HB_DATABASE_URL", "HB_TOKEN_KEYS"} & set(config["data"])
    for owner, container in all_containers(objects):
        variables = {v["name"]: v for v in container.get("env", [])}
        wanted = {"HB_DATABASE_URL"} if subcommand(container) in USES_POSTGRES else set()
        if subcommand(container) != "migrate":
            wanted.add("HB_REDIS_URL")
        for name in wanted:
            ref = variables[name]["valueFrom"]["secretKeyRef"]
            assert ref == {"name": secret, "key": name}, where(owner, container)
        if subcommand(container) not in USES_POSTGRES:
            assert "HB_DATABASE_URL" not in variables, where(owner, container)


def test_every_long_running_process_reads_the_shared_config_map(objects) -> None:
    config = generated(objects, "ConfigMap", "hb-config")["metadata"]["name"]
    for name, deployment in deployments(objects).items():
        assert main_container(deployment)["envFrom"] == [{"configMapRef": {"name": config}}], name


def test_config_map_and_secret_hold_only_settings_the_product_reads(objects) -> None:
    for kind, name in (("ConfigMap", "hb-config"), ("Secret", "hb-secrets")):
        keys = set(generated(objects, kind, name).get("data", {}))
        assert keys <= SETTING_NAMES, (kind, keys - SETTING_NAMES)


def test_overlay_settings_are_accepted_by_every_process_that_starts(overlay) -> None:
    for owner, container in all_containers(overlay):
        env = environment(container, overlay)
        if subcommand(container) == "migrate":
            assert env["HB_DATABASE_URL"].startswith("postgresql://"), where(owner, container)
        else:
            needs_keys = subcommand(container) in NEEDS_TOKEN_KEYS
            load_settings(env, require_token_keys=needs_keys)


def test_base_token_keys_placeholder_makes_ingest_and_api_refuse_to_start() -> None:
    base = _rendered("base")
    for name in NEEDS_TOKEN_KEYS:
        env = environment(main_container(deployments(base)[name]), base)
        with pytest.raises(SettingsError, match="HB_TOKEN_KEYS"):
            load_settings(env)


# --- migrations ----------------------------------------------------------------------------------


def test_api_and_flusher_pods_migrate_the_database_before_their_process_starts(objects) -> None:
    for name, deployment in deployments(objects).items():
        init = pod_spec(deployment).get("initContainers", [])
        if name in USES_POSTGRES:
            assert [subcommand(c) for c in init] == ["migrate"], name
        else:
            assert init == [], name


def test_the_migrate_job_runs_hb_migrate_once_and_removes_itself_when_done(objects) -> None:
    job = of_kind(objects, "Job")["hb-migrate"]
    assert subcommand(main_container(job)) == "migrate"
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] >= 1
    assert 0 < job["spec"]["ttlSecondsAfterFinished"] <= 3600


# --- security ------------------------------------------------------------------------------------


def test_every_pod_runs_as_the_image_user_without_privileges_or_api_token(objects) -> None:
    for owner in pod_owners(objects):
        spec = pod_spec(owner)
        name = owner["metadata"]["name"]
        assert spec["securityContext"] == {
            "runAsNonRoot": True,
            "runAsUser": IMAGE_UID,
            "runAsGroup": IMAGE_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        }, name
        assert spec["automountServiceAccountToken"] is False, name
        assert spec["serviceAccountName"] == "hb", name
        assert spec["enableServiceLinks"] is False, name  # no Service variables in HB_*
        assert "hostNetwork" not in spec and "hostPID" not in spec, name
        # The only writable place: a small scratch /tmp, the root filesystem being read-only.
        assert [set(v) for v in spec["volumes"]] == [{"name", "emptyDir"}], name
    for owner, container in all_containers(objects):
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }, where(owner, container)
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_the_pod_uid_is_the_uid_of_the_images_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    match = re.search(r"useradd\b[^\n]*--uid (\d+)[^\n]* (\w+)\s*$", dockerfile, re.M)
    assert match is not None
    assert int(match[1]) == IMAGE_UID
    assert re.search(rf"^USER {match[2]}$", dockerfile, re.M)


# --- the renderer agrees with kustomize ------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_rendering_matches_kubectl_kustomize_when_kubectl_is_installed(variant: str) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    result = subprocess.run(
        [kubectl, "kustomize", str(VARIANTS[variant])],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    expected: dict[Any, Object] = {
        object_key(o): o for o in yaml.safe_load_all(result.stdout) if o is not None
    }
    assert {object_key(o): o for o in _rendered(variant)} == expected
