"""A pod's volumes, made and mounted the way the kubelet makes and mounts them.

* ``emptyDir``: a folder of the pod's, shared by the containers that mount it.
* ``hostPath``: the host's folder or file.
* ``configMap``, ``secret``, ``downwardAPI`` and ``projected`` (with ``serviceAccountToken``
  sources): their files are written by :func:`write_atomically` as the kubelet's atomic
  writer writes them — the data in a timestamped folder ``..2026_11_30_08_40_00.1234567``,
  a ``..data`` symlink to it, and one symlink per top-level name to ``..data/<name>`` — so an
  update swaps ``..data`` with one ``rename`` and a reader never sees half of it. ``items``
  pick and rename keys, ``mode``/``defaultMode`` set file modes, ``optional`` says whether a
  missing object or key is an error (:class:`VolumeError`, with the kubelet's wording) or
  an empty volume. These volumes are always mounted read-only, as the kubelet does.
* A pod without ``automountServiceAccountToken: false`` gets ``kube-api-access``: a projected
  volume of a token of the sandbox's for its service account (``TokenRequest``'s tokens:
  reviews name ``system:serviceaccount:NS:NAME``), ``ca.crt`` (the sandbox's CA) and
  ``namespace``, at ``/var/run/secrets/kubernetes.io/serviceaccount`` in every container.

``subPath`` (and ``subPathExpr``) mount one file or folder of a volume; as in Kubernetes they
are resolved when the container starts and do not see later updates. Every other mount of a
ConfigMap, Secret or downward-API volume follows changes: :class:`PodVolumes` rewrites a
pod's volumes when an object they project changes (told by the cluster's watch), so the new
files are there as soon as the API call that changed them has answered.

Only pods with their own mount namespaces (:mod:`._isolation`) mount volumes; pods run as
plain processes see none.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import random
import shutil
import time
import weakref
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ._images import image_mount_arguments
from ._resources import RESOURCES
from ._state import ManifestError, _field_ref

__all__ = [
    "SERVICE_ACCOUNT_FOLDER",
    "PodVolumes",
    "VolumeError",
    "forget_pod",
    "mount_arguments",
    "pod_volumes",
    "remember_ca",
    "volume_payload",
    "write_atomically",
]

log = logging.getLogger(__name__)

#: Where the kubelet mounts a pod's service account token, CA and namespace.
SERVICE_ACCOUNT_FOLDER = "/var/run/secrets/kubernetes.io/serviceaccount"
# The file mode of projected files when a volume names none (0644, as the API server defaults).
_DEFAULT_MODE = 0o644
# kube-api-access: what the ServiceAccount admission plugin adds to a pod.
_TOKEN_SECONDS = 3607
_DATA = "..data"

_CONFIGMAPS = next(r for r in RESOURCES if r.key == "configmaps")
_SECRETS = next(r for r in RESOURCES if r.key == "secrets")

#: Payload: relative path -> (content, file mode).
Payload = dict[str, tuple[bytes, int]]


class VolumeError(ManifestError):
    """A volume cannot be set up; the message is the kubelet's ``MountVolume.SetUp`` line."""


# -- the atomic writer -----------------------------------------------------------------------


def _timestamped_name() -> str:
    # The kubelet's: os.MkdirTemp(dir, time.Now().UTC().Format("..2006_01_02_15_04_05.")).
    stamp = datetime.now(timezone.utc).strftime("..%Y_%m_%d_%H_%M_%S.")
    return f"{stamp}{random.randrange(10**9, 10**10)}"


def _current(target: Path) -> Payload | None:
    """What ``target``'s ``..data`` holds now (None: nothing written yet)."""
    data = target / _DATA
    if not data.is_symlink():
        return None
    payload: Payload = {}
    for folder, _, files in os.walk(data, followlinks=True):
        for name in files:
            path = Path(folder, name)
            payload[str(path.relative_to(data))] = (path.read_bytes(), path.stat().st_mode & 0o7777)
    return payload


