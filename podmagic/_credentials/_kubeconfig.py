"""kubeconfig files as kubectl reads them: the one job here is going from files to
:class:`ClusterCredentials` for one context.

Finding the files (``--kubeconfig``, else the ``KUBECONFIG`` list, else ``~/.kube/config``),
reading and checking them with one-line errors, merging them and resolving the context, then
choosing how the context authenticates. Merged here rather than by the package: the first
definition of a name wins in both, but kubectl takes the *first* ``current-context`` and the
package's merger the last one. ``tokenFile`` and ``exec`` are left out of what the official
loader sees (it reads a token file once and runs a plugin while loading).
"""

from __future__ import annotations

import base64
import binascii
import copy
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import yaml

from podmagic._errors import ConfigError

from ._cluster import ClusterCredentials
from ._exec_plugin import DEFAULT_PLUGIN_TIMEOUT, ExecAuth, exec_cluster_info
from ._official_loader import SUPPORTED_AUTH_PROVIDERS, LoadedContext, ProviderAuth
from ._redact import Redactor, describe_loader_error, one_line
from ._refresh import AuthSource, FileTokenAuth, StaticAuth
from ._tls import TlsState, build_ssl_context

__all__ = [
    "DEFAULT_KUBECONFIG",
    "defines_context",
    "kubeconfig_candidates",
    "load_from_kubeconfig",
    "read_kubeconfig",
]


#: Where kubectl looks when neither ``--kubeconfig`` nor ``KUBECONFIG`` is given.
DEFAULT_KUBECONFIG = os.path.join("~", ".kube", "config")


# Values under these user-entry keys are paths or names, not secrets; everything else in a user
# entry is treated as secret when scrubbing text that came from elsewhere.
_NON_SECRET_USER_KEYS = frozenset(
    {
        "name",
        "tokenFile",
        "client-certificate",
        "client-key",
        "command",
        "apiVersion",
        "interactiveMode",
        "installHint",
        "username",
        "provideClusterInfo",
    }
)


def kubeconfig_candidates(
    kubeconfig: str | os.PathLike[str] | None,
) -> tuple[list[str], str]:
    """The files kubectl would read, and how a message names where it looked.

    ``kubeconfig`` (``--kubeconfig``) must exist; the ``KUBECONFIG`` list and the default
    location may name files that do not."""
    if kubeconfig is not None:
        path = os.path.expanduser(os.fspath(kubeconfig))
        if not os.path.exists(path):
            raise ConfigError(
                f"kubeconfig {path} does not exist",
                hint="check the --kubeconfig path",
            )
        return [path], path
    env_value = os.environ.get("KUBECONFIG", "")
    if not env_value:
        default = os.path.expanduser(DEFAULT_KUBECONFIG)
        return [default], default
    candidates: list[str] = []
    for item in env_value.split(os.pathsep):
        item = os.path.expanduser(item) if item else ""
        if item and item not in candidates:
            candidates.append(item)
    return candidates, f"{', '.join(candidates) or '(nothing)'} from KUBECONFIG"


def defines_context(documents: list[tuple[str, dict[str, Any]]], name: str) -> bool:
    """Whether any of the files defines a context called ``name``."""
    return any(
        entry.get("name") == name for _, doc in documents for entry in (doc.get("contexts") or [])
    )


def read_kubeconfig(path: str) -> dict[str, Any] | None:
    """Parse and sanity-check one kubeconfig file; ``None`` when it is empty."""
    try:
        with open(path, encoding="utf-8") as handle:
            document = yaml.safe_load(handle)
    except yaml.YAMLError as exc:
        # str(exc) quotes the offending line, which may hold a secret: use the parts only.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise ConfigError(
            f"kubeconfig {path} is not valid YAML{where} ({one_line(str(problem), 120)})",
            hint="fix the file or pass another --kubeconfig",
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(
            f"kubeconfig {path} is not UTF-8 text",
            hint="fix the file or pass another --kubeconfig",
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read kubeconfig {path} ({exc.strerror or type(exc).__name__})",
            hint="check its permissions or pass another --kubeconfig",
        ) from None
    if document is None:
        return None
    if not isinstance(document, dict):
        raise ConfigError(
            f"kubeconfig {path} is not a kubeconfig (expected a mapping with clusters, "
            "contexts and users)",
            hint="fix the file or pass another --kubeconfig",
        )
    for section, inner in (("clusters", "cluster"), ("contexts", "context"), ("users", "user")):
        entries = document.get(section)
        if entries is None:
            continue
        if not isinstance(entries, list):
            raise ConfigError(
                f"kubeconfig {path}: {section} must be a list",
                hint="fix the file",
            )
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise ConfigError(
                    f"kubeconfig {path}: every entry in {section} needs a name",
                    hint="fix the file",
                )
            if not isinstance(entry.get(inner) or {}, dict):
                raise ConfigError(
                    f'kubeconfig {path}: {section} entry "{entry["name"]}" must have a '
                    f"{inner} mapping",
                    hint="fix the file",
                )
    return document


