"""The sandbox's HTTP listener: discovery, REST resources, watches and the exec endpoint.

Stateless plumbing over :class:`~podmagic.sandbox._state.Cluster`: request parsing, auth,
throttling, Status errors, the Table form and pagination. The exec WebSocket lives in
:mod:`.exec`.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import contextlib
import copy
import datetime
import hmac
import json
import logging
import math
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import yaml
from aiohttp import web

from .._kinds import WORKLOAD_KINDS
from .._selectors import (
    FieldSelector,
    LabelSelector,
    SelectorError,
    _split_term,
    _split_terms,
    _unescape_value,
)
from . import _status as status
from ._auth import access_review, identity_of, rules_review, self_review, token_review
from ._behaviour import BehaviourError
from ._bookmarks import bookmark, next_event, watch_options
from ._discovery import API_GROUPS, API_VERSIONS, RESOURCE_LISTS, VERSION_INFO
from ._field_validation import add_warning_headers, check_fields
from ._lifecycle import DeleteOptionsError, delete_options
from ._objects import name_suffix, now_rfc3339, pod_spec_defaults, workload_defaults
from ._openapi import openapi_group_version, openapi_root
from ._openapi_v2 import handle_openapi_v2
from ._patch import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    PATCH_TYPES,
    PatchError,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from ._protobuf import MEDIA_TYPE as PROTOBUF_MEDIA_TYPE
from ._protobuf import ProtobufError
from ._protobuf import decode as decode_protobuf
from ._rbac import authorize, forbidden, request_attributes
from ._resources import (
    ENDPOINTS,
    EVENTS_V1,
    RESOURCES,
    SERVICE_ACCOUNTS,
    Resource,
    convert_event,
    resource_for,
)
from ._state import (
    MAX_TOKEN_TTL,
    Cluster,
    ManifestError,
    PodCapacityError,
    RecordedRequest,
    Watcher,
)
from ._tables import TABLE_CONTENT_TYPE, to_table, wants_table
from ._validation import FieldError, ObjectInvalid, generated_name, text_value, validate_object

__all__ = ["CLUSTER_KEY", "CONNECTIONS_KEY", "build_app"]

CLUSTER_KEY = web.AppKey("cluster", Cluster)
TOKEN_KEY = web.AppKey("token", str)


# Every client connection seen, so stopping can cut the ones clients left open (a TLS close
# otherwise waits for the peer and the socket outlives the loop).
class Connections:
    """The transports of client connections, held weakly."""

    def __init__(self) -> None:
        self.transports: weakref.WeakSet[asyncio.Transport] = weakref.WeakSet()


CONNECTIONS_KEY = web.AppKey("connections", Connections)

# Paths a real API server serves to anonymous users as well (system:public-info-viewer).
_ANONYMOUS_PATHS = frozenset({"/version", "/version/", "/healthz", "/livez", "/readyz"})
# The roots the apiserver serves through go-restful, whose router matches a path with its
# trailing slashes trimmed: ``GET /version/`` and ``/api/v1/namespaces/`` are answered as
# without the slash (kr8s asks for ``/version/``).
_SLASH_TOLERANT_ROOTS = ("/api", "/apis", "/version")
# Sandbox-only endpoints (not Kubernetes API): admin token only, never throttled.
_SANDBOX_PREFIX = "/sandbox/"
_PLURAL_TO_KIND = {kind.plural: name for name, kind in WORKLOAD_KINDS.items()}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

log = logging.getLogger("podmagic.sandbox")


def _json(
    body: Any, *, status_code: int = 200, content_type: str = "application/json"
) -> web.Response:
    # aiohttp's content_type= cannot carry parameters such as ``as=Table``: set the header.
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status_code,
        headers={"Content-Type": content_type},
    )


def _socket_transport(transport: asyncio.Transport) -> asyncio.Transport:
    """The TCP transport under a TLS one.

    A TLS transport that is closing waits for the peer's close_notify; if the loop stops
    first, only aborting the TCP transport underneath releases the socket. asyncio offers no
    public way to reach it.
    """
    protocol = getattr(transport, "_ssl_protocol", None)
    inner = getattr(protocol, "_transport", None)
    return inner if isinstance(inner, asyncio.Transport) else transport


def cluster_of(request: web.Request) -> Cluster:
    return request.app[CLUSTER_KEY]


@web.middleware
async def _unexpected_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A handler's unexpected exception is a 500 ``Status`` with a generic message.

    The traceback goes to the ``podmagic.sandbox`` log, never to the client (it could hold
    a token or a pod's data); bad input is answered before this with 400/422.
    """
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unexpected error serving %s %s", request.method, request.path)
        raise status.internal_error(
            "the sandbox failed to serve this request; its log (logger podmagic.sandbox) has "
            "the details"
        ) from None


@web.middleware
async def _record_auth_throttle(request: web.Request, handler: Handler) -> web.StreamResponse:
    cluster = cluster_of(request)
    if request.transport is not None:
        request.app[CONNECTIONS_KEY].transports.add(_socket_transport(request.transport))
    cluster.requests.append(
        RecordedRequest(request.method, request.path_qs, request.headers.get("User-Agent", ""))
    )
    token = request.app[TOKEN_KEY]
    sandbox_only = request.path.startswith(_SANDBOX_PREFIX)
    # Anonymous paths need no credentials, but wrong ones are 401 there too: the apiserver
    # authenticates a request that carries a token before it looks at the path.
    if token and (request.path not in _ANONYMOUS_PATHS or "Authorization" in request.headers):
        supplied = request.headers.get("Authorization", "")
        if not hmac.compare_digest(supplied.encode(), f"Bearer {token}".encode()):
            # Tokens handed out by POST /sandbox/tokens (an exec credential plugin's) work
            # for the Kubernetes API until they expire; then 401, as for a wrong token.
            scheme, _, issued = supplied.partition(" ")
            if sandbox_only or scheme != "Bearer" or not cluster.token_is_valid(issued):
                raise status.unauthorized()
            # A named user's or a service account's token: held to the RBAC objects.
            caller = identity_of(cluster, issued)
            if not caller.admin:
                asked = request_attributes(request.method, request.path, request.query)
                if not authorize(cluster, caller, asked)[0]:
                    raise forbidden(caller, asked)
    if request.path not in _ANONYMOUS_PATHS and not sandbox_only:
        entry = None
        parts = request.path.split("/")
        # /api/v1/namespaces/{ns}/pods/{name}[/exec]
        if len(parts) >= 7 and parts[1:4] == ["api", "v1", "namespaces"] and parts[5] == "pods":
            entry = cluster.get_pod(parts[4], parts[6])
        retry_after = cluster.take_throttle(entry)
        if retry_after is not None:
            raise status.too_many_requests(retry_after)
    return await handler(request)


# -- discovery ---------------------------------------------------------------------------------


async def version(request: web.Request) -> web.Response:
    return _json(VERSION_INFO)


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def api_versions(request: web.Request) -> web.Response:
    return _json(API_VERSIONS)


async def api_groups(request: web.Request) -> web.Response:
    return _json(API_GROUPS)


async def core_resources(request: web.Request) -> web.Response:
    return _json(RESOURCE_LISTS["v1"])


async def group_resources(request: web.Request) -> web.Response:
    key = f"{request.match_info['group']}/{request.match_info['version']}"
    if key not in RESOURCE_LISTS:
        raise _no_resource()
    return _json(RESOURCE_LISTS[key])


async def review(request: web.Request) -> web.Response:
    """POST of a SelfSubjectReview, SelfSubjectAccessReview, SelfSubjectRulesReview or
    TokenReview."""
    info = request.match_info
    api_version = f"{info['group']}/{info['version']}"
    body = await _body(request)
    kind = {
        "selfsubjectreviews": "SelfSubjectReview",
        "tokenreviews": "TokenReview",
        "selfsubjectaccessreviews": "SelfSubjectAccessReview",
        "selfsubjectrulesreviews": "SelfSubjectRulesReview",
    }[info["plural"]]
    _check_kind(body, kind, info["plural"])
    cluster = cluster_of(request)
    caller = identity_of(cluster, request.headers.get("Authorization", "").removeprefix("Bearer "))
    if kind == "SelfSubjectReview":
        answer = self_review(caller, api_version)
    elif kind == "TokenReview":
        token = (body.get("spec") or {}).get("token")
        known = _known_token(request, token)
        reviewed = identity_of(cluster, token if isinstance(token, str) else None)
        answer = token_review(body, api_version, identity=reviewed if known else None)
    elif kind == "SelfSubjectAccessReview":
        answer = access_review(cluster, caller, body, api_version)
    else:
        answer = rules_review(cluster, caller, body, api_version)
    return _json(answer, status_code=201)


