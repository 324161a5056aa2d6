"""Limits on paths the sandbox creates inside a container's root folder.

``workingDir`` and the paths of ``sandbox.podmagic.io/files`` become folders and files under
the sandbox's state folder, so they are checked before anything is stored: a part longer than
Linux's ``NAME_MAX`` or a path longer than :data:`MAX_PATH_BYTES` would otherwise fail half-way
with ``File name too long``, and a ``..`` part could lead out of the container's root.

Backslashes are ordinary characters in Linux file names (``/..\\x`` is one folder named
``..\\x``), so they are allowed; only ``/`` separates parts.
"""

from __future__ import annotations

__all__ = ["MAX_PATH_BYTES", "NAME_MAX", "path_problem"]

#: The longest part of a path (between two ``/``), in bytes: Linux's ``NAME_MAX``.
NAME_MAX = 255
#: The longest path inside a container's root, in bytes (*sandbox*): Linux's ``PATH_MAX`` is
#: 4096 for the whole path, and the state folder's own path comes first.
MAX_PATH_BYTES = 2048


def path_problem(path: str) -> str | None:
    """Why ``path`` cannot be made inside a container's root (None: it can)."""
    if "\x00" in path:
        return "must not contain a NUL character"
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        return f"must be no more than {MAX_PATH_BYTES} bytes (the sandbox's limit)"
    parts = path.split("/")
    if ".." in parts:
        return "must not contain '..'"
    if any(len(part.encode("utf-8", "surrogatepass")) > NAME_MAX for part in parts):
        return f"each part between '/' must be no more than {NAME_MAX} bytes (NAME_MAX)"
    return None
