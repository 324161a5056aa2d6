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
import datetime
import hmac
import json
import logging
import math
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .._kinds import WORKLOAD_KINDS
from .._selectors import FieldSelector, LabelSelector, SelectorError
from . import _status as status
from ._behaviour import BehaviourError
from ._discovery import API_GROUPS, API_VERSIONS, RESOURCE_LISTS, VERSION_INFO
from ._objects import name_suffix, now_rfc3339
from ._protobuf import MEDIA_TYPE as PROTOBUF_MEDIA_TYPE
from ._protobuf import ProtobufError
from ._protobuf import decode as decode_protobuf
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
    if token and request.path not in _ANONYMOUS_PATHS:
        supplied = request.headers.get("Authorization", "")
        if not hmac.compare_digest(supplied.encode(), f"Bearer {token}".encode()):
            # Tokens handed out by POST /sandbox/tokens (an exec credential plugin's) work
            # for the Kubernetes API until they expire; then 401, as for a wrong token.
            scheme, _, issued = supplied.partition(" ")
            if sandbox_only or scheme != "Bearer" or not cluster.token_is_valid(issued):
                raise status.unauthorized()
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


def _is_watch(request: web.Request) -> bool:
    return request.query.get("watch", "").lower() in {"1", "t", "true"}


async def _watch(
    request: web.Request, namespace: str | None, matches: Callable[[dict[str, Any]], bool]
) -> web.StreamResponse:
    """Stream pod events as JSON lines until the client leaves or ``timeoutSeconds`` pass."""
    cluster = cluster_of(request)
    # Parsed before the stream starts, so a bad value is still a 400 Status.
    timeout = _int_query(request, "timeoutSeconds", 1800)
    if timeout <= 0:
        timeout = 1800  # the apiserver's default applies to 0 and below as well
    watcher = Watcher(namespace=namespace, matches=matches)
    response = web.StreamResponse(
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    )
    await response.prepare(request)
    since = request.query.get("resourceVersion")
    if not since or since == "0":
        # Without a resource version a watch starts with the current state as ADDED events.
        for pod in cluster.list_pods(namespace, matches):
            watcher.queue.put_nowait({"type": "ADDED", "object": pod})
    cluster.watchers.add(watcher)
    try:
        with contextlib.suppress(asyncio.TimeoutError, ConnectionResetError):
            async with asyncio.timeout(timeout):
                while True:
                    event = await watcher.queue.get()
                    if event is None:
                        break
                    await response.write(json.dumps(event, separators=(",", ":")).encode() + b"\n")
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
    return _json(namespace)


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
    return _json(cluster.add_namespace(name, labels), status_code=201)


async def delete_namespace(request: web.Request) -> web.Response:
    name = request.match_info["namespace"]
    cluster = cluster_of(request)
    if name not in cluster.namespaces:
        raise status.not_found("namespaces", name)
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
    return body


async def _decoded(request: web.Request, media_types: frozenset[str]) -> Any:
    """The request's JSON value (415 for another media type, 400 for bad JSON)."""
    media_type = _media_type(request)
    if media_type not in media_types:
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
    return _json(entry.pod)


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
    return _json(entry.pod, status_code=201)


async def delete_pod(request: web.Request) -> web.Response:
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    entry = cluster_of(request).delete_pod(namespace, name)
    if entry is None:
        raise status.not_found("pods", name)
    return _json(entry.pod)


async def get_service_account(request: web.Request) -> web.Response:
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    cluster = cluster_of(request)
    if name != "default" or namespace not in cluster.namespaces:
        raise status.not_found("serviceaccounts", name)
    return _json(_service_account(namespace))


async def list_service_accounts(request: web.Request) -> web.Response:
    namespace = request.match_info["namespace"]
    cluster = cluster_of(request)
    items = [_service_account(namespace)] if namespace in cluster.namespaces else []
    return _list_response(request, "ServiceAccount", "v1", items)