def _known_token(request: web.Request, token: Any) -> bool:
    """Whether ``token`` is the sandbox's own or one it issued and that has not expired."""
    if not isinstance(token, str) or not token:
        return False
    own = request.app[TOKEN_KEY]
    if own and hmac.compare_digest(token.encode(), own.encode()):
        return True
    return cluster_of(request).token_is_valid(token)


async def openapi_v3(request: web.Request) -> web.Response:
    return _json(openapi_root())


async def openapi_v3_group_version(request: web.Request) -> web.Response:
    tail = request.match_info["tail"]
    group_version = tail.removeprefix("apis/") if tail.startswith("apis/") else tail[4:]
    document = openapi_group_version(group_version) if tail.startswith(("api/", "apis/")) else None
    if document is None:
        raise _no_resource()
    return _json(document)


def _no_resource() -> status.ApiFailure:
    return status.ApiFailure(
        404,
        "NotFound",
        "the server could not find the requested resource",
        {"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]},
    )


# -- lists, pagination, watch -------------------------------------------------------------------


def _selectors(request: web.Request) -> Callable[[dict[str, Any]], bool]:
    try:
        labels = LabelSelector.parse(request.query.get("labelSelector", ""))
        fields = FieldSelector.parse(request.query.get("fieldSelector", ""))
    except SelectorError as error:
        raise status.bad_request(str(error)) from None

    def matches(obj: dict[str, Any]) -> bool:
        return labels.matches(obj["metadata"].get("labels") or {}) and fields.matches_pod(obj)

    return matches


def _workload_selector(request: web.Request) -> Callable[[dict[str, Any]], bool]:
    try:
        labels = LabelSelector.parse(request.query.get("labelSelector", ""))
    except SelectorError as error:
        raise status.bad_request(str(error)) from None
    field_selector = request.query.get("fieldSelector", "")
    names: set[str] | None = None
    if field_selector:
        names = set()
        for part in field_selector.split(","):
            key, _, value = part.partition("=")
            if key.rstrip("=") != "metadata.name":
                raise status.bad_request(f"field label not supported: {key.rstrip('=!')}")
            names.add(value.lstrip("="))
    return lambda obj: (
        labels.matches(obj["metadata"].get("labels") or {})
        and (names is None or obj["metadata"]["name"] in names)
    )


def _list_key(item: dict[str, Any]) -> tuple[str, str]:
    return (item["metadata"].get("namespace") or "", item["metadata"]["name"])


def _paginate(
    request: web.Request, items: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], str | None, int]:
    """One page of ``items`` (sorted by namespace and name), the next continue token, and how
    many items follow the page.

    The token names the last item returned, as the apiserver's does, so a page neither repeats
    nor skips items when objects come or go between requests.
    """
    start = 0
    token = request.query.get("continue")
    if token:
        try:
            after = json.loads(base64.urlsafe_b64decode(token.encode()))["after"]
            if not (
                isinstance(after, list)
                and len(after) == 2
                and all(isinstance(x, str) for x in after)
            ):
                raise ValueError(after)
        except (ValueError, KeyError, TypeError):
            raise status.bad_request("continue key is not valid: illegal base64 data") from None
        start = bisect.bisect_right(items, tuple(after), key=_list_key)
    limit = _int_query(request, "limit", 0)
    if limit <= 0:
        return items[start:], None, 0
    page = items[start : start + limit]
    remaining = len(items) - start - len(page)
    next_token = None
    if remaining > 0:
        next_token = base64.urlsafe_b64encode(
            json.dumps({"after": list(_list_key(page[-1]))}).encode()
        ).decode()
    return page, next_token, remaining


