"""The contract's Lua scripts, read once from `scripts/*.lua` with the field names filled in."""

from __future__ import annotations

from importlib import resources
from string import Template

from shared.contract.keys import SCRIPT_FIELDS
from shared.redis.lua import LuaScript


def load_script(name: str) -> LuaScript:
    """`scripts/<name>.lua` with each `${FIELD}` replaced by its hash field name (a name that is
    not in SCRIPT_FIELDS fails here, at import, not in Redis); `$$` stands for a dollar sign."""
    source = (resources.files("shared.contract") / "scripts" / f"{name}.lua").read_text()
    return LuaScript(Template(source).substitute(SCRIPT_FIELDS))
