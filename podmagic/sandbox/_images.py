"""Images whose default command the sandbox knows, and what it runs for them: an emulation.

The sandbox pulls no images: a container runs the host's programs in a root of its own
(:mod:`._isolation`). A container that names neither ``command`` nor ``args`` runs its
image's default command, which the sandbox cannot know in general: it gets the idle main
process (:mod:`._containers`). For these images it knows it, and runs a stand-in:

========================  ============================  ====================================
image (any registry, tag)  its default command           what the sandbox runs
========================  ============================  ====================================
``nginx``                 ``nginx -g 'daemon off;'``    :mod:`._nginx`, an HTTP server on
                                                        port 80 serving
                                                        ``/usr/share/nginx/html`` as nginx's
                                                        stock configuration does (welcome
                                                        page, nginx's 404/403/405 pages,
                                                        access log on stdout)
``busybox``, ``alpine``   ``sh``                        the idle main process
``ubuntu``, ``debian``    ``bash``                      the idle main process
``python``                ``python3``                   the idle main process
========================  ============================  ====================================

A shell or ``python3`` with nothing on its stdin ends at once (a real cluster restarts such a
container until it is in CrashLoopBackOff); the sandbox keeps those containers idle instead,
as if they were run with ``stdin: true``, because that is what a pod of them without a
command is made for here: a target for exec.

The nginx stand-in runs only where pods are isolated: each pod then has its own network
namespace, so every nginx pod has its own port 80 (plain-process pods share the host's,
where a second one could not listen, and port 80 needs root). Its files are the container's
own: ``/usr/share/nginx/html`` (with nginx's ``index.html`` and ``50x.html``) is a writable
folder of the container's root, mounted over the host's read-only ``/usr/share``
(:func:`image_mount_arguments`), so a pod may write pages that the server then serves.

A ``python`` image has ``python`` as well as ``python3``; where the host has only
``python3``, a command ``python`` of such a container runs ``python3`` (:func:`image_argv`).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "IMAGES",
    "ImageDefaults",
    "emulated_main",
    "image_argv",
    "image_defaults",
    "image_mount_arguments",
    "repository",
]

# The PATH the kubelet gives a container that sets none (:data:`._state.DEFAULT_PATH`).
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The host's folders a container sees read-only (the others are its own): _isolation's list.
_SYSTEM_FOLDERS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
_NGINX_VERSION = "1.27.5"  # what nginx:latest reports when the tag names no version

_WELCOME = """<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
<style>
html { color-scheme: light dark; }
body { width: 35em; margin: 0 auto;
font-family: Tahoma, Verdana, Arial, sans-serif; }
</style>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. Further configuration is required.</p>

<p>For online documentation and support please refer to
<a href="http://nginx.org/">nginx.org</a>.<br/>
Commercial support is available at
<a href="http://nginx.com/">nginx.com</a>.</p>

<p><em>Thank you for using nginx.</em></p>
</body>
</html>
"""

_ERROR_PAGE = """<!DOCTYPE html>
<html>
<head>
<title>Error</title>
<style>
html { color-scheme: light dark; }
body { width: 35em; margin: 0 auto;
font-family: Tahoma, Verdana, Arial, sans-serif; }
</style>
</head>
<body>
<h1>An error occurred.</h1>
<p>Sorry, the page you are looking for is currently unavailable.<br/>
Please try again later.</p>
<p>If you are the system administrator of this resource then you should check
the error log for details.</p>
<p><em>Faithfully yours, nginx.</em></p>
</body>
</html>
"""


@dataclass(frozen=True)
class ImageDefaults:
    """What the sandbox knows of an image: its default command, the stand-in it runs for it
    (None: the idle main process), the image's own files, and programs it has that the host
    may lack."""

    repositories: tuple[str, ...]
    default_command: tuple[str, ...]
    emulation: str | None = None  # the name of the stand-in (:func:`emulated_main`)
    # The image's own files: folder (absolute, in the container) -> file name -> content.
    files: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # A program of the image -> the host's program that stands in for it.
    aliases: Mapping[str, str] = field(default_factory=dict)


#: The images the sandbox knows (see the module's docstring).
IMAGES: tuple[ImageDefaults, ...] = (
    ImageDefaults(
        ("nginx",),
        ("nginx", "-g", "daemon off;"),
        emulation="nginx",
        files={
            "/usr/share/nginx/html": {"index.html": _WELCOME, "50x.html": _ERROR_PAGE},
        },
    ),
    ImageDefaults(("busybox", "alpine"), ("sh",)),
    ImageDefaults(("ubuntu", "debian"), ("bash",)),
    ImageDefaults(("python",), ("python3",), aliases={"python": "python3", "pip": "pip3"}),
)
_BY_REPOSITORY = {name: image for image in IMAGES for name in image.repositories}


def repository(image: str) -> str:
    """The repository an image reference names, without registry, ``library/``, tag or
    digest: ``docker.io/library/nginx:1.27@sha256:…`` → ``nginx``."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)
    if ":" in last[-1]:
        name = name[: len(name) - len(last[-1]) + last[-1].index(":")]
    parts = name.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]  # a registry host
    if len(parts) > 1 and parts[0] == "library":
        parts = parts[1:]
    return "/".join(parts).lower()