def _int_query(request: web.Request, name: str, default: int) -> int:
    """An integer query parameter (an int64 in the apiserver); 400 when it is not one."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw, 10)
    except ValueError:
        raise status.bad_request(
            f'strconv.ParseInt: parsing "{raw}": invalid syntax (query parameter {name})'
        ) from None
    if not -(2**63) <= value < 2**63:
        raise status.bad_request(
            f'strconv.ParseInt: parsing "{raw}": value out of range (query parameter {name})'
        )
    return value


def _list_response(
    request: web.Request, kind: str, api_version: str, items: list[dict[str, Any]]
) -> web.Response:
    cluster = cluster_of(request)
    page, next_token, remaining = _paginate(request, items)
    if wants_table(request.headers.get("Accept", "")):
        include = request.query.get("includeObject", "Metadata")
        return _json(
            to_table(
                kind,
                page,
                resource_version=cluster.resource_version,
                include_object=include,
                continue_token=next_token,
            ),
            content_type=TABLE_CONTENT_TYPE,
        )
    metadata: dict[str, Any] = {"resourceVersion": cluster.resource_version}
    if next_token:
        metadata["continue"] = next_token
        metadata["remainingItemCount"] = remaining
    body = {
        "kind": f"{kind}List",
        "apiVersion": api_version,
        "metadata": metadata,
        "items": [{"kind": kind, "apiVersion": api_version, **item} for item in page],
    }
    return _json(body)


def _object_response(
    request: web.Request, obj: dict[str, Any], *, kind: str, status_code: int = 200
) -> web.Response:
    """One object, or (``Accept`` asking for it) a one-row Table, as ``kubectl get NAME`` asks."""
    if wants_table(request.headers.get("Accept", "")):
        include = request.query.get("includeObject", "Metadata")
        table = to_table(
            kind,
            [obj],
            resource_version=obj["metadata"].get("resourceVersion", ""),
            include_object=include,
        )
        return _json(table, status_code=status_code, content_type=TABLE_CONTENT_TYPE)
    return _json(obj, status_code=status_code)


def _is_watch(request: web.Request) -> bool:
    return request.query.get("watch", "").lower() in {"1", "t", "true"}


async def _watch(
    request: web.Request,
    namespace: str | None,
    matches: Callable[[dict[str, Any]], bool],
    *,
    resource: str = "pods",
    kind: str = "Pod",
    current: Callable[[], list[dict[str, Any]]] | None = None,
    shown: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> web.StreamResponse:
    """Stream ``resource``'s events as JSON lines until the client leaves or ``timeoutSeconds``
    pass; with a Table ``Accept`` header each event's object is a one-row Table, as
    ``kubectl get -w`` asks. ``current`` lists what exists (pods by default), ``shown`` turns
    a stored object into the one sent."""
    cluster = cluster_of(request)
    # Parsed before the stream starts, so a bad value is still a 400 Status.
    timeout = _int_query(request, "timeoutSeconds", 1800)
    if timeout <= 0:
        timeout = 1800  # the apiserver's default applies to 0 and below as well
    as_table = wants_table(request.headers.get("Accept", ""))
    include = request.query.get("includeObject", "Metadata")
    watcher = Watcher(namespace=namespace, matches=matches, resource=resource)
    response = web.StreamResponse(
        headers={
            "Content-Type": TABLE_CONTENT_TYPE if as_table else "application/json",
            "Transfer-Encoding": "chunked",
        }
    )
    since = request.query.get("resourceVersion")
    if since and since != "0" and not since.isdigit():
        raise status.bad_request(f'invalid resource version: "{since}"')
    options = watch_options(request)
    await response.prepare(request)
    if not since or since == "0" or options.send_initial_events:
        # Without a resource version a watch starts with the current state as ADDED events.
        listed = current() if current else cluster.list_pods(namespace, matches)
        for obj in listed:
            watcher.queue.put_nowait({"type": "ADDED", "object": obj})
        if options.send_initial_events:
            end = bookmark(request.path, kind, cluster.resource_version, initial_events_end=True)
            watcher.queue.put_nowait(end)
    else:
        # From a resource version: the changes since, then what comes.
        changes = cluster.changes_since(int(since), resource)
        if changes is None:
            expired = status.status_body(
                410,
                "Expired",
                f"too old resource version: {since} ({cluster.resource_version})",
            )
            watcher.queue.put_nowait({"type": "ERROR", "object": expired})
            watcher.queue.put_nowait(None)
        else:
            for event_type, obj in changes:
                in_namespace = namespace in (None, obj["metadata"].get("namespace"))
                if in_namespace and matches(obj):
                    watcher.queue.put_nowait({"type": event_type, "object": obj})
    cluster.watchers.add(watcher)
    try:
        with contextlib.suppress(asyncio.TimeoutError, ConnectionResetError):
            async with asyncio.timeout(timeout):
                while True:
                    event = await next_event(
                        watcher.queue,
                        options,
                        lambda: bookmark(request.path, kind, cluster.resource_version),
                    )
                    if event is None:
                        break
                    obj = event["object"]
                    plain = event["type"] in ("ERROR", "BOOKMARK")  # sent as they are
                    if not plain:
                        obj = shown(obj) if shown else obj
                    if as_table and not plain:
                        obj = to_table(
                            kind,
                            [obj],
                            resource_version=obj["metadata"].get("resourceVersion", ""),
                            include_object=include,
                        )
                    line = {"type": event["type"], "object": obj}
                    await response.write(json.dumps(line, separators=(",", ":")).encode() + b"\n")
    finally:
        cluster.watchers.discard(watcher)
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response


# -- namespaces ---------------------------------------------------------------------------------


async def list_namespaces(request: web.Request) -> web.Response:
    cluster = cluster_of(request)
    matches = _workload_selector(request)
    items = [ns for _, ns in sorted(cluster.namespaces.items()) if matches(ns)]
    return _list_response(request, "Namespace", "v1", items)


async def get_namespace(request: web.Request) -> web.Response:
    name = request.match_info["namespace"]
    namespace = cluster_of(request).namespaces.get(name)
    if namespace is None:
        raise status.not_found("namespaces", name)
    return _object_response(request, namespace, kind="Namespace")


async def create_namespace(request: web.Request) -> web.Response:
    body = await _body(request)
    _validate(body, "Namespace", namespaced=False)
    metadata: dict[str, Any] = body.get("metadata") or {}
    cluster = cluster_of(request)
    name = metadata.get("name")
    if not name:  # validated: generateName is set
        prefix, attempt = metadata["generateName"], 0
        name = generated_name(prefix, name_suffix(f"{prefix}/{now_rfc3339()}"))
        while name in cluster.namespaces:
            attempt += 1
            name = generated_name(prefix, name_suffix(f"{prefix}/{now_rfc3339()}/{attempt}"))
    if name in cluster.namespaces:
        raise status.already_exists("namespaces", name)
    labels = {key: text_value(value) or "" for key, value in (metadata.get("labels") or {}).items()}
    if _dry_run(request):
        preview_metadata = {
            **metadata,
            "name": name,
            "labels": {**labels, "kubernetes.io/metadata.name": name},
        }
        preview = {"kind": "Namespace", "apiVersion": "v1", "metadata": preview_metadata}
        return _json({**preview, "spec": {"finalizers": ["kubernetes"]}}, status_code=201)
    return _json(cluster.add_namespace(name, labels), status_code=201)


async def delete_namespace(request: web.Request) -> web.Response:
    name = request.match_info["namespace"]
    cluster = cluster_of(request)
    if name not in cluster.namespaces:
        raise status.not_found("namespaces", name)
    if await _delete_dry_run(request):
        return _json(cluster.namespaces[name])
    namespace = cluster.delete_namespace(name)
    namespace["status"]["phase"] = "Terminating"
    return _json(namespace)


def _no_constants(name: str) -> Any:
    raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")


# The media types the sandbox decodes: JSON, and protobuf for the kinds kubectl 1.33's
# ``create`` generators send that way (client-go falls back to JSON on 415 only for CBOR).
_JSON_TYPES = frozenset({"", "application/json"})
_OBJECT_TYPES = _JSON_TYPES | {PROTOBUF_MEDIA_TYPE}
_ACCEPTED_TYPES = f"application/json, {PROTOBUF_MEDIA_TYPE} (some kinds)"


def _unsupported_media_type(media_type: str, problem: str = "") -> status.ApiFailure:
    message = (
        "the body of the request was in an unknown format - accepted media types include: "
        + _ACCEPTED_TYPES
    )
    return status.ApiFailure(
        415,
        "UnsupportedMediaType",
        f"{message} ({problem})" if problem else message,
        {"causes": [{"reason": "UnsupportedMediaType", "message": media_type}]},
    )


def _media_type(request: web.Request) -> str:
    """The request's Content-Type without parameters, lower case ("" when absent)."""
    return request.headers.get("Content-Type", "").split(";")[0].strip().lower()


async def _body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object; 415 for a media type the sandbox does not decode, 400
    BadRequest for a body that is not a JSON object, as the apiserver answers."""
    body = await _decoded(request, _OBJECT_TYPES)
    if not isinstance(body, dict):
        raise status.bad_request("the body of the request must be a JSON object")
    return check_fields(request, body)


async def _decoded(request: web.Request, media_types: frozenset[str] | None) -> Any:
    """The request's JSON value (415 for a media type not in ``media_types``, 400 for bad
    JSON); ``media_types=None`` reads any body as JSON."""
    media_type = _media_type(request) if media_types is not None else ""
    if media_types is not None and media_type not in media_types:
        raise _unsupported_media_type(media_type)
    raw = await request.read()
    if media_type == PROTOBUF_MEDIA_TYPE:
        try:
            return decode_protobuf(raw)
        except ProtobufError as error:
            raise _unsupported_media_type(media_type, str(error)) from None
    try:
        # Go's encoding/json has no NaN or Infinity: refuse them as the apiserver would.
        body = json.loads(raw.decode("utf-8"), parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError is a ValueError
        raise status.bad_request(
            f"the body of the request was in an unknown format: {error}"
        ) from None
    except RecursionError:
        raise status.bad_request(
            "the body of the request was in an unknown format: exceeded max depth"
        ) from None
    return body


def _invalid(invalid: ObjectInvalid) -> status.ApiFailure:
    """422 Invalid with one cause per problem; 400 BadRequest when a value has the wrong type
    (the apiserver cannot decode such a body)."""
    if invalid.decode:
        return status.bad_request(invalid.message)
    return status.ApiFailure(422, "Invalid", invalid.message, invalid.details())


def _validate(body: dict[str, Any], kind: str, *, namespaced: bool = True) -> None:
    """Raise 422/400 for a body that fails the API server's validation of ``kind``."""
    errors = validate_object({**body, "kind": kind}, namespaced=namespaced)
    if errors:
        metadata = body.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        raise _invalid(ObjectInvalid(kind, name if isinstance(name, str) else "", errors))


# -- pods ---------------------------------------------------------------------------------------


async def list_pods(request: web.Request) -> web.StreamResponse:
    namespace = request.match_info.get("namespace")
    matches = _selectors(request)
    if _is_watch(request):
        return await _watch(request, namespace, matches)
    pods = cluster_of(request).list_pods(namespace, matches)
    return _list_response(request, "Pod", "v1", pods)


async def get_pod(request: web.Request) -> web.Response:
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    entry = cluster_of(request).get_pod(namespace, name)
    if entry is None:
        raise status.not_found("pods", name)
    return _object_response(request, entry.pod, kind="Pod")


