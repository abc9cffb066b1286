"""The published contracts kept as fixtures are well-formed, and say what the contracts say."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from tests.contract_facts import DOCUMENTS, kubiya
from tests.contracts import contract_document

FACTS_DIR = Path(__file__).parent / "contract_facts"
PRODUCT_PACKAGES = {"shared", "ingest", "api", "flusher", "hb", "bench"}

WORKER = "wrk_01jqz3k5m2a8b9c0d1e2f3g4h5"
ORG = "org_01jqz3k5m2a8b9c0d1e2f3g4h5"
WHEN = "2024-02-29T12:00:00.5Z"


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in _refs(item)]
    return []


def _operation(name: str) -> tuple[str, str, dict[str, Any]]:
    ((path, item),) = contract_document(name)["paths"].items()
    ((method, operation),) = item.items()
    return path, method, operation


def _validator(name: str, schema: dict[str, Any]) -> Draft202012Validator:
    """`schema` of contract `name`, its local refs resolving against the contract."""
    components = contract_document(name)["components"]
    return Draft202012Validator({**schema, "components": components})


def _body(name: str) -> Draft202012Validator:
    _, _, operation = _operation(name)
    return _validator(name, operation["requestBody"]["content"]["application/json"]["schema"])


def _answer(name: str, status: int) -> Draft202012Validator:
    _, _, operation = _operation(name)
    content = operation["responses"][str(status)]["content"]
    return _validator(name, content["application/json"]["schema"])


def _parameter(name: str, where: str, key: str) -> dict[str, Any]:
    _, _, operation = _operation(name)
    (found,) = [p for p in operation["parameters"] if (p["in"], p["name"]) == (where, key)]
    return found


def _worker(**changes: Any) -> dict[str, Any]:
    worker = {
        "id": WORKER, "orgId": ORG, "createdByUserId": None, "isMine": False, "name": "w",
        "description": None, "destination": "local", "status": "healthy", "imageVersion": None,
        "workspacePath": None, "sandboxBackend": None, "lastHeartbeatAt": None,
        "lastActiveAt": None, "createdAt": WHEN, "updatedAt": WHEN,
    }  # fmt: skip
    worker.update(changes)
    return worker


# --- well-formed -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_every_schema_is_valid_json_schema_2020_12(name: str) -> None:
    document = contract_document(name)
    assert document["openapi"].startswith("3.1")
    for schema in document["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    _, _, operation = _operation(name)
    for parameter in operation.get("parameters", []):
        Draft202012Validator.check_schema(parameter["schema"])
    for answer in operation["responses"].values():
        for media in answer.get("content", {}).values():
            Draft202012Validator.check_schema(media["schema"])


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_every_reference_resolves_and_every_component_is_used(name: str) -> None:
    document = contract_document(name)
    schemas = document["components"]["schemas"]
    refs = _refs(document["paths"]) + _refs(schemas)
    prefix = "#/components/schemas/"
    assert all(ref.startswith(prefix) for ref in refs), refs
    assert {ref.removeprefix(prefix) for ref in refs} == set(schemas)


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_every_answer_has_a_description_and_json_bodies(name: str) -> None:
    _, _, operation = _operation(name)
    for status, answer in operation["responses"].items():
        assert status.isdigit() and answer["description"]
        assert set(answer.get("content", {"application/json": None})) == {"application/json"}


def test_documents_are_fresh_copies() -> None:
    first = contract_document("den_heartbeat")
    first["components"]["schemas"]["UnauthorizedError"]["required"].append("mutated")
    second = contract_document("den_heartbeat")
    assert second["components"]["schemas"]["UnauthorizedError"]["required"] == ["error"]


def test_an_unknown_contract_is_an_error_not_a_skip() -> None:
    with pytest.raises(KeyError):
        contract_document("no_such_contract")


def test_the_fixtures_import_no_product_code() -> None:
    for source in sorted(FACTS_DIR.glob("*.py")):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots = {(node.module or "").split(".")[0]}
            else:
                continue
            assert not roots & PRODUCT_PACKAGES, (source.name, roots)


# --- paths, methods, operation ids -----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "path", "method", "operation_id", "statuses"),
    [
        ("den_heartbeat", "/v1/workers/{id}/activity-heartbeat", "post",
         "postV1WorkersByIdActivityHeartbeat", {"200", "400", "401", "404"}),
        ("kubiya_heartbeat", "/api/v1/workers/heartbeat", "post",
         "worker_heartbeat_api_v1_workers_heartbeat_post", {"204", "422"}),
        ("kubiya_worker_heartbeat", "/api/v1/workers/{worker_id}/heartbeat", "post",
         "worker_heartbeat_simple_api_v1_workers__worker_id__heartbeat_post", {"204", "422"}),
        ("kubiya_worker_disconnect", "/api/v1/workers/{worker_id}/disconnect", "post",
         "worker_disconnect_api_v1_workers__worker_id__disconnect_post", {"204", "422"}),
        ("den_list_workers", "/v1/workers", "get", "getV1Workers", {"200", "400", "401"}),
        ("den_get_worker", "/v1/workers/{id}", "get", "getV1WorkersById",
         {"200", "400", "401", "404"}),
    ],
)  # fmt: skip
def test_routes(name, path, method, operation_id, statuses) -> None:
    assert _operation(name)[:2] == (path, method)
    operation = _operation(name)[2]
    assert operation["operationId"] == operation_id
    assert set(operation["responses"]) == statuses


def test_kubiya_204_has_no_body() -> None:
    _, _, operation = _operation("kubiya_heartbeat")
    assert "content" not in operation["responses"]["204"]
    assert operation["requestBody"]["required"] is True


# --- parameters ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["den_heartbeat", "den_get_worker"])
def test_the_worker_id_is_a_30_character_wrk_typeid(name: str) -> None:
    parameter = _parameter(name, "path", "id")
    assert parameter["required"] is True
    schema = Draft202012Validator(parameter["schema"])
    assert schema.is_valid(WORKER)
    assert not schema.is_valid(WORKER[:-1])  # 29 characters
    assert not schema.is_valid(WORKER + "0")  # 31 characters
    assert not schema.is_valid("org" + WORKER[3:])
    assert not schema.is_valid(30)


def test_the_list_limit_is_an_optional_integer_1_to_50_defaulting_to_20() -> None:
    parameter = _parameter("den_list_workers", "query", "limit")
    assert parameter["required"] is False
    schema = parameter["schema"]
    assert (schema["type"], schema["minimum"], schema["maximum"], schema["default"]) == (
        "integer", 1, 50, 20,
    )  # fmt: skip
    limit = Draft202012Validator(schema)
    assert limit.is_valid(1) and limit.is_valid(50)
    assert not limit.is_valid(0) and not limit.is_valid(51) and not limit.is_valid(2.5)


# --- the date-time pattern -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("2024-02-29T00:00:00Z", True),
        ("2023-02-29T00:00:00Z", False),
        ("2000-02-29T00:00:00Z", True),
        ("1900-02-29T00:00:00Z", False),
        ("2400-02-29T00:00:00Z", True),
        ("0000-02-29T00:00:00Z", True),
        ("2024-02-28T23:59:59.999999Z", True),
        ("2024-02-30T00:00:00Z", False),
        ("2024-04-30T00:00:00Z", True),
        ("2024-04-31T00:00:00Z", False),
        ("2024-12-31T00:00:00Z", True),
        ("2024-13-01T00:00:00Z", False),
        ("2024-01-00T00:00:00Z", False),
        ("2024-01-01T10:00Z", True),
        ("2024-01-01T24:00:00Z", False),
        ("2024-01-01T10:60:00Z", False),
        ("2024-01-01T10:00:60Z", False),
        ("2024-01-01T10:00:00.Z", False),
        ("2024-01-01T10:00:00+00:00", False),
        ("2024-01-01T10:00:00z", False),
        ("2024-01-01 10:00:00Z", False),
        ("2024-01-01T10:00:00", False),
        ("2024-01-01", False),
        ("", False),
    ],
)
def test_the_date_time_pattern_knows_the_calendar(value: str, valid: bool) -> None:
    body = _body("den_heartbeat")
    assert body.is_valid({"isActiveRecently": True, "sentAt": value}) is valid
    assert body.is_valid({"isActiveRecently": True, "lastActivityAt": value}) is valid


# --- the Den heartbeat -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "valid"),
    [
        ({"isActiveRecently": True}, True),
        ({"isActiveRecently": False, "lastActivityAt": None, "openSessionCount": 0}, True),
        ({"isActiveRecently": True, "openSessionCount": 9007199254740991}, True),
        ({"isActiveRecently": True, "unknown": 1}, True),
        ({}, False),
        ({"sentAt": WHEN}, False),
        ({"isActiveRecently": "yes"}, False),
        ({"isActiveRecently": True, "openSessionCount": -1}, False),
        ({"isActiveRecently": True, "openSessionCount": 9007199254740992}, False),
        ({"isActiveRecently": True, "openSessionCount": 1.5}, False),
        ({"isActiveRecently": True, "openSessionCount": None}, False),
        ({"isActiveRecently": True, "sentAt": None}, False),
        ([], False),
    ],
)
def test_den_heartbeat_request(body: Any, valid: bool) -> None:
    assert _body("den_heartbeat").is_valid(body) is valid


def test_den_heartbeat_answer() -> None:
    answer = _answer("den_heartbeat", 200)
    good = {
        "ok": True, "workerId": WORKER, "isActiveRecently": False, "openSessionCount": None,
        "lastHeartbeatAt": WHEN, "lastActiveAt": None,
    }  # fmt: skip
    assert answer.is_valid(good)
    assert answer.is_valid({**good, "openSessionCount": -9007199254740991})
    assert not answer.is_valid({**good, "ok": False})
    assert not answer.is_valid({**good, "lastHeartbeatAt": None})
    assert not answer.is_valid({**good, "openSessionCount": -9007199254740992})
    for field in good:
        assert not answer.is_valid({k: v for k, v in good.items() if k != field}), field


def test_den_error_bodies() -> None:
    invalid = _answer("den_heartbeat", 400)
    assert invalid.is_valid({"error": "invalid_request", "details": []})
    assert invalid.is_valid(
        {"error": "invalid_request", "details": [{"message": "m", "path": ["a", 0], "x": 1}]}
    )
    assert not invalid.is_valid({"error": "invalid_request"})
    assert not invalid.is_valid({"error": "bad", "details": []})
    assert not invalid.is_valid({"error": "invalid_request", "details": [{"path": []}]})
    null_step = {"message": "m", "path": [None]}
    assert not invalid.is_valid({"error": "invalid_request", "details": [null_step]})
    unauthorized = _answer("den_heartbeat", 401)
    assert unauthorized.is_valid({"error": "unauthorized"})
    assert not unauthorized.is_valid({"error": "forbidden"})
    not_found = _answer("den_get_worker", 404)
    assert not_found.is_valid({"error": "worker_not_found"})
    assert not_found.is_valid({"error": "not_found", "message": "no such worker"})
    assert not not_found.is_valid({"message": "no such worker"})


# --- Den worker reads ------------------------------------------------------------------------


def test_den_worker_answer() -> None:
    answer = _answer("den_get_worker", 200)
    instance = {
        "provider": "render", "region": None, "url": None, "status": "live",
        "createdAt": WHEN, "updatedAt": WHEN,
    }  # fmt: skip
    assert answer.is_valid({"worker": _worker(), "instance": None})
    created_by = "usr" + WORKER[3:]
    assert answer.is_valid({"worker": _worker(createdByUserId=created_by), "instance": instance})
    assert not answer.is_valid({"worker": _worker()})
    assert not answer.is_valid({"worker": _worker(id=WORKER[:-1]), "instance": None})
    assert not answer.is_valid({"worker": _worker(createdAt=None), "instance": None})
    assert not answer.is_valid({"worker": _worker(), "instance": {**instance, "url": 1}})
    incomplete = {k: v for k, v in instance.items() if k != "region"}
    assert not answer.is_valid({"worker": _worker(), "instance": incomplete})


def test_den_list_answer() -> None:
    answer = _answer("den_list_workers", 200)
    assert answer.is_valid({"workers": []})
    assert answer.is_valid({"workers": [{**_worker(), "instance": None}], "nextCursor": None})
    assert not answer.is_valid({})
    assert not answer.is_valid({"workers": [_worker()]})  # each entry carries its instance
    assert not answer.is_valid({"workers": [{**_worker(orgId="wrk" + ORG[3:]), "instance": None}]})


# --- the Kubiya heartbeat --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "valid"),
    [
        ({"worker_id": "w", "environment_name": "prod"}, True),
        ({"worker_id": "w", "environment_name": "prod", "status": "busy", "tasks_processed": 3,
          "current_task_id": None, "worker_metadata": {"a": [1]}}, True),
        ({"worker_id": "w"}, False),
        ({"environment_name": "prod"}, False),
        ({"worker_id": 1, "environment_name": "prod"}, False),
        ({"worker_id": "w", "environment_name": "prod", "tasks_processed": "3"}, False),
        ({"worker_id": "w", "environment_name": "prod", "current_task_id": 3}, False),
        ({"worker_id": "w", "environment_name": "prod", "worker_metadata": []}, False),
        ([], False),
    ],
)  # fmt: skip
def test_kubiya_heartbeat_request(body: Any, valid: bool) -> None:
    assert _body("kubiya_heartbeat").is_valid(body) is valid


def test_kubiya_request_defaults() -> None:
    schemas = contract_document("kubiya_heartbeat")["components"]["schemas"]
    fields = schemas["WorkerHeartbeatRequest"]["properties"]
    defaults = {name: field["default"] for name, field in fields.items() if "default" in field}
    assert defaults == {"status": "active", "tasks_processed": 0, "worker_metadata": {}}


def test_kubiya_validation_error() -> None:
    answer = _answer("kubiya_heartbeat", 422)
    issue = {"loc": ["body", "worker_id"], "msg": "Field required", "type": "missing"}
    assert answer.is_valid({"detail": [issue]})
    assert answer.is_valid({"detail": [{**issue, "loc": ["body", 0]}]})
    assert answer.is_valid({})  # `detail` is described, not required
    assert not answer.is_valid({"detail": [{**issue, "loc": ["body", 0.5]}]})
    for field in issue:
        assert not answer.is_valid({"detail": [{k: v for k, v in issue.items() if k != field}]})


# --- Kubiya's per-worker routes, and what its released worker sends on them ------------------


@pytest.mark.parametrize(
    ("body", "valid"),
    [
        ({}, True),
        (kubiya.released_worker_lightweight_beat(), True),
        (kubiya.released_worker_full_beat(kubiya.released_worker_log_lines(3)), True),
        ({"system_info": {}, "logs": []}, True),
        ({"system_info": None, "logs": None}, True),
        ({"system_info": {"pid": "1"}}, False),
        ({"system_info": {"supported_runtimes": "agno"}}, False),
        ({"logs": "one line"}, False),
        ({"logs": [1]}, False),
        ({"tasks_processed": "3"}, False),
        ({"worker_metadata": []}, False),
        ([], False),
    ],
)
def test_kubiya_worker_heartbeat_request(body: Any, valid: bool) -> None:
    assert _body("kubiya_worker_heartbeat").is_valid(body) is valid


@pytest.mark.parametrize(
    ("body", "valid"),
    [
        ({}, True),
        (kubiya.released_worker_disconnect(), True),
        (kubiya.released_worker_disconnect("crash", None, "Traceback ..."), True),
        ({"exit_code": "0"}, False),
        ({"reason": None}, False),
        ({"error_message": 1}, False),
        ([], False),
    ],
)
def test_kubiya_disconnect_request(body: Any, valid: bool) -> None:
    assert _body("kubiya_worker_disconnect").is_valid(body) is valid


@pytest.mark.parametrize("name", ["kubiya_worker_heartbeat", "kubiya_worker_disconnect"])
def test_the_per_worker_routes_take_the_worker_id_in_the_path_and_answer_204(name: str) -> None:
    assert _parameter(name, "path", "worker_id")["required"] is True
    _, _, operation = _operation(name)
    assert "content" not in operation["responses"]["204"]
    assert operation["requestBody"]["required"] is True


def test_the_released_worker_sends_every_system_info_field_and_fewer_lines_than_it_sent() -> None:
    schemas = contract_document("kubiya_worker_heartbeat")["components"]["schemas"]
    assert set(kubiya.released_worker_system_info()) == set(
        schemas["WorkerSystemInfo"]["properties"]
    )
    lines = kubiya.released_worker_log_lines(150)
    assert len(set(lines)) == 150 and kubiya.LOG_LINES_KEPT == 100