def _tag(image: str) -> str:
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else "latest"


def image_defaults(container: Mapping[str, Any]) -> ImageDefaults | None:
    """What the sandbox knows of ``container``'s image (None: nothing)."""
    return _BY_REPOSITORY.get(repository(str(container.get("image") or "")))


def _runs_default(container: Mapping[str, Any]) -> bool:
    return not (container.get("command") or container.get("args"))


def _nginx_version(image: str) -> str:
    match = re.match(r"(\d+\.\d+\.\d+)(?:$|-)", _tag(image))
    return match.group(1) if match else _NGINX_VERSION


@functools.cache
def _host_python3() -> str | None:
    return shutil.which("python3", path=_SYSTEM_PATH)


@functools.cache
def _nginx_source() -> str:
    from . import _nginx

    return Path(_nginx.__file__).read_text(encoding="utf-8")


def emulated_main(container: Mapping[str, Any], *, isolated: bool) -> list[str] | None:
    """The argv of the stand-in for the default command of ``container``'s image, when it
    runs that command (no ``command``, no ``args``) and the sandbox has a stand-in for it;
    None otherwise (the container gets the idle main process, or its own command)."""
    image = image_defaults(container)
    if image is None or image.emulation is None or not _runs_default(container):
        return None
    # The stand-ins need their own network namespace (see the module's docstring) and the
    # host's python3, which the container sees in the host's system folders.
    if not isolated or _host_python3() is None:
        return None
    reference = str(container.get("image") or "")
    # -I -S: nothing of the container's PYTHON* environment or site packages changes it.
    return [
        "python3",
        "-I",
        "-S",
        "-c",
        _nginx_source(),
        "--root",
        "/usr/share/nginx/html",
        "--version",
        _nginx_version(reference),
    ]


def image_argv(
    container: Mapping[str, Any], argv: Sequence[str], env: Mapping[str, str]
) -> list[str]:
    """``argv`` of a process of ``container`` with the image's programs the host lacks
    replaced by the host's stand-in (``python`` → ``python3`` in a ``python`` image)."""
    argv = list(argv)
    image = image_defaults(container)
    if image is None or not argv or argv[0] not in image.aliases:
        return argv
    path = env.get("PATH", _SYSTEM_PATH)
    if shutil.which(argv[0], path=path) is None and shutil.which(image.aliases[argv[0]], path=path):
        argv[0] = image.aliases[argv[0]]
    return argv


def _seed(folder: Path, files: Mapping[str, str]) -> None:
    """The image's files in ``folder``, written when the folder is first made (a pod may
    change them afterwards, as in a container's writable layer)."""
    if folder.is_dir():
        return
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
        (folder / name).chmod(0o644)


def image_mount_arguments(container: Mapping[str, Any], root: Path) -> list[str]:
    """bwrap arguments that give an isolated ``container`` (whose root folder is ``root``)
    its image's own folders, writable, under the host's read-only system folders.

    A folder there cannot be made (``/usr`` is the host's, read-only), so the nearest
    folder the host has (``/usr/share`` for ``/usr/share/nginx/html``) becomes a folder of
    the container's root in which every entry of the host's is bound read-only again, and
    the image's folder is a real one beside them. Mounted before the pod's volumes, which
    may cover it as they cover an image's files.
    """
    image = image_defaults(container)
    if image is None or not image.files:
        return []
    arguments: list[str] = []
    for target, files in image.files.items():
        own = root / target.lstrip("/")
        _seed(own, files)
        if Path(target).parts[1] not in _SYSTEM_FOLDERS:
            continue  # a folder of the container's own root: there as it is
        host = Path(target)
        while not host.exists():
            host = host.parent
        if host == Path(target):  # the host has it: the container's covers it
            arguments += ["--bind", str(own), target]
            continue
        arguments += ["--bind", str(root / str(host).lstrip("/")), str(host)]
        mine = Path(target).relative_to(host).parts[0]
        with os.scandir(host) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if entry.name == mine:
                    continue
                if entry.is_symlink():
                    link = root / entry.path.lstrip("/")
                    if not link.is_symlink():
                        link.symlink_to(os.readlink(entry.path))
                    continue
                arguments += ["--ro-bind", entry.path, entry.path]
    return arguments