async def create_pod(request: web.Request) -> web.Response:
    namespace = request.match_info["namespace"]
    cluster = cluster_of(request)
    if namespace not in cluster.namespaces:
        raise status.not_found("namespaces", namespace)
    body = await _body(request)
    kind = body.get("kind")
    if kind is not None and kind != "Pod":
        raise status.bad_request(
            f'the kind in the body ("{kind}") does not match the resource (pods)'
        )
    _validate(body, "Pod")
    metadata = body.setdefault("metadata", {})
    if metadata.get("namespace") not in (None, "", namespace):
        raise status.bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    name = metadata.get("name")
    if name and cluster.get_pod(namespace, name):
        raise status.already_exists("pods", name)
    if _dry_run(request):
        metadata["namespace"] = namespace
        body.update({"kind": "Pod", "apiVersion": "v1"})
        pod_spec_defaults(body.setdefault("spec", {}))
        return _json(body, status_code=201)
    try:
        entry = cluster.create_pod(body, namespace)
    except PodCapacityError as error:
        raise status.ApiFailure(
            403,
            "Forbidden",
            f'pods "{name or metadata.get("generateName")}" is forbidden: {error}',
            {"kind": "pods"},
        ) from None
    except (ManifestError, BehaviourError) as error:
        raise status.bad_request(str(error)) from None
    # The pod as stored (Pending, unscheduled), as the apiserver answers: the scheduler's and
    # kubelet's steps come after it, as watch events.
    created, entry.life.created = entry.life.created or entry.pod, None
    return _json(created, status_code=201)


async def _deletion(request: web.Request) -> tuple[bool, int | None, str | None]:
    """A DELETE's (dry run, gracePeriodSeconds, propagationPolicy), from its query or its
    DeleteOptions body; 400 for values the apiserver refuses."""
    dry_run = await _delete_dry_run(request)
    body = await _decoded(request, _OBJECT_TYPES) if request.body_exists else None
    try:
        grace, policy = delete_options(request.query, body if isinstance(body, dict) else None)
    except DeleteOptionsError as error:
        raise status.bad_request(str(error)) from None
    return dry_run, grace, policy


async def delete_pod(request: web.Request) -> web.Response:
    """DELETE of a pod: Terminating for its grace period, then gone (0: at once)."""
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    cluster = cluster_of(request)
    dry_run, grace, _ = await _deletion(request)
    entry = cluster.get_pod(namespace, name)
    if entry is None:
        raise status.not_found("pods", name)
    if dry_run:
        return _json(entry.pod)
    return _json(cluster.delete_pod_gracefully(namespace, name, grace) or entry.pod)


async def delete_pods(request: web.Request) -> web.Response:
    """deletecollection of pods: every pod the selectors match, deleted as one DELETE each
    would; the deleted ones as a PodList."""
    namespace = request.match_info.get("namespace")
    cluster = cluster_of(request)
    matches = _selectors(request)
    dry_run, grace, _ = await _deletion(request)
    deleted = []
    for pod in cluster.list_pods(namespace, matches):
        metadata = pod["metadata"]
        if not dry_run:
            pod = (
                cluster.delete_pod_gracefully(metadata["namespace"], metadata["name"], grace) or pod
            )
        deleted.append(copy.deepcopy(pod))
    return _list_response(request, "Pod", "v1", deleted)


# -- patches ------------------------------------------------------------------------------------


async def _patched(request: web.Request, current: dict[str, Any] | None) -> dict[str, Any]:
    """``current`` with the request's patch applied (JSON merge, strategic merge, JSON patch
    or server-side apply); 415 for another media type, 422 for a patch that cannot apply."""
    media_type = _media_type(request)
    if media_type not in PATCH_TYPES:
        raise _unsupported_media_type(
            media_type, "a PATCH body is one of: " + ", ".join(sorted(PATCH_TYPES))
        )
    if media_type == APPLY_PATCH:
        applied = await _applied(request, current)
        return check_fields(request, applied, patch=True, current=current)
    if current is None:  # only apply creates
        raise _not_found_here(request)
    patch = await _decoded(request, frozenset({media_type}))
    try:
        if media_type == JSON_PATCH:
            result = json_patch(current, patch)
        elif media_type == MERGE_PATCH:
            result = merge_patch(current, patch)
        else:
            result = strategic_merge_patch(current, patch)
    except PatchError as error:
        raise status.ApiFailure(
            422,
            "Invalid",
            f"the server rejected our request due to an error in our request: {error}",
            {"causes": [{"reason": "FieldValueInvalid", "message": str(error), "field": "patch"}]},
        ) from None
    if not isinstance(result, dict):
        raise status.bad_request("the patched object is not a JSON object")
    return check_fields(request, result, patch=True, current=current)


async def _applied(request: web.Request, current: dict[str, Any] | None) -> dict[str, Any]:
    """Server-side apply: the applied configuration merged onto the live object, and the
    field manager recorded (``?fieldManager=`` is required, as in the apiserver)."""
    manager = request.query.get("fieldManager", "")
    if not manager:
        raise status.bad_request(
            "PATCH requests with application/apply-patch+yaml require fieldManager to be set"
        )
    raw = await request.read()
    try:
        applied = yaml.safe_load(raw.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        detail = " ".join(str(error).split())
        raise status.bad_request(f"error decoding YAML: {detail}") from None
    if not isinstance(applied, dict):
        raise status.bad_request("the applied configuration must be an object")
    result: dict[str, Any] = strategic_merge_patch(current or {}, applied)
    entry = {
        "manager": manager,
        "operation": "Apply",
        "apiVersion": applied.get("apiVersion", ""),
        "time": now_rfc3339(),
        "fieldsType": "FieldsV1",
        "fieldsV1": _fields_v1(applied),
    }
    managed = [
        m
        for m in (result.get("metadata") or {}).get("managedFields") or []
        if not (m.get("manager") == manager and m.get("operation") == "Apply")
    ]
    result.setdefault("metadata", {})["managedFields"] = [*managed, entry]
    return result


def _fields_v1(applied: Any) -> dict[str, Any]:
    """The set of fields an applied configuration names, in FieldsV1's ``f:`` form."""
    if not isinstance(applied, dict):
        return {}
    fields: dict[str, Any] = {}
    for key, value in applied.items():
        if key in ("apiVersion", "kind"):
            continue
        fields[f"f:{key}"] = _fields_v1(value) if isinstance(value, dict) else {}
    return fields


def _not_found_here(request: web.Request) -> status.ApiFailure:
    info = request.match_info
    return status.not_found(info.get("plural", ""), info.get("name", ""), info.get("group", ""))


def _check_update(
    request: web.Request, body: dict[str, Any], current: dict[str, Any], plural: str
) -> None:
    """What the apiserver checks of a replacement: the name and namespace of the URL, and
    (when the body names one) the live resourceVersion (409 Conflict otherwise)."""
    metadata = body.get("metadata")
    if not isinstance(metadata, dict):
        raise status.bad_request("the body of the request must have metadata")
    name = request.match_info["name"]
    if metadata.get("name") not in (None, name):
        raise status.bad_request(
            f"the name of the object ({metadata.get('name')}) does not match the name on the "
            f"URL ({name})"
        )
    metadata["name"] = name
    namespace = request.match_info.get("namespace")
    if namespace is not None:
        if metadata.get("namespace") not in (None, "", namespace):
            raise status.bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )
        metadata["namespace"] = namespace
    version = metadata.get("resourceVersion")
    live = current["metadata"].get("resourceVersion")
    if version not in (None, "", live):
        group = request.match_info.get("group", "")
        resource = f"{plural}.{group}" if group else plural
        raise status.ApiFailure(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {resource} "{name}": the object has been '
            "modified; please apply your changes to the latest version and try again",
            {"name": name, "kind": plural, **({"group": group} if group else {})},
        )


async def _new_or_replacement(
    request: web.Request, current: dict[str, Any] | None, plural: str
) -> dict[str, Any]:
    """The object a PUT or PATCH asks for, checked against the live one."""
    if request.method == "PATCH":
        body = await _patched(request, current)
    else:
        if current is None:
            raise _not_found_here(request)
        body = await _body(request)
    if current is not None:
        _check_update(request, body, current, plural)
        body["metadata"].pop("resourceVersion", None)
    return body


# -- stored resources (configmaps, secrets, services, nodes, events, ...) ------------------------