def _service_account(namespace: str) -> dict[str, Any]:
    return {
        "kind": "ServiceAccount",
        "apiVersion": "v1",
        "metadata": {
            "name": "default",
            "namespace": namespace,
            "uid": f"sa-{namespace}-default",
            "resourceVersion": "1",
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
    }


# -- workloads ----------------------------------------------------------------------------------


def _workload_kind(request: web.Request) -> str:
    group = request.match_info["group"]
    kind = _PLURAL_TO_KIND.get(request.match_info["plural"])
    if kind is None or WORKLOAD_KINDS[kind].group != group or request.match_info["version"] != "v1":
        raise _no_resource()
    return kind


async def list_workloads(request: web.Request) -> web.Response:
    kind = _workload_kind(request)
    matches = _workload_selector(request)
    items = [
        w
        for w in cluster_of(request).list_workloads(kind, request.match_info.get("namespace"))
        if matches(w)
    ]
    return _list_response(request, kind, WORKLOAD_KINDS[kind].api_version, items)


async def get_workload(request: web.Request) -> web.Response:
    kind = _workload_kind(request)
    name = request.match_info["name"]
    workload = cluster_of(request).get_workload(kind, request.match_info["namespace"], name)
    if workload is None:
        raise status.not_found(request.match_info["plural"], name, WORKLOAD_KINDS[kind].group)
    return _json(workload)


# -- sandbox-only endpoints ---------------------------------------------------------------------


async def issue_token(request: web.Request) -> web.Response:
    """``POST /sandbox/tokens`` with an optional body ``{"ttl": seconds}``, authenticated with the
    sandbox's own (admin) token: a new bearer token for the Kubernetes API, answered as
    ``{"token": ..., "expirationTimestamp": RFC 3339 or null}``. For exec credential plugins in
    tests; ``Sandbox.expire_tokens()`` makes every issued token answer 401."""
    ttl: Any = None
    if request.can_read_body:
        ttl = (await _body(request)).get("ttl")
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
    issued, expires = cluster_of(request).issue_token(ttl)
    stamp = None
    if expires is not None:
        stamp = datetime.datetime.fromtimestamp(expires, datetime.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
    return _json({"token": issued, "expirationTimestamp": stamp}, status_code=201)


async def not_found_fallback(request: web.Request) -> web.Response:
    raise _no_resource()


def _add_trailing_slash_routes(app: web.Application) -> None:
    """Serve every path under the go-restful roots with a trailing slash as well."""
    for route in list(app.router.routes()):
        path = route.resource.canonical if route.resource is not None else ""
        root = "/" + path.split("/", 2)[1] if path.startswith("/") else ""
        if root in _SLASH_TOLERANT_ROOTS and not path.endswith("/") and route.method != "HEAD":
            app.router.add_route(route.method, path + "/", route.handler)


def build_app(cluster: Cluster, *, token: str | None, exec_handler: Handler) -> web.Application:
    """The aiohttp application for one sandbox."""
    app = web.Application(
        middlewares=[_unexpected_errors, _record_auth_throttle],
        client_max_size=64 * 1024 * 1024,
    )
    app[CLUSTER_KEY] = cluster
    app[TOKEN_KEY] = token or ""
    app[CONNECTIONS_KEY] = Connections()
    ns = "/api/v1/namespaces/{namespace}"
    group = "/apis/{group}/{version}"
    app.add_routes(
        [
            web.get("/version", version),
            web.get("/healthz", healthz),
            web.get("/livez", healthz),
            web.get("/readyz", healthz),
            web.get("/api", api_versions),
            web.get("/apis", api_groups),
            web.get("/api/v1", core_resources),
            web.get(group, group_resources),
            web.get("/api/v1/namespaces", list_namespaces),
            web.post("/api/v1/namespaces", create_namespace),
            web.get(ns, get_namespace),
            web.delete(ns, delete_namespace),
            web.get("/api/v1/pods", list_pods),
            web.get(ns + "/pods", list_pods),
            web.post(ns + "/pods", create_pod),
            web.get(ns + "/pods/{name}", get_pod),
            web.delete(ns + "/pods/{name}", delete_pod),
            web.get(ns + "/pods/{name}/exec", exec_handler),
            web.post(ns + "/pods/{name}/exec", exec_handler),
            web.get(ns + "/serviceaccounts", list_service_accounts),
            web.get(ns + "/serviceaccounts/{name}", get_service_account),
            web.get(group + "/{plural}", list_workloads),
            web.get(group + "/namespaces/{namespace}/{plural}", list_workloads),
            web.get(group + "/namespaces/{namespace}/{plural}/{name}", get_workload),
            web.post("/sandbox/tokens", issue_token),
            web.route("*", "/{tail:.*}", not_found_fallback),
        ]
    )
    _add_trailing_slash_routes(app)
    return app
