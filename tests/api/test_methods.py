"""A method the API has no route for on a path: 405, offering every method that path has."""

from __future__ import annotations

import pytest

WORKER = "/v1/workers/wrk_01h455vb4pex5vsknk084sn02q"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/v1/workers", "GET, HEAD, POST"),
        ("DELETE", "/v1/workers", "GET, HEAD, POST"),
        ("PUT", WORKER, "DELETE, GET, HEAD"),
        ("POST", WORKER, "DELETE, GET, HEAD"),
        ("GET", WORKER + "/heartbeat-token", "POST"),
        ("PATCH", "/v1/api-keys", "GET, HEAD, POST"),
        ("GET", "/v1/api-keys/key_01h455vb4pex5vsknk084sn02q", "DELETE"),
        ("POST", "/health", "GET, HEAD"),
    ],
)
async def test_wrong_method_is_405_with_every_allowed_method(api, method, path, allow):
    r = await api.request(method, path)
    assert r.status_code == 405, r.text
    assert r.json()["error"] == "method_not_allowed"
    assert r.headers["allow"] == allow