def _stored_resource(request: web.Request) -> Resource:
    info = request.match_info
    api_version = f"{info['group']}/{info['version']}" if "group" in info else "v1"
    resource = resource_for(api_version, info["plural"])
    if resource is None:
        raise _no_resource()
    namespaced_path = "namespace" in info
    if namespaced_path and not resource.namespaced:
        raise _no_resource()
    if not namespaced_path and resource.namespaced and "name" in info:
        raise _no_resource()
    return resource


def _stored_selector(request: web.Request, resource: Resource) -> Callable[[dict[str, Any]], bool]:
    """Label and field selectors for a stored resource: any field of an Event (as the
    apiserver allows involvedObject.*, reason, type, source ...), else metadata.name/namespace
    (and a Secret's type)."""
    try:
        labels = LabelSelector.parse(request.query.get("labelSelector", ""))
    except SelectorError as error:
        raise status.bad_request(str(error)) from None
    terms: list[tuple[str, str, str]] = []
    for part in _split_terms(request.query.get("fieldSelector", "")):
        if not part:
            continue
        split = _split_term(part)
        if split is None:
            raise status.bad_request(f"invalid selector: can't understand '{part}'")
        field, operator, value = split
        allowed = field in ("metadata.name", "metadata.namespace") or (
            resource.kind == "Event" or (resource.kind == "Secret" and field == "type")
        )
        if not allowed:
            raise status.bad_request(
                f'"{field}" is not a known field selector: only "metadata.name", '
                '"metadata.namespace"'
            )
        terms.append((field, operator, _unescape_value(value)))

    def read(obj: dict[str, Any], path: str) -> str:
        value: Any = obj
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return "" if value is None else str(value)

    def matches(obj: dict[str, Any]) -> bool:
        if not labels.matches(obj["metadata"].get("labels") or {}):
            return False
        for field, operator, value in terms:
            if (read(obj, field) == value) == (operator == "!="):
                return False
        return True

    return matches


def _shown(resource: Resource) -> Callable[[dict[str, Any]], dict[str, Any]]:
    if resource is EVENTS_V1:
        return lambda event: convert_event(event, to_v1=True)
    return lambda obj: obj


def _stored_items(
    cluster: Cluster, resource: Resource, namespace: str | None
) -> list[dict[str, Any]]:
    if resource is ENDPOINTS:
        cluster.refresh_endpoints()
    return sorted(
        (
            obj
            for (ns, _), obj in cluster.store(resource).items()
            if namespace is None or ns == namespace
        ),
        key=_list_key,
    )


async def list_objects(request: web.Request) -> web.StreamResponse:
    resource = _stored_resource(request)
    cluster = cluster_of(request)
    namespace = request.match_info.get("namespace")
    matches = _stored_selector(request, resource)
    shown = _shown(resource)

    def current() -> list[dict[str, Any]]:
        return [shown(o) for o in _stored_items(cluster, resource, namespace) if matches(o)]

    if _is_watch(request):
        return await _watch(
            request,
            namespace,
            matches,
            resource=resource.key,
            kind=resource.kind,
            current=current,
            shown=shown,
        )
    return _list_response(request, resource.kind, resource.api_version, current())


def _stored(request: web.Request, resource: Resource) -> dict[str, Any] | None:
    cluster = cluster_of(request)
    if resource is ENDPOINTS:
        cluster.refresh_endpoints()
    key = (request.match_info.get("namespace", ""), request.match_info["name"])
    return cluster.store(resource).get(key)


async def get_object(request: web.Request) -> web.Response:
    resource = _stored_resource(request)
    obj = _stored(request, resource)
    if obj is None:
        raise status.not_found(resource.plural, request.match_info["name"], resource.group)
    return _object_response(request, _shown(resource)(obj), kind=resource.kind)


def _dry_run(request: web.Request) -> bool:
    """Whether the request asks ``?dryRun=All`` (checked, stored nothing); 400 for another
    value, as the apiserver answers."""
    values = request.query.getall("dryRun", [])
    for value in values:
        if value != "All":
            raise status.bad_request(
                f'Invalid dry run value: dryRun: Unsupported value: "{value}": supported values: "All"'
            )
    return bool(values)


async def _delete_dry_run(request: web.Request) -> bool:
    """Whether a DELETE asks for a dry run: ``?dryRun=All`` or, as kubectl sends it, the
    ``dryRun`` of the DeleteOptions body."""
    if _dry_run(request):
        return True
    if not request.can_read_body:
        return False
    options = await _decoded(request, _OBJECT_TYPES)
    dry_run = options.get("dryRun") if isinstance(options, dict) else None
    if dry_run in (None, []):
        return False
    if dry_run != ["All"]:
        raise status.bad_request(
            f"Invalid dry run value: dryRun: Unsupported value: {json.dumps(dry_run)}: "
            'supported values: "All"'
        )
    return True


def _dry_run_object(body: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
    """What a dry-run write answers: the object asked for, with the live object's identity."""
    if current is not None:
        for key in ("uid", "creationTimestamp", "resourceVersion", "generation"):
            if key in current["metadata"]:
                body["metadata"][key] = current["metadata"][key]
        body.setdefault("status", current.get("status", {}))
    return body


def _check_kind(body: dict[str, Any], kind: str, plural: str) -> None:
    given = body.get("kind")
    if given is not None and given != kind:
        raise status.bad_request(
            f'the kind in the body ("{given}") does not match the resource ({plural})'
        )


async def create_object(request: web.Request) -> web.Response:
    resource = _stored_resource(request)
    cluster = cluster_of(request)
    namespace = request.match_info.get("namespace")
    if resource.namespaced and namespace is None:
        raise _no_resource()
    if namespace is not None and namespace not in cluster.namespaces:
        raise status.not_found("namespaces", namespace)
    body = await _body(request)
    _check_kind(body, resource.kind, resource.plural)
    _validate(body, resource.kind, namespaced=resource.namespaced)
    metadata = body.setdefault("metadata", {})
    if namespace is not None:
        if metadata.get("namespace") not in (None, "", namespace):
            raise status.bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )
        metadata["namespace"] = namespace
    store = cluster.store(resource)
    if not metadata.get("name"):  # validated: generateName is set
        prefix, attempt = metadata["generateName"], 0
        while True:
            name = generated_name(prefix, name_suffix(f"{prefix}/{now_rfc3339()}/{attempt}"))
            if (namespace or "", name) not in store:
                break
            attempt += 1
        metadata["name"] = name
    if (namespace or "", metadata["name"]) in store:
        raise status.already_exists(resource.plural, metadata["name"], resource.group)
    obj = cluster.put_object(resource, body, dry_run=_dry_run(request))
    return _object_response(request, _shown(resource)(obj), kind=resource.kind, status_code=201)


async def update_object(request: web.Request) -> web.Response:
    """PUT and PATCH of a stored object (server-side apply creates a missing one)."""
    resource = _stored_resource(request)
    cluster = cluster_of(request)
    current = _stored(request, resource)
    shown = _shown(resource)
    body = await _new_or_replacement(
        request, None if current is None else shown(current), resource.plural
    )
    _check_kind(body, resource.kind, resource.plural)
    _validate(body, resource.kind, namespaced=resource.namespaced)
    if current is None:
        namespace = request.match_info.get("namespace")
        if namespace is not None:
            if namespace not in cluster.namespaces:
                raise status.not_found("namespaces", namespace)
            body.setdefault("metadata", {})["namespace"] = namespace
        body["metadata"]["name"] = request.match_info["name"]
    obj = cluster.put_object(resource, body, dry_run=_dry_run(request))
    code = 201 if current is None else 200
    return _object_response(request, shown(obj), kind=resource.kind, status_code=code)


def _deleted_status(name: str, plural: str, group: str, uid: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name, "kind": plural, "uid": uid}
    if group:
        details["group"] = group
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }


async def delete_object(request: web.Request) -> web.Response:
    resource = _stored_resource(request)
    name = request.match_info["name"]
    if _stored(request, resource) is None:
        raise status.not_found(resource.plural, name, resource.group)
    namespace = request.match_info.get("namespace", "")
    if await _delete_dry_run(request):
        obj = _stored(request, resource) or {}
    else:
        obj = cluster_of(request).remove_object(resource, namespace, name)
    if resource.kind in _DELETE_RETURNS_OBJECT:
        return _json(_shown(resource)(obj))
    return _json(_deleted_status(name, resource.plural, resource.group, obj["metadata"]["uid"]))