def _absolute(entry: dict[str, Any], base: str, *keys: str) -> None:
    """Resolve path fields against the folder of the kubeconfig that defines ``entry``."""
    for key in keys:
        if isinstance(entry.get(key), str) and entry[key]:
            entry[key] = os.path.normpath(os.path.join(base, entry[key]))


def load_from_kubeconfig(
    documents: list[tuple[str, dict[str, Any]]],
    context: str | None,
    plugin_timeout: float | None = DEFAULT_PLUGIN_TIMEOUT,
) -> ClusterCredentials:
    """Resolve ``context`` (else kubectl's current-context) in the merged ``documents`` and
    load it: checked here, then handed alone to the official loader."""
    files = tuple(p for p, _ in documents)
    where = ", ".join(files)
    merged = _merge(documents)
    context = _pick_context(merged, documents, context, where)
    ctx_value = merged["contexts"][context][1].get("context") or {}
    cluster_name = ctx_value.get("cluster")
    user_name = ctx_value.get("user") or None
    if not cluster_name or cluster_name not in merged["clusters"]:
        detail = (
            f'refers to cluster "{cluster_name}", which is not defined'
            if cluster_name
            else "names no cluster"
        )
        raise ConfigError(
            f'context "{context}" {detail} in {where}',
            hint="fix the kubeconfig or use another --context",
        )
    if user_name is not None and user_name not in merged["users"]:
        raise ConfigError(
            f'context "{context}" refers to user "{user_name}", which is not defined in {where}',
            hint="fix the kubeconfig or use another --context",
        )
    cluster_file, cluster_entry = merged["clusters"][cluster_name]
    cluster = cluster_entry.get("cluster") or {}
    user_file, user_entry = merged["users"][user_name] if user_name else (files[0], {})
    user = user_entry.get("user") or {}
    user_base = os.path.dirname(os.path.abspath(user_file))
    what_cluster = f'cluster "{cluster_name}"'
    what_user = f'user "{user_name}"'

    redact = Redactor()
    redact.add_tree(user, skip_keys=_NON_SECRET_USER_KEYS)
    redact.add_tree({k: v for k, v in cluster.items() if k.endswith("-data")})
    server, url_basic = _server(cluster, what_cluster, where, redact)
    insecure = _check_tls_fields(cluster, what_cluster, user, what_user)

    provider_name = None
    provider = user.get("auth-provider")
    if isinstance(provider, dict) and provider:
        provider_name = str(provider.get("name") or "")
        if provider_name not in SUPPORTED_AUTH_PROVIDERS:
            raise ConfigError(
                f'{what_user} uses auth-provider "{provider_name}", which is not supported '
                f"(supported: {', '.join(SUPPORTED_AUTH_PROVIDERS)})",
                hint="switch the user to an exec credential plugin (e.g. kubelogin)",
            )

    token_auth: FileTokenAuth | None = None
    if user.get("tokenFile"):
        # kubectl prefers tokenFile (re-read as it rotates) and falls back to token.
        token_auth = FileTokenAuth(
            os.path.normpath(os.path.join(user_base, str(user["tokenFile"]))),
            "token-file",
            what=what_user,
            fallback=str(user["token"]) if user.get("token") else None,
        )

    # The loader gets a dict holding this one context rather than the files: given the files
    # it would run an exec plugin at once (see ExecAuth) and pick the last current-context.
    loader_cluster = {**cluster, "server": server}
    _absolute(
        loader_cluster, os.path.dirname(os.path.abspath(cluster_file)), "certificate-authority"
    )
    loader_user = {k: copy.deepcopy(v) for k, v in user.items() if k not in ("exec", "tokenFile")}
    _absolute(loader_user, user_base, "client-certificate", "client-key")
    loader_context: dict[str, Any] = {"cluster": cluster_name}
    users = []
    if user_name is not None:
        loader_context["user"] = user_name
        users = [{"name": user_name, "user": loader_user}]
    loaded = LoadedContext(
        document={
            "current-context": context,
            "contexts": [{"name": context, "context": loader_context}],
            "clusters": [{"name": cluster_name, "cluster": loader_cluster}],
            "users": users,
        },
        context=context,
        user=user_name or "",
        source=user_file if user_name else None,
        redact=redact,
        provider_name=provider_name or "",
    )
    provider_before = copy.deepcopy(loaded.provider_config())
    exec_config = user.get("exec")
    cluster_info = None
    try:
        with loaded.load() as cfg:
            ca_file = cfg.ssl_ca_cert if urlsplit(server).scheme == "https" else None
            if isinstance(exec_config, dict) and exec_config.get("provideClusterInfo"):
                cluster_info = exec_cluster_info(server, cluster, ca_file, insecure)
            tls = build_ssl_context(
                server=server,
                verify=bool(cfg.verify_ssl),
                ca_file=ca_file,
                cert_file=cfg.cert_file,
                key_file=cfg.key_file,
                what=f'context "{context}"',
            )
            static_header = cfg.get_api_key_with_prefix("BearerToken")
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - the loaders raise many kinds of errors
        raise ConfigError(
            f'cannot load context "{context}" from {where} ({describe_loader_error(exc, redact)})',
            hint="fix the kubeconfig or use another --context",
        ) from None

    # The first that the user entry sets: auth-provider, tokenFile (else token), exec, basic
    # auth; last the user info of the server URL.
    auth: AuthSource
    if provider_name is not None:
        if not static_header:
            raise ConfigError(
                f'auth-provider "{provider_name}" of {what_user} has no usable token',
                hint="log in again with your provider's tool",
            )
        redact.add(static_header.partition(" ")[2])
        auth = ProviderAuth(loaded, static_header, provider_before)
    elif token_auth is not None:
        auth = token_auth
    elif user.get("token"):
        auth = StaticAuth(str(static_header), "token")
    elif isinstance(exec_config, dict) and exec_config:
        auth = ExecAuth(
            exec_config,
            user=user_name or "",
            base_path=user_base,
            cluster_info=cluster_info,
            redact=redact,
            timeout=plugin_timeout,
        )
    elif static_header and static_header.lower().startswith("basic "):
        auth = StaticAuth(static_header, "basic")
    elif url_basic is not None:
        auth = StaticAuth(url_basic, "basic")
    else:
        auth = AuthSource()

    return ClusterCredentials(
        context=context,
        server=server,
        namespace=str(ctx_value.get("namespace") or "default"),
        user=user_name,
        # Read from the entry, so as not to depend on which of the package's releases copy
        # them into the Configuration.
        tls_server_name=cluster.get("tls-server-name") or None,
        proxy_url=cluster.get("proxy-url") or None,
        kubeconfig_files=files,
        _auth=auth,
        _tls=TlsState(tls),
    )