def write_atomically(target: Path, payload: Mapping[str, tuple[bytes, int]]) -> bool:
    """Make ``target`` show ``payload`` the way the kubelet's atomic writer does.

    Returns whether anything changed. The new data goes into a new timestamped folder,
    ``..data`` is switched to it with one rename, then the old folder and the top-level
    symlinks of names no longer there are removed.
    """
    target.mkdir(parents=True, exist_ok=True)
    if _current(target) == dict(payload):
        return False
    fresh = target / _timestamped_name()
    fresh.mkdir(mode=0o755)
    fresh.chmod(0o755)  # whatever the umask
    for relative, (content, mode) in payload.items():
        path = fresh / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode)
    old = os.readlink(target / _DATA) if (target / _DATA).is_symlink() else None
    link = target / "..data_tmp"
    with contextlib.suppress(FileNotFoundError):
        link.unlink()
    link.symlink_to(fresh.name)
    link.replace(target / _DATA)
    wanted = {relative.split("/", 1)[0] for relative in payload}
    for entry in target.iterdir():
        if entry.name.startswith(".."):
            continue
        if entry.name not in wanted and entry.is_symlink():
            entry.unlink()
    for name in wanted:
        visible = target / name
        if not visible.is_symlink():
            visible.symlink_to(f"{_DATA}/{name}")
    if old is not None and old != fresh.name and not old.startswith("/"):
        shutil.rmtree(target / old, ignore_errors=True)
    return True


# -- what a volume holds ---------------------------------------------------------------------

_cluster_ca: weakref.WeakKeyDictionary[object, bytes] = weakref.WeakKeyDictionary()


def remember_ca(cluster: object, ca_pem: bytes | None) -> None:
    """The CA that signs the API server's certificate: ``ca.crt`` of service account volumes."""
    if ca_pem is not None:
        _cluster_ca[cluster] = ca_pem


def _mode(value: Any, default: int) -> int:
    return int(value) & 0o777 if isinstance(value, int) and not isinstance(value, bool) else default


def _keys_payload(
    what: str,
    name: str,
    obj: Mapping[str, Any] | None,
    source: Mapping[str, Any],
    default_mode: int,
    decode: Callable[[str], bytes],
    volume: str,
) -> Payload:
    """A configMap's or secret's files: all its keys, or ``items`` (key → path, mode)."""
    optional = bool(source.get("optional"))
    if obj is None:
        if optional:
            return {}
        raise VolumeError(
            f'MountVolume.SetUp failed for volume "{volume}" : {what} "{name}" not found'
        )
    values: dict[str, bytes] = {
        key: decode(str(text)) for key, text in (obj.get("data") or {}).items()
    }
    for key, text in (obj.get("binaryData") or {}).items():
        values[key] = base64.b64decode(str(text))
    items = source.get("items")
    if not items:
        return {key: (content, default_mode) for key, content in values.items()}
    payload: Payload = {}
    for item in items:
        key = str(item.get("key", ""))
        if key not in values:
            if optional:
                continue
            raise VolumeError(
                f'MountVolume.SetUp failed for volume "{volume}" : '
                f"{what} references non-existent config key: {key}"
            )
        payload[str(item.get("path") or key)] = (values[key], _mode(item.get("mode"), default_mode))
    return payload