# The kinds whose DELETE answers with the deleted object (the others answer a Status).
_DELETE_RETURNS_OBJECT = frozenset({"Service", "ServiceAccount"})


async def delete_objects(request: web.Request) -> web.Response:
    """deletecollection: every object the selectors match; the deleted ones as a List."""
    resource = _stored_resource(request)
    cluster = cluster_of(request)
    namespace = request.match_info.get("namespace")
    if resource.namespaced and namespace is None:
        raise _no_resource()
    matches = _stored_selector(request, resource)
    dry_run = await _delete_dry_run(request)
    deleted = [
        obj
        if dry_run
        else cluster.remove_object(
            resource, obj["metadata"].get("namespace", ""), obj["metadata"]["name"]
        )
        for obj in _stored_items(cluster, resource, namespace)
        if matches(obj)
    ]
    shown = _shown(resource)
    return _list_response(
        request, resource.kind, resource.api_version, [shown(obj) for obj in deleted]
    )


# -- workloads ----------------------------------------------------------------------------------


def _workload_kind(request: web.Request) -> str:
    group = request.match_info["group"]
    kind = _PLURAL_TO_KIND.get(request.match_info["plural"])
    if kind is None or WORKLOAD_KINDS[kind].group != group or request.match_info["version"] != "v1":
        raise _no_resource()
    return kind


def _is_stored(request: web.Request) -> bool:
    info = request.match_info
    return resource_for(f"{info['group']}/{info['version']}", info["plural"]) is not None


async def list_workloads(request: web.Request) -> web.StreamResponse:
    if _is_stored(request):
        return await list_objects(request)
    kind = _workload_kind(request)
    cluster = cluster_of(request)
    namespace = request.match_info.get("namespace")
    matches = _workload_selector(request)

    def current() -> list[dict[str, Any]]:
        return [w for w in cluster.list_workloads(kind, namespace) if matches(w)]

    if _is_watch(request):
        return await _watch(request, namespace, matches, resource=kind, kind=kind, current=current)
    return _list_response(request, kind, WORKLOAD_KINDS[kind].api_version, current())


def _workload(request: web.Request, kind: str) -> dict[str, Any]:
    name = request.match_info["name"]
    workload = cluster_of(request).get_workload(kind, request.match_info["namespace"], name)
    if workload is None:
        raise status.not_found(request.match_info["plural"], name, WORKLOAD_KINDS[kind].group)
    return workload


async def get_workload(request: web.Request) -> web.Response:
    if _is_stored(request):
        return await get_object(request)
    kind = _workload_kind(request)
    return _object_response(request, _workload(request, kind), kind=kind)


async def create_workload(request: web.Request) -> web.Response:
    if _is_stored(request):
        return await create_object(request)
    kind = _workload_kind(request)
    cluster = cluster_of(request)
    namespace = request.match_info["namespace"]
    if namespace not in cluster.namespaces:
        raise status.not_found("namespaces", namespace)
    body = await _body(request)
    _check_kind(body, kind, request.match_info["plural"])
    _validate(body, kind)
    metadata = body.setdefault("metadata", {})
    if metadata.get("namespace") not in (None, "", namespace):
        raise status.bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    metadata["namespace"] = namespace
    if not metadata.get("name"):
        prefix = metadata["generateName"]
        metadata["name"] = generated_name(prefix, name_suffix(f"{prefix}/{now_rfc3339()}"))
    if cluster.get_workload(kind, namespace, metadata["name"]) is not None:
        raise status.already_exists(
            request.match_info["plural"], metadata["name"], request.match_info["group"]
        )
    body["kind"] = kind
    if _dry_run(request):
        body["apiVersion"] = WORKLOAD_KINDS[kind].api_version
        workload_defaults(body)
        return _object_response(request, body, kind=kind, status_code=201)
    try:
        workload = cluster.create_workload(body)
    except PodCapacityError as error:
        raise status.ApiFailure(403, "Forbidden", str(error), {"kind": kind}) from None
    except (ManifestError, BehaviourError) as error:
        raise status.bad_request(str(error)) from None
    return _object_response(request, workload, kind=kind, status_code=201)


async def update_workload(request: web.Request) -> web.Response:
    if _is_stored(request):
        return await update_object(request)
    kind = _workload_kind(request)
    cluster = cluster_of(request)
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    current = cluster.get_workload(kind, namespace, name)
    body = await _new_or_replacement(request, current, request.match_info["plural"])
    _check_kind(body, kind, request.match_info["plural"])
    _validate(body, kind)
    body["kind"] = kind
    body["metadata"].update({"name": name, "namespace": namespace})
    if _dry_run(request):
        workload_defaults(body)
        answer = _dry_run_object(body, current)
        return _object_response(
            request, answer, kind=kind, status_code=201 if current is None else 200
        )
    try:
        if current is None:  # server-side apply of a new object
            workload = cluster.create_workload(body)
        else:
            workload = cluster.replace_workload(body)
    except PodCapacityError as error:
        raise status.ApiFailure(403, "Forbidden", str(error), {"kind": kind}) from None
    except (ManifestError, BehaviourError) as error:
        raise status.bad_request(str(error)) from None
    return _object_response(
        request, workload, kind=kind, status_code=201 if current is None else 200
    )


async def delete_workload(request: web.Request) -> web.Response:
    if _is_stored(request):
        return await delete_object(request)
    kind = _workload_kind(request)
    workload = _workload(request, kind)
    dry_run, _, policy = await _deletion(request)
    if not dry_run:
        cluster_of(request).delete_workload(workload, policy)
    return _json(workload)


async def delete_workloads(request: web.Request) -> web.Response:
    """deletecollection of a workload kind: every one the selectors match (what each owns
    deleted after it); the deleted ones as a List."""
    if _is_stored(request):
        return await delete_objects(request)
    kind = _workload_kind(request)
    cluster = cluster_of(request)
    matches = _workload_selector(request)
    dry_run, _, policy = await _deletion(request)
    deleted = []
    for workload in cluster.list_workloads(kind, request.match_info["namespace"]):
        if matches(workload):
            if not dry_run:
                cluster.delete_workload(workload, policy)
            deleted.append(workload)
    return _list_response(request, kind, WORKLOAD_KINDS[kind].api_version, deleted)


def _scale(workload: dict[str, Any]) -> dict[str, Any]:
    """The autoscaling/v1 Scale of a workload."""
    metadata = workload["metadata"]
    selector = LabelSelector.from_spec(workload["spec"].get("selector") or {})
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            key: metadata[key]
            for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if key in metadata
        },
        "spec": {"replicas": workload["spec"].get("replicas", 1)},
        "status": {
            "replicas": (workload.get("status") or {}).get("replicas", 0),
            "selector": str(selector),
        },
    }


def _scale_replicas(scale: dict[str, Any], name: str) -> int:
    """The ``spec.replicas`` a Scale asks for; 422 for one the apiserver refuses."""
    replicas = (scale.get("spec") or {}).get("replicas")
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
        raise status.ApiFailure(
            422,
            "Invalid",
            f'Scale.autoscaling "{name}" is invalid: spec.replicas: '
            f"Invalid value: {json.dumps(replicas)}: must be greater than or equal to 0",
            {"causes": [{"reason": "FieldValueInvalid", "field": "spec.replicas"}]},
        )
    return replicas


async def replication_controller_scale(request: web.Request) -> web.Response:
    """GET, PUT and PATCH of ``replicationcontrollers/NAME/scale`` (``kubectl scale rc/NAME``):
    its controller adds or removes the pods."""
    resource = resource_for("v1", "replicationcontrollers")
    assert resource is not None
    cluster = cluster_of(request)
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    rc = cluster.store(resource).get((namespace, name))
    if rc is None:
        raise status.not_found("replicationcontrollers", name)

    def scale_of(obj: dict[str, Any]) -> dict[str, Any]:
        spec = obj.get("spec") or {}
        # Its selector is a plain map: the Scale says it as a label selector.
        return _scale(
            {**obj, "spec": {**spec, "selector": {"matchLabels": spec.get("selector") or {}}}}
        )

    if request.method == "GET":
        return _json(scale_of(rc))
    scale = await _new_or_replacement(request, scale_of(rc), "replicationcontrollers")
    updated = copy.deepcopy(rc)
    updated.setdefault("spec", {})["replicas"] = _scale_replicas(scale, name)
    if _dry_run(request):
        return _json(scale_of(updated))
    return _json(scale_of(cluster.put_object(resource, updated)))