_Merged = dict[str, dict[str, tuple[str, dict[str, Any]]]]


def _merge(documents: list[tuple[str, dict[str, Any]]]) -> _Merged:
    """Section -> name -> (defining file, entry); the first definition of a name wins."""
    merged: _Merged = {"clusters": {}, "contexts": {}, "users": {}}
    for path, doc in documents:
        for section, entries in merged.items():
            for item in doc.get(section) or []:
                entries.setdefault(item["name"], (path, item))
    return merged


def _pick_context(
    merged: _Merged, documents: list[tuple[str, dict[str, Any]]], context: str | None, where: str
) -> str:
    """``context`` if defined, else the first ``current-context`` among the files (kubectl's
    rule; the package's merger would take the last one)."""
    contexts = list(merged["contexts"])
    available = f"(contexts: {', '.join(contexts)})"
    if context is not None:
        if context not in contexts:
            raise ConfigError(
                f'context "{context}" not found in {where} {available}',
                hint="use --context with one of them",
            )
        return context
    current = next(
        (doc.get("current-context") for _, doc in documents if doc.get("current-context")), None
    )
    if not current:
        raise ConfigError(
            f"no current-context is set in {where} {available}",
            hint="use --context with one of them",
        )
    if current not in contexts:
        raise ConfigError(
            f'current-context "{current}" not found in {where} {available}',
            hint="use --context with one of them",
        )
    return str(current)


def _server(
    cluster: Mapping[str, Any], what_cluster: str, where: str, redact: Redactor
) -> tuple[str, str | None]:
    """The cluster's server URL as messages may show it, and the basic-auth header its user
    info stands for (Go's HTTP client sends it when nothing else is set)."""
    server = cluster.get("server")
    if not isinstance(server, str) or not server.strip():
        raise ConfigError(
            f"{what_cluster} in {where} has no server",
            hint="fix the kubeconfig",
        )
    server = server.strip().rstrip("/")
    if "://" not in server:
        server = "https://" + server
    url_basic = None
    parts = urlsplit(server)
    if parts.username is not None or parts.password is not None:
        redact.add(parts.password)
        pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
        url_basic = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        redact.add(url_basic.partition(" ")[2])
        server = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    if urlsplit(server).scheme not in ("http", "https"):
        raise ConfigError(
            f"{what_cluster} has server {redact(server)!r}, which is not an http(s) URL",
            hint="fix the kubeconfig",
        )
    return server, url_basic


def _check_tls_fields(
    cluster: Mapping[str, Any], what_cluster: str, user: Mapping[str, Any], what_user: str
) -> bool:
    """Refuse what kubectl refuses before the loader sees it; whether TLS is not verified."""
    insecure = bool(cluster.get("insecure-skip-tls-verify"))
    if insecure and (
        cluster.get("certificate-authority") or cluster.get("certificate-authority-data")
    ):
        raise ConfigError(
            f"{what_cluster} sets both insecure-skip-tls-verify and a certificate-authority, "
            "which kubectl refuses too",
            hint="remove one of them from the kubeconfig",
        )
    for owner, what, key in (
        (cluster, what_cluster, "certificate-authority-data"),
        (user, what_user, "client-certificate-data"),
        (user, what_user, "client-key-data"),
    ):
        data = owner.get(key)
        if data:
            try:
                base64.b64decode(str(data), validate=True)
            except (binascii.Error, ValueError):
                raise ConfigError(
                    f"{key} of {what} is not valid base64",
                    hint="fix the kubeconfig",
                ) from None
    return insecure
