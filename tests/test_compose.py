"""docker-compose.yml, checked without a Docker engine: every service runs something real."""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from hb.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
OUR_SERVICES = {"migrate", "ingest", "api", "flusher"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _argv(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else list(command)


def names_a_real_entry_point(argv: list[str]) -> bool:
    """`hb <subcommand>` from the CLI table, or a `module:attr` that imports."""
    if argv[0] == "hb":
        if len(argv) < 2 or argv[1] not in COMMANDS:
            return False
        module = importlib.import_module(COMMANDS[argv[1]][0])
        return callable(getattr(module, "run", None))
    target = next((a for a in argv if re.fullmatch(r"[\w.]+:[\w.]+", a)), None)
    if target is None:
        return False
    module_name, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return True


def test_our_services_run_hb_subcommands_that_exist(compose) -> None:
    services = compose["services"]
    assert set(services) >= OUR_SERVICES
    for name in OUR_SERVICES:
        assert names_a_real_entry_point(_argv(services[name]["command"])), name


def test_our_services_share_one_image_built_from_this_repository(compose) -> None:
    services = compose["services"]
    images = {services[name]["image"] for name in OUR_SERVICES}
    assert len(images) == 1
    for name in OUR_SERVICES:
        build = services[name]["build"]
        assert (ROOT / build["context"] / build["dockerfile"]).is_file(), name


def test_other_services_use_pinned_public_images(compose) -> None:
    for name, service in compose["services"].items():
        if name not in OUR_SERVICES:
            assert "build" not in service, name
            image = service["image"]
            assert ":" in image and not image.endswith(":latest"), name


def test_dependencies_name_existing_services_with_valid_conditions(compose) -> None:
    services = compose["services"]
    conditions = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, service in services.items():
        for dependency, spec in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert spec["condition"] in conditions
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck"
            if spec["condition"] == "service_completed_successfully":
                assert services[dependency].get("restart") == "no", dependency


def test_services_needing_postgres_wait_for_the_migration(compose) -> None:
    services = compose["services"]
    for name in ("api", "flusher"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
    assert "migrate" not in services["ingest"].get("depends_on", {}), "ingest needs no Postgres"


def test_ingest_can_be_scaled(compose) -> None:
    ingest = compose["services"]["ingest"]
    assert "container_name" not in ingest
    for mapping in ingest.get("ports", []):
        assert ":" not in str(mapping), "a fixed host port would clash between replicas"


def test_settings_come_from_the_environment(compose) -> None:
    for name in OUR_SERVICES:
        env = compose["services"][name]["environment"]
        for variable in ("HB_REDIS_URL", "HB_DATABASE_URL", "HB_TOKEN_KEYS"):
            assert env[variable], f"{name} lacks {variable}"
    assert "${HB_TOKEN_KEYS:?" in (ROOT / "docker-compose.yml").read_text(), (
        "the signing keys are required, never defaulted"
    )


def test_mounted_files_exist(compose) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (ROOT / source).is_file(), f"{name} mounts missing {source}"
            else:
                assert source in compose["volumes"], f"{name} uses undeclared volume {source}"


def test_the_image_copies_every_package(compose) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("shared", "ingest", "api", "flusher"):
        assert f"COPY {package} ./{package}" in dockerfile