async def workload_scale(request: web.Request) -> web.Response:
    """GET, PUT and PATCH of ``deployments|statefulsets|replicasets/NAME/scale``."""
    kind = _workload_kind(request)
    if kind not in _SCALABLE:
        raise _no_resource()
    cluster = cluster_of(request)
    workload = _workload(request, kind)
    if request.method == "GET":
        return _json(_scale(workload))
    scale = await _new_or_replacement(request, _scale(workload), request.match_info["plural"])
    replicas = _scale_replicas(scale, workload["metadata"]["name"])
    updated = copy.deepcopy(workload)
    updated["spec"]["replicas"] = replicas
    if _dry_run(request):
        return _json(_scale(updated))
    try:
        workload = cluster.replace_workload(updated)
    except PodCapacityError as error:
        raise status.ApiFailure(403, "Forbidden", str(error), {"kind": kind}) from None
    return _json(_scale(workload))


async def workload_status_handler(request: web.Request) -> web.Response:
    """GET of ``WORKLOAD/NAME/status`` (the object itself, as the apiserver returns it)."""
    kind = _workload_kind(request)
    return _json(_workload(request, kind))


_SCALABLE = frozenset({"Deployment", "StatefulSet", "ReplicaSet"})


# -- updates of pods and namespaces -------------------------------------------------------------


async def update_pod(request: web.Request) -> web.Response:
    """PUT and PATCH of a pod: labels, annotations and container images may change and
    tolerations be added, as the apiserver allows; anything else in the spec is 422."""
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    cluster = cluster_of(request)
    entry = cluster.get_pod(namespace, name)
    current = None if entry is None else entry.pod
    if current is None:
        raise status.not_found("pods", name)
    body = await _new_or_replacement(request, current, "pods")
    _check_kind(body, "Pod", "pods")
    _validate(body, "Pod")
    images = _pod_update_images(current, body)
    if images is None:
        raise status.ApiFailure(
            422,
            "Invalid",
            f'Pod "{name}" is invalid: spec: Forbidden: pod updates may not change fields other '
            "than `spec.containers[*].image`,`spec.initContainers[*].image`,"
            "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
            "tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it "
            "was previously negative)",
            {
                "name": name,
                "kind": "Pod",
                "causes": [{"reason": "FieldValueForbidden", "field": "spec"}],
            },
        )
    metadata = body["metadata"]
    if _dry_run(request):
        return _object_response(request, _dry_run_object(body, current), kind="Pod")
    try:
        entry = cluster.update_pod(
            namespace,
            name,
            labels={k: text_value(v) or "" for k, v in (metadata.get("labels") or {}).items()},
            annotations={
                k: text_value(v) or "" for k, v in (metadata.get("annotations") or {}).items()
            },
            images=images,
            tolerations=(body.get("spec") or {}).get("tolerations"),
            owner_references=metadata.get("ownerReferences"),
        )
    except BehaviourError as error:
        raise status.bad_request(str(error)) from None
    return _object_response(request, entry.pod, kind="Pod")


def _pod_update_images(current: dict[str, Any], body: dict[str, Any]) -> dict[str, str] | None:
    """The container images an update sets, or None when it changes more of the spec than
    images. Fields the sandbox fills in count as unchanged when the body leaves them out."""
    old, new = current.get("spec") or {}, body.get("spec")
    if new is None:
        return {}
    if not isinstance(new, dict):
        return None
    images: dict[str, str] = {}
    for key in set(old) | set(new):
        if key not in new:
            continue  # a default the client did not send back
        if key in ("containers", "initContainers"):
            olds, news = old.get(key) or [], new.get(key) or []
            if [c.get("name") for c in olds] != [c.get("name") for c in news]:
                return None
            for before, after in zip(olds, news):
                for field in set(before) | set(after):
                    if field == "image":
                        continue
                    if field in after and after.get(field) != before.get(field):
                        return None
                if after.get("image") and after.get("image") != before.get("image"):
                    images[str(after["name"])] = str(after["image"])
        elif key == "tolerations" and _only_added(old.get(key), new.get(key)):
            continue  # applied by update_pod
        elif new.get(key) != old.get(key):
            return None
    return images


def _only_added(before: Any, after: Any) -> bool:
    """Whether the list ``after`` keeps every entry of ``before`` (tolerations may only be
    added to a running pod)."""
    before, after = before or [], after or []
    return isinstance(after, list) and all(entry in after for entry in before)


async def update_namespace(request: web.Request) -> web.Response:
    """PUT and PATCH of a namespace: its labels and annotations."""
    name = request.match_info["name"]
    cluster = cluster_of(request)
    current = cluster.namespaces.get(name)
    body = await _new_or_replacement(request, current, "namespaces")
    _check_kind(body, "Namespace", "namespaces")
    _validate(body, "Namespace", namespaced=False)
    metadata = body["metadata"]
    if _dry_run(request):
        return _object_response(request, _dry_run_object(body, current), kind="Namespace")
    namespace = cluster.update_namespace(
        name,
        labels={k: text_value(v) or "" for k, v in (metadata.get("labels") or {}).items()},
        annotations={
            k: text_value(v) or "" for k, v in (metadata.get("annotations") or {}).items()
        },
    )
    return _object_response(request, namespace, kind="Namespace")


# -- sandbox-only endpoints ---------------------------------------------------------------------


async def issue_token(request: web.Request) -> web.Response:
    """``POST /sandbox/tokens`` with an optional body ``{"ttl": seconds, "user": name, "groups":
    [...]}`` (a named user's token is held to RBAC), authenticated with the
    sandbox's own (admin) token: a new bearer token for the Kubernetes API, answered as
    ``{"token": ..., "expirationTimestamp": RFC 3339 or null}``. For exec credential plugins in
    tests; ``Sandbox.expire_tokens()`` makes every issued token answer 401."""
    ttl: Any = None
    user: Any = None
    groups: Any = []
    if request.can_read_body:
        # Not a Kubernetes endpoint: the body is JSON whatever its Content-Type says.
        body = await _decoded(request, None)
        if not isinstance(body, dict):
            raise status.bad_request("the body of the request must be a JSON object")
        ttl = body.get("ttl")
        user, groups = body.get("user"), body.get("groups") or []
        if user is not None and (not isinstance(user, str) or not user.strip()):
            raise status.bad_request(f"user must be a non-empty string, got {json.dumps(user)}")
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise status.bad_request("groups must be a list of group names")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, (int, float))):
        raise status.bad_request(f"ttl must be a number of seconds, got {json.dumps(ttl)}")
    # The range first: math.isfinite() of a huge JSON integer (10**400) overflows.
    if ttl is not None and not (0 < ttl <= MAX_TOKEN_TTL and math.isfinite(ttl)):
        # 400 (not 422) as this endpoint always answered; the cause names the field all the same.
        problem = FieldError(
            "ttl", "Invalid", ttl, f"must be above 0 and at most {MAX_TOKEN_TTL:.0f} seconds"
        )
        raise status.ApiFailure(
            400,
            "BadRequest",
            str(problem),
            {"causes": [{"reason": problem.reason, "message": problem.body, "field": "ttl"}]},
        )
    issued, expires = cluster_of(request).issue_token(ttl, user=user, groups=tuple(groups))
    stamp = None if expires is None else _utc_stamp(expires)
    return _json({"token": issued, "expirationTimestamp": stamp}, status_code=201)