def _resource_field(
    pod: Mapping[str, Any], ref: Mapping[str, Any], container_name: str | None
) -> str:
    """``resourceFieldRef``: a container's limit or request (limits default to the node's)."""
    name = str(ref.get("containerName") or container_name or "")
    containers: list[Mapping[str, Any]] = (pod.get("spec") or {}).get("containers") or []
    container = next((c for c in containers if c.get("name") == name), {})
    resource = str(ref.get("resource", ""))
    kind, _, what = resource.partition(".")
    value = ((container.get("resources") or {}).get(kind) or {}).get(what)
    if value is None:
        if what == "cpu":
            value = str(os.cpu_count() or 1)
        elif what == "memory":
            value = str(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        else:
            value = "0"
    quantity = _quantity(str(value))
    divisor = _quantity(str(ref.get("divisor") or "1"))
    # The kubelet rounds up (cpu limits in whole cores unless a divisor such as 1m is given).
    units = -(-quantity // divisor) if divisor else quantity
    return str(int(units))


_SUFFIXES = {
    "m": 0.001,
    "": 1,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
}


def _quantity(text: str) -> float:
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if suffix and text.endswith(suffix):
            try:
                return float(text[: -len(suffix)]) * _SUFFIXES[suffix]
            except ValueError:
                return 0.0
    try:
        return float(text)
    except ValueError:
        return 0.0


def _downward_value(pod: Mapping[str, Any], item: Mapping[str, Any], container: str | None) -> str:
    field = item.get("fieldRef")
    if isinstance(field, Mapping):
        path = str(field.get("fieldPath", ""))
        metadata = pod["metadata"]
        if path in ("metadata.labels", "metadata.annotations"):
            # The kubelet's format: key="value" lines, sorted, values quoted as Go's %q.
            values = metadata.get(path.split(".")[1]) or {}
            return "\n".join(f'{key}="{_go_quote(str(values[key]))}"' for key in sorted(values))
        return _field_ref(pod, field)
    resource = item.get("resourceFieldRef")
    if isinstance(resource, Mapping):
        return _resource_field(pod, resource, container)
    return ""


def _go_quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _Context:
    """What a volume's content is taken from: the cluster's objects and the pod."""

    def __init__(self, cluster: Any, pod: Mapping[str, Any]) -> None:
        self.cluster = cluster
        self.pod = pod
        self.namespace = str(pod["metadata"]["namespace"])

    def get(self, resource: Any, name: str) -> Mapping[str, Any] | None:
        obj: Mapping[str, Any] | None = self.cluster.store(resource).get((self.namespace, name))
        return obj

    def token(self, source: Mapping[str, Any]) -> bytes:
        account = str((self.pod.get("spec") or {}).get("serviceAccountName") or "default")
        seconds = source.get("expirationSeconds")
        ttl = float(seconds) if isinstance(seconds, int) and seconds >= 600 else _TOKEN_SECONDS
        token, _ = self.cluster.issue_token(
            ttl, user=f"system:serviceaccount:{self.namespace}:{account}"
        )
        return str(token).encode()


def volume_payload(
    cluster: Any, pod: Mapping[str, Any], volume: Mapping[str, Any], *, tokens: bool = True
) -> Payload | None:
    """The files of a ConfigMap, Secret, downward-API or projected volume (None: another kind).

    ``tokens=False`` leaves service account tokens out (for comparing payloads without
    issuing one). Raises :class:`VolumeError` for a missing object or key that is not
    ``optional``.
    """
    context = _Context(cluster, pod)
    name = str(volume.get("name", ""))
    if "configMap" in volume:
        source = volume["configMap"] or {}
        return _keys_payload(
            "configmap",
            str(source.get("name", "")),
            context.get(_CONFIGMAPS, str(source.get("name", ""))),
            source,
            _mode(source.get("defaultMode"), _DEFAULT_MODE),
            str.encode,
            name,
        )
    if "secret" in volume:
        source = volume["secret"] or {}
        secret_name = str(source.get("secretName", ""))
        return _keys_payload(
            "secret",
            secret_name,
            context.get(_SECRETS, secret_name),
            source,
            _mode(source.get("defaultMode"), _DEFAULT_MODE),
            base64.b64decode,
            name,
        )
    if "downwardAPI" in volume:
        source = volume["downwardAPI"] or {}
        return _downward_payload(context, source, _mode(source.get("defaultMode"), _DEFAULT_MODE))
    if "projected" in volume:
        source = volume["projected"] or {}
        default_mode = _mode(source.get("defaultMode"), _DEFAULT_MODE)
        payload: Payload = {}
        for part in source.get("sources") or []:
            if "configMap" in part:
                cm = part["configMap"] or {}
                payload.update(
                    _keys_payload(
                        "configmap",
                        str(cm.get("name", "")),
                        context.get(_CONFIGMAPS, str(cm.get("name", ""))),
                        cm,
                        default_mode,
                        str.encode,
                        name,
                    )
                )
            elif "secret" in part:
                secret = part["secret"] or {}
                payload.update(
                    _keys_payload(
                        "secret",
                        str(secret.get("name", "")),
                        context.get(_SECRETS, str(secret.get("name", ""))),
                        secret,
                        default_mode,
                        base64.b64decode,
                        name,
                    )
                )
            elif "downwardAPI" in part:
                payload.update(_downward_payload(context, part["downwardAPI"] or {}, default_mode))
            elif "serviceAccountToken" in part:
                token = part["serviceAccountToken"] or {}
                content = context.token(token) if tokens else b""
                payload[str(token.get("path") or "token")] = (content, default_mode)
        return payload
    return None


def _downward_payload(context: _Context, source: Mapping[str, Any], default_mode: int) -> Payload:
    return {
        str(item.get("path", "")): (
            _downward_value(context.pod, item, None).encode(),
            _mode(item.get("mode"), default_mode),
        )
        for item in source.get("items") or []
    }


def _service_account_volume(pod: Mapping[str, Any]) -> dict[str, Any]:
    """The ``kube-api-access`` volume the ServiceAccount admission plugin adds to a pod."""
    return {
        "name": "kube-api-access",
        "projected": {
            "defaultMode": _DEFAULT_MODE,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": _TOKEN_SECONDS, "path": "token"}},
                {
                    "configMap": {
                        "name": "kube-root-ca.crt",
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}
                        ]
                    }
                },
            ],
        },
    }


