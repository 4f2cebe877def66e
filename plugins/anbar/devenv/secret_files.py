"""Secret files of the demo (passwords, the pseudonym key, the environment file that holds them).

A secret file is created readable and writable by its owner alone (``0600``) from its first byte: never
written under the umask's mode and narrowed afterwards, which leaves it readable by others in between
(and for good when the narrowing is forgotten).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

SECRET_FILE_MODE = 0o600


def write_secret(path: Path | str, text: str) -> Path:
    """Write ``text`` to ``path`` as a ``0600`` file, replacing any file there in one step.

    The bytes go to a new file created with mode 0600 (``O_EXCL``: never an existing file or a link
    planted there), which then takes the place of ``path``; a reader sees the old file or the new one.
    """
    path = Path(path)
    staging = path.with_name(f".{path.name}.{secrets.token_hex(4)}.new")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, SECRET_FILE_MODE)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    return path