def _utc_stamp(unix_time: float) -> str:
    """RFC 3339 in UTC, whole seconds, as the apiserver writes expiry times."""
    return datetime.datetime.fromtimestamp(unix_time, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


#: A TokenRequest's expirationSeconds: at least 10 minutes, as the apiserver requires; an hour
#: when not given.
_MIN_TOKEN_SECONDS = 600
_DEFAULT_TOKEN_SECONDS = 3600


async def service_account_token(request: web.Request) -> web.Response:
    """``POST serviceaccounts/NAME/token`` (``kubectl create token``): a TokenRequest answered
    with a bearer token the sandbox accepts until it expires, whose reviews name
    ``system:serviceaccount:NS:NAME`` (it may do what the RBAC objects bind to it)."""
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    cluster = cluster_of(request)
    if (namespace, name) not in cluster.store(SERVICE_ACCOUNTS):
        raise status.not_found("serviceaccounts", name)
    body = await _body(request)
    _check_kind(body, "TokenRequest", "serviceaccounts/token")
    spec = dict(body.get("spec") or {})
    seconds = spec.get("expirationSeconds") or _DEFAULT_TOKEN_SECONDS
    field = "spec.expirationSeconds"
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        problem = FieldError(field, "Invalid", seconds, "must be an integer", decode=True)
        raise _invalid(ObjectInvalid("TokenRequest", name, [problem]))
    if not _MIN_TOKEN_SECONDS <= seconds <= MAX_TOKEN_TTL:
        # The apiserver's words.
        detail = (
            "may not specify a duration less than 10 minutes"
            if seconds < _MIN_TOKEN_SECONDS
            else "may not specify a duration larger than 2^32 seconds"
        )
        problem = FieldError(field, "Invalid", seconds, detail)
        raise _invalid(ObjectInvalid("TokenRequest", name, [problem]))
    token, expires = cluster.issue_token(seconds, user=f"system:serviceaccount:{namespace}:{name}")
    assert expires is not None  # a ttl was given
    spec["expirationSeconds"] = seconds
    spec.setdefault("audiences", ["https://kubernetes.default.svc.cluster.local"])
    spec.setdefault("boundObjectRef", None)
    answer = {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": now_rfc3339()},
        "spec": spec,
        "status": {
            "token": token,
            "expirationTimestamp": _utc_stamp(expires),
        },
    }
    return _json(answer, status_code=201)


async def not_found_fallback(request: web.Request) -> web.Response:
    raise _no_resource()


def _with_trailing_slashes(routes: list[web.RouteDef]) -> list[web.RouteDef]:
    """``routes`` and, for every path under the go-restful roots, the same with a trailing
    slash."""
    slashed = []
    for route in routes:
        root = "/" + route.path.split("/", 2)[1]
        if root in _SLASH_TOLERANT_ROOTS and not route.path.endswith("/"):
            slashed.append(
                web.RouteDef(route.method, route.path + "/", route.handler, route.kwargs)
            )
    return [*routes, *slashed]


# The stored core resources by plural (a pattern, so they never shadow pods' routes).
_CORE_PLURALS = "|".join(sorted({r.plural for r in RESOURCES if r.api_version == "v1"}))


def _stored_routes() -> list[web.RouteDef]:
    """Routes of the stored core resources (group ones go through the workloads' routes)."""
    collection = "/api/v1/namespaces/{namespace}/{plural:" + _CORE_PLURALS + "}"
    cluster_wide = "/api/v1/{plural:" + _CORE_PLURALS + "}"
    routes = []
    for base in (collection, cluster_wide):
        routes += [
            web.get(base, list_objects),
            web.post(base, create_object),
            web.delete(base, delete_objects),
            web.get(base + "/{name}", get_object),
            web.put(base + "/{name}", update_object),
            web.patch(base + "/{name}", update_object),
            web.delete(base + "/{name}", delete_object),
        ]
    return routes


def build_app(cluster: Cluster, *, token: str | None, exec_handler: Handler) -> web.Application:
    """The aiohttp application for one sandbox."""
    from ._logs import handle_pod_log  # here: it uses this module's helpers
    from ._portforward import handle_portforward  # it reads the cluster through this module

    app = web.Application(
        middlewares=[_unexpected_errors, _record_auth_throttle],
        client_max_size=64 * 1024 * 1024,
    )
    app[CLUSTER_KEY] = cluster
    app[TOKEN_KEY] = token or ""
    app.on_response_prepare.append(add_warning_headers)
    app[CONNECTIONS_KEY] = Connections()
    ns = "/api/v1/namespaces/{namespace}"
    group = "/apis/{group}/{version}"
    app.add_routes(
        _with_trailing_slashes(
            [
                web.get("/version", version),
                web.get("/healthz", healthz),
                web.get("/livez", healthz),
                web.get("/readyz", healthz),
                web.post(
                    "/apis/{group:authentication.k8s.io}/{version:v1}/"
                    "{plural:selfsubjectreviews|tokenreviews}",
                    review,
                ),
                web.post(
                    "/apis/{group:authorization.k8s.io}/{version:v1}/"
                    "{plural:selfsubjectaccessreviews|selfsubjectrulesreviews}",
                    review,
                ),
                web.get("/openapi/v2", handle_openapi_v2),
                web.get("/openapi/v3", openapi_v3),
                web.get("/openapi/v3/{tail:.+}", openapi_v3_group_version),
                web.get("/api", api_versions),
                web.get("/apis", api_groups),
                web.get("/api/v1", core_resources),
                web.get(group, group_resources),
                web.get("/api/v1/namespaces", list_namespaces),
                web.post("/api/v1/namespaces", create_namespace),
                web.get(ns, get_namespace),
                web.delete(ns, delete_namespace),
                web.put("/api/v1/namespaces/{name}", update_namespace),
                web.patch("/api/v1/namespaces/{name}", update_namespace),
                web.get("/api/v1/pods", list_pods),
                web.get(ns + "/pods", list_pods),
                web.post(ns + "/pods", create_pod),
                web.delete(ns + "/pods", delete_pods),
                web.route(
                    "*",
                    ns + "/{plural:replicationcontrollers}/{name}/scale",
                    replication_controller_scale,
                ),
                web.post(ns + "/serviceaccounts/{name}/token", service_account_token),
                web.get(ns + "/pods/{name}", get_pod),
                web.delete(ns + "/pods/{name}", delete_pod),
                web.put(ns + "/pods/{name}", update_pod),
                web.patch(ns + "/pods/{name}", update_pod),
                web.get(ns + "/pods/{name}/log", handle_pod_log),
                web.get(ns + "/pods/{name}/exec", exec_handler),
                web.post(ns + "/pods/{name}/exec", exec_handler),
                web.get(ns + "/pods/{name}/portforward", handle_portforward),
                web.post(ns + "/pods/{name}/portforward", handle_portforward),
                web.get(group + "/{plural}", list_workloads),
                # Cluster-scoped kinds of a group (ClusterRole, ...); other names are 404.
                web.post(group + "/{plural}", create_object),
                web.get(group + "/{plural}/{name}", get_object),
                web.put(group + "/{plural}/{name}", update_object),
                web.patch(group + "/{plural}/{name}", update_object),
                web.delete(group + "/{plural}/{name}", delete_object),
                web.get(group + "/namespaces/{namespace}/{plural}", list_workloads),
                web.post(group + "/namespaces/{namespace}/{plural}", create_workload),
                web.delete(group + "/namespaces/{namespace}/{plural}", delete_workloads),
                web.get(group + "/namespaces/{namespace}/{plural}/{name}", get_workload),
                web.put(group + "/namespaces/{namespace}/{plural}/{name}", update_workload),
                web.patch(group + "/namespaces/{namespace}/{plural}/{name}", update_workload),
                web.delete(group + "/namespaces/{namespace}/{plural}/{name}", delete_workload),
                web.route(
                    "*", group + "/namespaces/{namespace}/{plural}/{name}/scale", workload_scale
                ),
                web.get(
                    group + "/namespaces/{namespace}/{plural}/{name}/status",
                    workload_status_handler,
                ),
                *_stored_routes(),
                web.post("/sandbox/tokens", issue_token),
                web.route("*", "/{tail:.*}", not_found_fallback),
            ]
        )
    )
    return app
