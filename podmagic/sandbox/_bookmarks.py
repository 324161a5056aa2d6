"""Watch bookmarks and the watch-list options, as the apiserver serves them.

- ``allowWatchBookmarks=true``: when nothing else was sent for :data:`BOOKMARK_INTERVAL`
  seconds the watch sends a ``BOOKMARK`` event whose object carries only the current
  ``resourceVersion`` (informers resume from it instead of relisting).
- ``sendInitialEvents=true`` with ``resourceVersionMatch=NotOlderThan`` (what client-go's
  watch-list informers ask for): the current objects as ``ADDED`` events, then a bookmark
  annotated ``k8s.io/initial-events-end: "true"``, then the changes. The apiserver's rules
  for combining these options, and its 422 wording, apply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from . import _status as status

__all__ = [
    "BOOKMARK_INTERVAL",
    "INITIAL_EVENTS_END",
    "WatchOptions",
    "bookmark",
    "next_event",
    "watch_options",
]

#: Seconds without an event after which a watch that allows bookmarks sends one (the
#: apiserver's watch cache sends them about once a minute).
BOOKMARK_INTERVAL = 60.0
INITIAL_EVENTS_END = "k8s.io/initial-events-end"


@dataclass(frozen=True)
class WatchOptions:
    """The bookmark-related options of one watch."""

    bookmarks: bool
    send_initial_events: bool


def _flag(request: web.Request, name: str) -> bool | None:
    """A boolean query parameter as the apiserver converts it: unset is None, ``0`` and
    ``false`` (any case) are false, anything else is true."""
    value = request.query.get(name)
    if value is None:
        return None
    return not (value == "0" or value.lower() == "false")


def _invalid(field: str, detail: str) -> status.ApiFailure:
    message = f'ListOptions.meta.k8s.io "" is invalid: {field}: Forbidden: {detail}'
    details = {
        "group": "meta.k8s.io",
        "kind": "ListOptions",
        "causes": [
            {"reason": "FieldValueForbidden", "message": f"Forbidden: {detail}", "field": field}
        ],
    }
    return status.ApiFailure(422, "Invalid", message, details)


def watch_options(request: web.Request) -> WatchOptions:
    """The bookmark options of a watch request; 422 for combinations the apiserver refuses."""
    bookmarks = bool(_flag(request, "allowWatchBookmarks"))
    initial = _flag(request, "sendInitialEvents")
    match = request.query.get("resourceVersionMatch", "")
    if initial is not None:
        if match != "NotOlderThan":
            raise _invalid(
                "sendInitialEvents",
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            )
        if not bookmarks:
            raise _invalid(
                "allowWatchBookmarks",
                "sendInitialEvents requires setting allowWatchBookmarks to true",
            )
    elif match:
        raise _invalid(
            "resourceVersionMatch",
            "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
        )
    return WatchOptions(bookmarks=bookmarks, send_initial_events=bool(initial))


def _api_version(path: str) -> str:
    """The group/version a watch path names (``/apis/apps/v1/...`` → ``apps/v1``)."""
    parts = [part for part in path.split("/") if part]
    if parts[:1] == ["apis"] and len(parts) >= 3:
        return f"{parts[1]}/{parts[2]}"
    return parts[1] if len(parts) >= 2 else "v1"


def bookmark(
    path: str, kind: str, resource_version: str, *, initial_events_end: bool = False
) -> dict[str, Any]:
    """A BOOKMARK event: an object of the watched kind with only its ``resourceVersion``."""
    metadata: dict[str, Any] = {"resourceVersion": resource_version, "creationTimestamp": None}
    if initial_events_end:
        metadata["annotations"] = {INITIAL_EVENTS_END: "true"}
    return {
        "type": "BOOKMARK",
        "object": {"kind": kind, "apiVersion": _api_version(path), "metadata": metadata},
    }


async def next_event(
    queue: asyncio.Queue[dict[str, Any] | None],
    options: WatchOptions,
    make_bookmark: Callable[[], dict[str, Any]],
) -> dict[str, Any] | None:
    """The watcher's next event; a bookmark instead after :data:`BOOKMARK_INTERVAL` seconds
    of quiet when the watch allows them."""
    if not options.bookmarks:
        return await queue.get()
    try:
        return await asyncio.wait_for(queue.get(), BOOKMARK_INTERVAL)
    except asyncio.TimeoutError:
        return make_bookmark()
