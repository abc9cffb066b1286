"""Files holding secrets (`hb dev`'s signing keys and demo credentials), readable by the owner only.

Written to a temporary file and renamed over the target, so a reader never sees half a file. The
temporary file gets a fresh random name, created exclusively and without following symlinks: a
file or symlink someone left at a predictable name can neither lend it its permissions nor
redirect the secret elsewhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path


def write_private(path: Path, text: str) -> None:
    # mkstemp opens with O_CREAT | O_EXCL | O_NOFOLLOW and mode 0o600, whatever the umask.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)  # replaces a symlink at `path` itself, never its target
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_private_json(path: Path, data: object) -> None:
    write_private(path, json.dumps(data, indent=2) + "\n")
