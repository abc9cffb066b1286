"""Files holding secrets (`hb dev`'s credentials and signing keys): the owner's alone, always."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from hb.commands.dev import dev_token_keys
from hb.private_files import write_private_json


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_the_file_is_written_whole_and_private(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    write_private_json(path, {"apiKey": "hbk_secret"})
    assert json.loads(path.read_text()) == {"apiKey": "hbk_secret"}
    assert mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["credentials.json"]


def test_a_world_readable_file_at_the_old_temporary_name_is_not_reused(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    planted = tmp_path / "credentials.json.tmp"
    planted.write_text("planted")
    planted.chmod(0o644)
    write_private_json(path, {"apiKey": "hbk_secret"})
    assert mode(path) == 0o600
    assert not path.is_symlink()
    assert planted.read_text() == "planted"


def test_a_symlink_at_the_old_temporary_name_is_not_followed(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    target = tmp_path / "elsewhere"
    (tmp_path / "credentials.json.tmp").symlink_to(target)
    write_private_json(path, {"apiKey": "hbk_secret"})
    assert not target.exists()
    assert not path.is_symlink() and mode(path) == 0o600


def test_an_existing_file_is_replaced_by_a_private_one(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    path.write_text("{}")
    path.chmod(0o644)
    write_private_json(path, {"apiKey": "hbk_secret"})
    assert mode(path) == 0o600
    assert json.loads(path.read_text()) == {"apiKey": "hbk_secret"}


def test_dev_token_keys_are_generated_private_and_kept(tmp_path: Path) -> None:
    keys = dev_token_keys(tmp_path)
    assert keys.startswith("dev1:")
    assert mode(tmp_path / "token-keys") == 0o600
    assert dev_token_keys(tmp_path) == keys


def test_dev_token_keys_do_not_follow_a_dangling_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    (tmp_path / "token-keys").symlink_to(target)
    dev_token_keys(tmp_path)
    assert not target.exists()
    path = tmp_path / "token-keys"
    assert not path.is_symlink() and mode(path) == 0o600