def _mounts_service_account(spec: Mapping[str, Any]) -> bool:
    """Whether the kubelet would give this pod ``kube-api-access`` (and none is declared)."""
    if spec.get("automountServiceAccountToken") is False:
        return False
    return not any(
        str(mount.get("mountPath", "")).rstrip("/") == SERVICE_ACCOUNT_FOLDER
        for container in spec.get("containers") or []
        for mount in container.get("volumeMounts") or []
    )


# -- one pod's volumes -------------------------------------------------------------------------


class PodVolumes:
    """The volumes of one pod, written under its folder ``<pod folder>/.volumes/<name>``."""

    def __init__(self, cluster: Any, pod: Mapping[str, Any], folder: Path) -> None:
        self.cluster = cluster
        self.pod = pod
        self.folder = folder / ".volumes"
        self.uses: set[tuple[str, str]] = set()  # ("configmaps" | "secrets", name)
        self._tokens: dict[str, bytes] = {}
        self._token_seconds: float | None = None  # the shortest lifetime of its tokens
        self._rotation: asyncio.TimerHandle | None = None
        #: The labels and annotations its downward-API files were written from.
        self.written_labels = _labels_and_annotations(pod)

    def volumes(self) -> dict[str, Mapping[str, Any]]:
        spec = self.pod.get("spec") or {}
        declared: dict[str, Mapping[str, Any]] = {
            str(v.get("name")): v for v in spec.get("volumes") or []
        }
        if _mounts_service_account(spec):
            declared.setdefault("kube-api-access", _service_account_volume(self.pod))
        return declared

    def _payload(self, volume: Mapping[str, Any]) -> Payload | None:
        name = str(volume.get("name"))
        if name == "kube-api-access" and "kube-api-access" not in {
            str(v.get("name")) for v in (self.pod.get("spec") or {}).get("volumes") or []
        }:
            return self._service_account_payload()
        payload = volume_payload(self.cluster, self.pod, volume, tokens=False)
        if payload is None:
            return None
        # A token is issued once per volume and kept: an update of the other sources keeps it.
        for source in (volume.get("projected") or {}).get("sources") or []:
            if "serviceAccountToken" in source:
                path = str((source["serviceAccountToken"] or {}).get("path") or "token")
                key = f"{name}/{path}"
                if key not in self._tokens:
                    self._tokens[key] = self._issue(source["serviceAccountToken"] or {})
                payload[path] = (self._tokens[key], payload[path][1])
        return payload

    def _issue(self, source: Mapping[str, Any]) -> bytes:
        token = _Context(self.cluster, self.pod).token(source)
        seconds = source.get("expirationSeconds")
        lifetime = float(seconds) if isinstance(seconds, int) and seconds >= 600 else _TOKEN_SECONDS
        if self._token_seconds is None or lifetime < self._token_seconds:
            self._token_seconds = lifetime
        return token

    def rotate_tokens(self) -> None:
        """Issue new service account tokens and write them, as the kubelet does once 80% of
        a token's lifetime has passed (scheduled by :meth:`write` on a running loop)."""
        self._rotation = None
        self._tokens.clear()
        self._token_seconds = None
        try:
            self.write(only=_has_token)
        except VolumeError as error:
            log.warning("%s", error)

    def close(self) -> None:
        """The pod ended: no more token rotation."""
        if self._rotation is not None:
            self._rotation.cancel()
            self._rotation = None

    def _schedule_rotation(self) -> None:
        if self._rotation is not None or self._token_seconds is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._rotation = loop.call_later(0.8 * self._token_seconds, self.rotate_tokens)

    def _service_account_payload(self) -> Payload:
        context = _Context(self.cluster, self.pod)
        key = "kube-api-access/token"
        if key not in self._tokens:
            self._tokens[key] = self._issue({"expirationSeconds": _TOKEN_SECONDS})
        root_ca = context.get(_CONFIGMAPS, "kube-root-ca.crt")
        ca = ((root_ca or {}).get("data") or {}).get("ca.crt")
        ca_pem = str(ca).encode() if ca else _cluster_ca.get(self.cluster, b"")
        return {
            "token": (self._tokens[key], _DEFAULT_MODE),
            "ca.crt": (ca_pem, _DEFAULT_MODE),
            "namespace": (context.namespace.encode(), _DEFAULT_MODE),
        }

    def write(self, only: Callable[[Mapping[str, Any]], bool] | None = None) -> None:
        """Write (or rewrite) every projected volume; :class:`VolumeError` for a missing one."""
        for name, volume in self.volumes().items():
            if only is not None and not only(volume):
                continue
            self.uses |= _uses_of(volume)
            payload = self._payload(volume)
            if payload is not None:
                write_atomically(self.folder / name, payload)
            elif "emptyDir" in volume:
                (self.folder / name).mkdir(parents=True, exist_ok=True)
        self._schedule_rotation()

    def refresh(self, resource: str, name: str) -> None:
        """Rewrite the volumes that project ``resource``/``name`` (it changed)."""
        if (resource, name) not in self.uses:
            return
        try:
            self.write(only=lambda volume: (resource, name) in _uses_of(volume))
        except VolumeError as error:
            # The kubelet keeps the last good content and reports the failure as an event.
            log.warning("%s", error)

    def mount_arguments(self, container: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
        """bwrap arguments that mount ``container``'s ``volumeMounts`` (and kube-api-access)."""
        volumes = self.volumes()
        mounts = list(container.get("volumeMounts") or [])
        if (
            "kube-api-access" in volumes
            and not any(m.get("name") == "kube-api-access" for m in mounts)
            and _mounts_service_account(self.pod.get("spec") or {})
        ):
            mounts.append(
                {"name": "kube-api-access", "mountPath": SERVICE_ACCOUNT_FOLDER, "readOnly": True}
            )
        # The image's own folders first: the pod's volumes cover them, as they cover an image's.
        arguments = image_mount_arguments(container, self.folder / str(container["name"]))
        for mount in mounts:
            volume = volumes.get(str(mount.get("name")))
            target = str(mount.get("mountPath") or "")
            if volume is None or not target.startswith("/") or ".." in target.split("/"):
                continue
            read_only = bool(mount.get("readOnly"))
            if "hostPath" in volume:
                host = volume["hostPath"] or {}
                source = Path(str(host.get("path") or "/nonexistent"))
                if host.get("type") == "DirectoryOrCreate":
                    source.mkdir(parents=True, exist_ok=True)
            elif "emptyDir" in volume or volume_payload_kind(volume):
                source = self.folder / str(volume["name"])
                source.mkdir(parents=True, exist_ok=True)
                # ConfigMap, Secret, downward-API and projected volumes are read-only.
                read_only = read_only or volume_payload_kind(volume)
            else:
                continue
            subpath = _sub_path(mount, env)
            if subpath is None:
                continue
            if subpath:
                # Resolved now, as the kubelet does: a subPath sees no later update.
                resolved = (source / subpath).resolve()
                if resolved != source.resolve() and source.resolve() not in resolved.parents:
                    continue  # a symlink in the volume leads out of it
                if not resolved.exists():
                    resolved.mkdir(parents=True, exist_ok=True)
                source = resolved
            arguments += ["--ro-bind" if read_only else "--bind", str(source), target]
        return arguments


def _has_token(volume: Mapping[str, Any]) -> bool:
    """Whether ``volume`` holds a service account token (kube-api-access is projected too)."""
    sources = (volume.get("projected") or {}).get("sources") or []
    return any("serviceAccountToken" in source for source in sources)


def _labels_and_annotations(pod: Mapping[str, Any]) -> tuple[Any, Any]:
    metadata = pod.get("metadata") or {}
    return dict(metadata.get("labels") or {}), dict(metadata.get("annotations") or {})


def _has_downward_api(volume: Mapping[str, Any]) -> bool:
    """Whether ``volume`` holds downward-API files (of its own or projected)."""
    sources = (volume.get("projected") or {}).get("sources") or []
    return "downwardAPI" in volume or any("downwardAPI" in source for source in sources)


def _uses_of(volume: Mapping[str, Any]) -> set[tuple[str, str]]:
    """The ConfigMaps and Secrets whose keys ``volume`` projects."""
    uses: set[tuple[str, str]] = set()
    for source in [volume, *((volume.get("projected") or {}).get("sources") or [])]:
        if "configMap" in source:
            uses.add(("configmaps", str((source["configMap"] or {}).get("name", ""))))
        if "secret" in source:
            secret = source["secret"] or {}
            uses.add(("secrets", str(secret.get("secretName") or secret.get("name", ""))))
    return uses


def volume_payload_kind(volume: Mapping[str, Any]) -> bool:
    """Whether the volume's files are projected (ConfigMap, Secret, downward API, projected)."""
    return any(kind in volume for kind in ("configMap", "secret", "downwardAPI", "projected"))


def _sub_path(mount: Mapping[str, Any], env: Mapping[str, str]) -> str | None:
    """The mount's ``subPath`` (``subPathExpr`` expanded with the container's env); None if
    it would leave the volume."""
    subpath = str(mount.get("subPath") or "")
    expression = mount.get("subPathExpr")
    if expression:
        subpath = str(expression)
        for name, value in env.items():
            subpath = subpath.replace(f"$({name})", value)
    parts = subpath.split("/")
    if subpath.startswith("/") or ".." in parts:
        return None
    return subpath


# -- every pod's volumes ---------------------------------------------------------------------

_registry: weakref.WeakKeyDictionary[object, dict[str, PodVolumes]] = weakref.WeakKeyDictionary()


def pod_volumes(cluster: Any, pod: Mapping[str, Any], folder: Path) -> PodVolumes:
    """The :class:`PodVolumes` of ``pod`` (written at first need), kept until the pod ends.

    The first call for a cluster adds watchers of its ConfigMaps and Secrets: a change
    rewrites the volumes that project it before the API call that made it answers.
    """
    pods = _registry.get(cluster)
    if pods is None:
        pods = {}
        _registry[cluster] = pods
        from ._state import Watcher

        for resource in ("configmaps", "secrets"):

            def changed(obj: dict[str, Any], resource: str = resource) -> bool:
                metadata = obj.get("metadata") or {}
                namespace, name = str(metadata.get("namespace", "")), str(metadata.get("name"))
                for key, volumes in list(pods.items()):
                    if volumes.pod["metadata"]["namespace"] == namespace:
                        started = time.monotonic()
                        volumes.refresh(resource, name)
                        log.debug(
                            "volumes of %s refreshed in %.3fs", key, time.monotonic() - started
                        )
                return False

            cluster.watchers.add(Watcher(namespace=None, matches=changed, resource=resource))

        def pod_changed(obj: dict[str, Any]) -> bool:
            # A pod's labels and annotations reach its downward-API files, as the kubelet
            # writes them again on a change.
            volumes = pods.get(str((obj.get("metadata") or {}).get("uid", "")))
            if volumes is not None and "deletionTimestamp" not in obj["metadata"]:
                volumes.pod = obj
                # The same pod object may have been changed in place: compare with what was
                # written, not with the object.
                now = _labels_and_annotations(obj)
                if now == volumes.written_labels:  # a status change: nothing to write
                    return False
                volumes.written_labels = now
                try:
                    volumes.write(only=_has_downward_api)
                except VolumeError as error:
                    log.warning("%s", error)
            return False

        cluster.watchers.add(Watcher(namespace=None, matches=pod_changed))
    uid = str(pod["metadata"].get("uid", ""))
    volumes = pods.get(uid)
    if volumes is None:
        volumes = PodVolumes(cluster, pod, folder)
        volumes.write()
        pods[uid] = volumes
    return volumes


def forget_pod(cluster: Any, uid: str) -> None:
    """Stop refreshing the volumes of a pod that ended."""
    pods = _registry.get(cluster)
    volumes = pods.pop(uid, None) if pods is not None else None
    if volumes is not None:
        volumes.close()


def mount_arguments(
    cluster: Any,
    pod: Mapping[str, Any],
    folder: Path,
    container: Mapping[str, Any],
    env: Mapping[str, str],
) -> list[str]:
    """bwrap arguments mounting ``container``'s volumes (written first if need be)."""
    return pod_volumes(cluster, pod, folder).mount_arguments(container, env)
