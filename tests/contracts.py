"""The published API contracts (seeds beside the repository), read at test time."""

from __future__ import annotations

import functools
import re
from typing import Any

import pytest
import yaml

from tests.conftest import seeds_dir

_FENCE = re.compile(r"^````yaml[^\n]*\n(.*?)^````", re.S | re.M)


@functools.cache
def seed_document(prefix: str) -> dict[str, Any]:
    """The OpenAPI document inside the seed file whose name starts with `prefix`; the test is
    skipped, saying where it looked, when the contracts are not beside the repository."""
    folder = seeds_dir()
    matches = sorted(folder.glob(f"{prefix}*.txt")) if folder.is_dir() else []
    if not matches:
        pytest.skip(f"the published contracts are not beside the repository ({folder})")
    match = _FENCE.search(matches[0].read_text(encoding="utf-8"))
    assert match, f"no OpenAPI block in {matches[0].name}"
    document: dict[str, Any] = yaml.safe_load(match.group(1))
    return document
