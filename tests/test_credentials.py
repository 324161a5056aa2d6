"""Credentials loading: kubeconfig resolution, in-cluster, exec plugins, TLS — no cluster needed."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import os
import shutil
import ssl
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
import yaml
from _waiting import assert_ended_before, await_until
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from kubernetes.client import Configuration

from podmagic import Cluster
from podmagic import _credentials as credentials
from podmagic._credentials import (
    IN_CLUSTER_CONTEXT,
    ClusterCredentials,
    _kubeconfig,
    _official_loader,
    _refresh,
    load_credentials,
)
from podmagic._credentials._redact import blank_credentials
from podmagic._errors import ConfigError
from podmagic.sandbox import Sandbox


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --------------------------------------------------------------------------------------------
# A throwaway PKI
# --------------------------------------------------------------------------------------------


@dataclass
class Issued:
    cert_pem: bytes
    key_pem: bytes
    cert_path: Path
    key_path: Path


@dataclass
class Pki:
    ca: Issued
    other_ca: Issued
    server: Issued  # SAN: 127.0.0.1, localhost
    named_server: Issued  # SAN: api.internal only
    client: Issued  # CN=jane
    stranger: Issued  # a client cert from the other CA (for mismatch tests)


def _issue(
    folder: Path,
    name: str,
    cn: str,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
    *,
    ca: bool = False,
    sans: list[x509.GeneralName] | None = None,
    usage: x509.ObjectIdentifier | None = None,
) -> tuple[Issued, x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    now = dt.datetime.now(dt.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    cert = builder.sign(issuer_key, hashes.SHA256())
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    cert_path = folder / f"{name}.crt"
    key_path = folder / f"{name}.key"
    cert_path.write_bytes(cert_pem)
    key_path.write_bytes(key_pem)
    return Issued(cert_pem, key_pem, cert_path, key_path), cert, key


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    import ipaddress

    folder = tmp_path_factory.mktemp("pki")
    ca, ca_cert, ca_key = _issue(folder, "ca", "podmagic-test-ca", ca=True)
    other, other_cert, other_key = _issue(folder, "other-ca", "some-other-ca", ca=True)
    server, _, _ = _issue(
        folder,
        "server",
        "kube-apiserver",
        (ca_cert, ca_key),
        sans=[x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")],
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
    )
    named, _, _ = _issue(
        folder,
        "named",
        "kube-apiserver",
        (ca_cert, ca_key),
        sans=[x509.DNSName("api.internal")],
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
    )
    client, _, _ = _issue(
        folder, "client", "jane", (ca_cert, ca_key), usage=ExtendedKeyUsageOID.CLIENT_AUTH
    )
    stranger, _, _ = _issue(
        folder,
        "stranger",
        "mallory",
        (other_cert, other_key),
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    return Pki(ca, other, server, named, client, stranger)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --------------------------------------------------------------------------------------------
# Environment and kubeconfig helpers
# --------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No KUBECONFIG, no in-cluster variables, and a HOME without ~/.kube/config."""
    for name in (
        "KUBECONFIG",
        "KUBERNETES_SERVICE_HOST",
        "KUBERNETES_SERVICE_PORT",
        "POD_NAMESPACE",
    ):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def write_kubeconfig(
    path: Path,
    *,
    clusters: dict[str, dict[str, Any]],
    users: dict[str, dict[str, Any]] | None = None,
    contexts: dict[str, dict[str, Any]],
    current: str | None = None,
) -> Path:
    document: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": n, "cluster": c} for n, c in clusters.items()],
        "users": [{"name": n, "user": u} for n, u in (users or {}).items()],
        "contexts": [{"name": n, "context": c} for n, c in contexts.items()],
    }
    if current is not None:
        document["current-context"] = current
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def single(
    path: Path,
    *,
    cluster: dict[str, Any],
    user: dict[str, Any] | None = None,
    namespace: str | None = None,
    name: str = "dev",
) -> Path:
    context: dict[str, Any] = {"cluster": "c-" + name}
    if user is not None:
        context["user"] = "u-" + name
    if namespace:
        context["namespace"] = namespace
    return write_kubeconfig(
        path,
        clusters={"c-" + name: cluster},
        users={"u-" + name: user} if user is not None else {},
        contexts={name: context},
        current=name,
    )


def assert_one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text
    return text


# --------------------------------------------------------------------------------------------
# Static credentials
# --------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_token_user(tmp_path: Path, pki: Pki) -> None:
    before = Configuration._default
    cfg = single(
        tmp_path / "config",
        cluster={
            "server": "https://127.0.0.1:6443/",
            "certificate-authority": str(pki.ca.cert_path),
        },
        user={"token": "tok-SECRET-1234"},
        namespace="team-a",
    )
    creds = load_credentials(kubeconfig=cfg)
    assert (creds.context, creds.server, creds.namespace, creds.user) == (
        "dev",
        "https://127.0.0.1:6443",
        "team-a",
        "u-dev",
    )
    assert creds.kubeconfig_files == (str(cfg),)
    assert creds.auth_method == "token"
    assert await creds.auth_headers() == {"Authorization": "Bearer tok-SECRET-1234"}
    ctx = creds.ssl_context()
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert creds.ssl_context() is ctx  # built once
    assert not creds.has_client_certificate
    creds.invalidate_token()  # no-op for a static token
    assert await creds.auth_headers() == {"Authorization": "Bearer tok-SECRET-1234"}
    assert Configuration._default is before  # the global default is never touched
    assert "tok-SECRET" not in repr(creds)


def test_copy_shares_and_pickle_refuses(tmp_path: Path) -> None:
    import copy
    import pickle

    cfg = single(tmp_path / "config", cluster={"server": "https://x"}, user={"token": "t-SECRET"})
    creds = load_credentials(kubeconfig=cfg)
    assert copy.copy(creds) is creds
    assert copy.deepcopy({"creds": creds})["creds"] is creds
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(creds)


def test_direct_construction(tmp_path: Path) -> None:
    creds = ClusterCredentials(context="manual", server="https://u:pw-SECRET@k8s.example:8443")
    assert "pw-SECRET" not in repr(creds)
    assert "k8s.example:8443" in repr(creds)
    ctx = creds.ssl_context()  # system trust store, built on first use
    assert isinstance(ctx, ssl.SSLContext) and ctx.verify_mode == ssl.CERT_REQUIRED
    assert creds.ssl_context() is ctx
    assert (
        ClusterCredentials(context="plain", server="http://127.0.0.1:8080").ssl_context() is False
    )


def test_namespace_defaults_to_default(tmp_path: Path) -> None:
    cfg = single(tmp_path / "config", cluster={"server": "https://k8s.example:443"})
    creds = load_credentials(kubeconfig=cfg)
    assert creds.namespace == "default"
    assert creds.user is None
    assert creds.auth_method == "none"


def _inline_tls_kubeconfig(path: Path, pki: Pki) -> Path:
    """A kubeconfig with the CA, client certificate and key as -data fields."""
    cluster = {
        "server": "https://127.0.0.1:6443",
        "certificate-authority-data": b64(pki.ca.cert_pem),
    }
    user = {
        "client-certificate-data": b64(pki.client.cert_pem),
        "client-key-data": b64(pki.client.key_pem),
    }
    return single(path, cluster=cluster, user=user)


@pytest.mark.anyio
@pytest.mark.parametrize("form", ["files", "data"])
async def test_client_certificate(
    tmp_path: Path, pki: Pki, form: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    if form == "files":
        # relative paths resolve against the kubeconfig's folder, not the working folder
        folder = tmp_path / "kube"
        folder.mkdir()
        for issued, name in ((pki.ca, "ca.crt"), (pki.client, "client.crt")):
            (folder / name).write_bytes(issued.cert_pem)
        (folder / "client.key").write_bytes(pki.client.key_pem)
        cluster = {"server": "https://127.0.0.1:6443", "certificate-authority": "ca.crt"}
        user = {"client-certificate": "client.crt", "client-key": "client.key"}
        cfg = single(folder / "config", cluster=cluster, user=user)
    else:
        cfg = _inline_tls_kubeconfig(tmp_path / "config", pki)
    creds = load_credentials(kubeconfig=cfg)
    assert creds.auth_method == "client-certificate"
    assert creds.has_client_certificate
    assert await creds.auth_headers() == {}
    assert isinstance(creds.ssl_context(), ssl.SSLContext)
    # -data fields were written to a private folder for OpenSSL and removed again
    assert list(scratch.iterdir()) == []
    text = repr(creds)
    for secret in (b64(pki.client.key_pem), pki.client.key_pem.decode(), b64(pki.ca.cert_pem)):
        assert secret not in text


def test_kubeconfig_data_files_are_private_while_loaded_and_removed_after(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    seen: dict[str, tuple[Path, int, int]] = {}
    build = _kubeconfig.build_ssl_context

    def spy(**kwargs: Any) -> Any:
        # The official loader has written the -data fields to files for OpenSSL by now.
        for key in ("ca_file", "cert_file", "key_file"):
            path = Path(kwargs[key])
            private_folder = path.parent.parent  # mkdtemp's folder > the loader's "data" > file
            seen[key] = (
                path,
                stat.S_IMODE(path.stat().st_mode),
                stat.S_IMODE(private_folder.stat().st_mode),
            )
        return build(**kwargs)

    monkeypatch.setattr(_kubeconfig, "build_ssl_context", spy)
    cfg = _inline_tls_kubeconfig(tmp_path / "config", pki)
    assert load_credentials(kubeconfig=cfg).has_client_certificate
    assert set(seen) == {"ca_file", "cert_file", "key_file"}
    for path, mode, folder_mode in seen.values():
        assert scratch in path.parents
        assert mode & 0o077 == 0 and folder_mode == 0o700  # nobody else may read them
        assert not path.exists()  # and they are gone once the SSL context is built
    assert list(scratch.iterdir()) == []


def test_credentials_use_only_the_public_kubernetes_config_api() -> None:
    """Loading goes through kubernetes.config's public functions, not the loader's internals
    (KubeConfigLoader and its underscore methods, ConfigNode, KubeConfigMerger, ExecProvider)."""
    import ast
    import inspect

    def dotted(node: ast.expr) -> str | None:
        if isinstance(node, ast.Name):
            return node.id
        if isinstance(node, ast.Attribute):
            base = dotted(node.value)
            return f"{base}.{node.attr}" if base else None
        return None

    used: set[str] = set()
    package = Path(inspect.getfile(credentials)).parent
    sources = sorted(package.glob("*.py"))
    assert {p.name for p in sources} >= {"__init__.py", "_kubeconfig.py", "_official_loader.py"}
    for source in sources:
        tree = ast.parse(source.read_text(encoding="utf-8"))
        modules = {"kubernetes": "kubernetes"}  # local name -> module
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kubernetes"):
                for name in node.names:
                    used.add(f"{node.module}.{name.name}")
                    modules[name.asname or name.name] = f"{node.module}.{name.name}"
        for node in ast.walk(tree):
            name = dotted(node) if isinstance(node, ast.Attribute) else None
            root, _, rest = (name or "").partition(".")
            if root in modules:
                used.add(f"{modules[root]}.{rest}")
    assert "kubernetes.config.load_kube_config_from_dict" in used
    internals = {"kube_config", "exec_provider", "KubeConfigLoader", "ConfigNode", "ExecProvider"}
    offending = [
        name
        for name in used
        if any(part.startswith("_") or part in internals for part in name.split("."))
    ]
    assert offending == []


@pytest.mark.anyio
async def test_basic_auth(tmp_path: Path) -> None:
    cfg = single(
        tmp_path / "config",
        cluster={"server": "https://k8s.example"},
        user={"username": "admin", "password": "pw-SECRET-99"},
    )
    creds = load_credentials(kubeconfig=cfg)
    assert creds.auth_method == "basic"
    expected = "Basic " + base64.b64encode(b"admin:pw-SECRET-99").decode()
    assert await creds.auth_headers() == {"Authorization": expected}
    assert "pw-SECRET" not in repr(creds)
    assert expected not in repr(creds)


def test_insecure_skip_tls_verify(tmp_path: Path, pki: Pki) -> None:
    cfg = single(
        tmp_path / "a", cluster={"server": "https://k8s.example", "insecure-skip-tls-verify": True}
    )
    creds = load_credentials(kubeconfig=cfg)
    assert creds.ssl_context() is False
    assert "insecure" in repr(creds)

    # a client certificate is still presented without verification (kubectl does the same)
    cfg = single(
        tmp_path / "b",
        cluster={"server": "https://k8s.example", "insecure-skip-tls-verify": True},
        user={
            "client-certificate-data": b64(pki.client.cert_pem),
            "client-key-data": b64(pki.client.key_pem),
        },
    )
    ctx = load_credentials(kubeconfig=cfg).ssl_context()
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_NONE and not ctx.check_hostname

    # both insecure and a CA: kubectl refuses this combination
    cfg = single(
        tmp_path / "c",
        cluster={
            "server": "https://k8s.example",
            "insecure-skip-tls-verify": True,
            "certificate-authority-data": b64(pki.ca.cert_pem),
        },
    )
    with pytest.raises(ConfigError, match="insecure-skip-tls-verify and a certificate-authority"):
        load_credentials(kubeconfig=cfg)


def test_plain_http_server(tmp_path: Path) -> None:
    cfg = single(tmp_path / "config", cluster={"server": "http://127.0.0.1:8080"})
    creds = load_credentials(kubeconfig=cfg)
    assert creds.server == "http://127.0.0.1:8080"
    assert creds.ssl_context() is False


def test_bad_tls_material(tmp_path: Path, pki: Pki) -> None:
    bad_ca = single(
        tmp_path / "a",
        cluster={"server": "https://x", "certificate-authority-data": b64(b"not a cert")},
    )
    with pytest.raises(ConfigError, match="not a valid PEM certificate") as info:
        load_credentials(kubeconfig=bad_ca)
    assert_one_line(info.value)

    not_base64 = single(
        tmp_path / "b",
        cluster={"server": "https://x"},
        user={"client-certificate-data": "@@@@", "client-key-data": "@@@@"},
    )
    with pytest.raises(ConfigError, match="client-certificate-data of user .* not valid base64"):
        load_credentials(kubeconfig=not_base64)

    mismatch = single(
        tmp_path / "c",
        cluster={"server": "https://x"},
        user={
            "client-certificate-data": b64(pki.client.cert_pem),
            "client-key-data": b64(pki.stranger.key_pem),
        },
    )
    with pytest.raises(ConfigError, match="do not belong together") as info:
        load_credentials(kubeconfig=mismatch)
    assert b64(pki.stranger.key_pem) not in str(info.value)

    key = serialization.load_pem_private_key(pki.client.key_pem, None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    locked = single(
        tmp_path / "d",
        cluster={"server": "https://x"},
        user={
            "client-certificate-data": b64(pki.client.cert_pem),
            "client-key-data": b64(encrypted),
        },
    )
    with pytest.raises(ConfigError, match="encrypted"):
        load_credentials(kubeconfig=locked)

    missing = single(
        tmp_path / "e", cluster={"server": "https://x", "certificate-authority": "nowhere/ca.crt"}
    )
    with pytest.raises(ConfigError, match="nowhere/ca.crt"):
        load_credentials(kubeconfig=missing)


# --------------------------------------------------------------------------------------------
# Resolution: KUBECONFIG, ~/.kube/config, contexts
# --------------------------------------------------------------------------------------------


def test_kubeconfig_env_merges_files(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = write_kubeconfig(
        tmp_path / "one" / "config",
        clusters={"shared": {"server": "https://first.example"}},
        users={"shared-user": {"token": "first-token"}},
        contexts={
            "a": {"cluster": "shared", "user": "shared-user", "namespace": "ns-a"},
            "both": {"cluster": "shared", "user": "shared-user"},
        },
        current="a",
    )
    second_dir = tmp_path / "two"
    second_dir.mkdir()
    (second_dir / "ca.crt").write_bytes(pki.ca.cert_pem)
    second = write_kubeconfig(
        second_dir / "config",
        clusters={
            "shared": {"server": "https://second.example"},
            "b-cluster": {"server": "https://b.example", "certificate-authority": "ca.crt"},
        },
        users={"b-user": {"token": "b-token"}},
        contexts={
            "b": {"cluster": "b-cluster", "user": "b-user", "namespace": "ns-b"},
            "both": {"cluster": "b-cluster", "user": "b-user"},
        },
        current="b",
    )
    missing = tmp_path / "missing" / "config"
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(first), str(missing), str(second)]))

    creds = load_credentials()
    # the first file that sets current-context wins, as with kubectl
    assert (creds.context, creds.server, creds.namespace) == ("a", "https://first.example", "ns-a")
    assert creds.kubeconfig_files == (str(first), str(second))

    creds = load_credentials(context="b")
    assert (creds.server, creds.namespace, creds.user) == ("https://b.example", "ns-b", "b-user")
    # the relative CA path was resolved against the second file's folder
    assert isinstance(creds.ssl_context(), ssl.SSLContext)

    # a name defined in both files: the first definition wins
    assert load_credentials(context="both").server == "https://first.example"

    # an explicit kubeconfig beats KUBECONFIG
    assert load_credentials(kubeconfig=second).context == "b"


def test_user_certificate_paths_resolve_against_the_file_that_defines_the_user(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    # kubectl resolves each file's relative paths against that file's folder before merging;
    # the package's loader takes the cluster's folder for the user's certificate and key too.
    users_dir = tmp_path / "users"
    users_dir.mkdir()
    (users_dir / "jane.crt").write_bytes(pki.client.cert_pem)
    (users_dir / "jane.key").write_bytes(pki.client.key_pem)
    users = write_kubeconfig(
        users_dir / "config",
        clusters={},
        users={"jane": {"client-certificate": "jane.crt", "client-key": "jane.key"}},
        contexts={},
    )
    clusters_dir = tmp_path / "clusters"
    clusters_dir.mkdir()
    (clusters_dir / "ca.crt").write_bytes(pki.ca.cert_pem)
    clusters = write_kubeconfig(
        clusters_dir / "config",
        clusters={"c": {"server": "https://127.0.0.1:6443", "certificate-authority": "ca.crt"}},
        contexts={"dev": {"cluster": "c", "user": "jane"}},
        current="dev",
    )
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(users), str(clusters)]))
    creds = load_credentials()
    assert creds.user == "jane" and creds.auth_method == "client-certificate"


def test_default_location_is_home_kube_config(clean_env: Path) -> None:
    single(clean_env / ".kube" / "config", cluster={"server": "https://home.example"}, name="home")
    creds = load_credentials()
    assert (creds.context, creds.server) == ("home", "https://home.example")


def test_context_is_pinned(tmp_path: Path) -> None:
    cfg = write_kubeconfig(
        tmp_path / "config",
        clusters={"c1": {"server": "https://one.example"}, "c2": {"server": "https://two.example"}},
        contexts={
            "one": {"cluster": "c1", "namespace": "n1"},
            "two": {"cluster": "c2", "namespace": "n2"},
        },
        current="one",
    )
    creds = load_credentials(kubeconfig=cfg)
    document = yaml.safe_load(cfg.read_text())
    document["current-context"] = "two"  # `kubectl config use-context two` elsewhere
    document["clusters"][0]["cluster"]["server"] = "https://moved.example"
    cfg.write_text(yaml.safe_dump(document))
    assert (creds.context, creds.server, creds.namespace) == ("one", "https://one.example", "n1")
    assert load_credentials(kubeconfig=cfg).context == "two"


def test_unknown_context_lists_contexts(tmp_path: Path) -> None:
    cfg = write_kubeconfig(
        tmp_path / "config",
        clusters={"c": {"server": "https://x"}},
        contexts={"a": {"cluster": "c"}, "b": {"cluster": "c"}},
        current="a",
    )
    with pytest.raises(ConfigError) as info:
        load_credentials(kubeconfig=cfg, context="prod")
    assert assert_one_line(info.value) == (
        f'context "prod" not found in {cfg} (contexts: a, b); use --context with one of them'
    )
    assert info.value.hint == "use --context with one of them"


def test_broken_context_references(tmp_path: Path) -> None:
    cfg = write_kubeconfig(
        tmp_path / "config",
        clusters={"c": {"server": "https://x"}, "no-server": {}},
        users={"u": {"token": "t0k3n-value"}},
        contexts={
            "ghost-cluster": {"cluster": "nope", "user": "u"},
            "ghost-user": {"cluster": "c", "user": "nobody"},
            "serverless": {"cluster": "no-server"},
        },
        current="nothing-here",
    )
    with pytest.raises(ConfigError, match='current-context "nothing-here" not found'):
        load_credentials(kubeconfig=cfg)
    with pytest.raises(ConfigError, match='cluster "nope", which is not defined'):
        load_credentials(kubeconfig=cfg, context="ghost-cluster")
    with pytest.raises(ConfigError, match='user "nobody", which is not defined'):
        load_credentials(kubeconfig=cfg, context="ghost-user")
    with pytest.raises(ConfigError, match="has no server"):
        load_credentials(kubeconfig=cfg, context="serverless")


def test_missing_kubeconfig_and_not_in_cluster(
    clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError) as info:
        load_credentials(service_account_dir=tmp_path / "no-sa")
    text = assert_one_line(info.value)
    assert str(clean_env / ".kube" / "config") in text
    assert "KUBERNETES_SERVICE_HOST" in text
    assert "set KUBECONFIG or pass --kubeconfig" in text

    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match=r"nope\.yaml from KUBECONFIG"):
        load_credentials(service_account_dir=tmp_path / "no-sa")

    with pytest.raises(ConfigError, match="does not exist; check the --kubeconfig path"):
        load_credentials(kubeconfig=tmp_path / "absent")


def test_invalid_yaml(tmp_path: Path) -> None:
    cfg = tmp_path / "config"
    cfg.write_text(
        "apiVersion: v1\nusers:\n- name: u\n  user:\n    token: SECRET-TOKEN-IN-YAML: x\n"
    )
    with pytest.raises(ConfigError) as info:
        load_credentials(kubeconfig=cfg)
    text = assert_one_line(info.value)
    assert f"kubeconfig {cfg} is not valid YAML at line 5" in text
    assert "SECRET-TOKEN" not in text

    cfg.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="is not a kubeconfig"):
        load_credentials(kubeconfig=cfg)

    cfg.write_text("")
    with pytest.raises(ConfigError, match="defines no contexts"):
        load_credentials(kubeconfig=cfg)

    cfg.write_text("contexts:\n- context: {cluster: c}\n")
    with pytest.raises(ConfigError, match="every entry in contexts needs a name"):
        load_credentials(kubeconfig=cfg)


def test_unreadable_kubeconfig(tmp_path: Path) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    with pytest.raises(ConfigError, match=f"cannot read kubeconfig {folder}"):
        load_credentials(kubeconfig=folder)


# --------------------------------------------------------------------------------------------
# Token files and in-cluster
# --------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_token_file_is_reread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "token").write_text("first-token\n")
    cfg = single(
        tmp_path / "config",
        cluster={"server": "https://x"},
        user={"tokenFile": "token", "token": "static-fallback"},
    )
    creds = load_credentials(kubeconfig=cfg)
    assert creds.auth_method == "token-file"
    # the file wins over the static token, as with kubectl
    assert await creds.auth_headers() == {"Authorization": "Bearer first-token"}
    (tmp_path / "token").write_text("second-token")
    assert await creds.auth_headers() == {"Authorization": "Bearer first-token"}  # cached
    creds.invalidate_token()
    assert await creds.auth_headers() == {"Authorization": "Bearer second-token"}
    monkeypatch.setattr(_refresh, "TOKEN_FILE_REREAD_SECONDS", 0.0)
    creds.invalidate_token()
    await creds.auth_headers()
    (tmp_path / "token").write_text("third-token")
    assert await creds.auth_headers() == {"Authorization": "Bearer third-token"}
    # a file that disappears later keeps the last token
    (tmp_path / "token").unlink()
    assert await creds.auth_headers() == {"Authorization": "Bearer third-token"}

    missing = single(
        tmp_path / "other", cluster={"server": "https://x"}, user={"tokenFile": "absent-token"}
    )
    with pytest.raises(ConfigError, match="cannot use the token file .*absent-token"):
        load_credentials(kubeconfig=missing)


def _service_account(folder: Path, pki: Pki, *, namespace: str | None = "kube-tools") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "token").write_text("sa-token-1")
    (folder / "ca.crt").write_bytes(pki.ca.cert_pem)
    if namespace is not None:
        (folder / "namespace").write_text(namespace + "\n")
    return folder


@pytest.mark.anyio
async def test_in_cluster(tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    sa = _service_account(tmp_path / "sa", pki)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    creds = load_credentials(service_account_dir=sa)
    assert (creds.context, creds.server, creds.namespace, creds.user) == (
        IN_CLUSTER_CONTEXT,
        "https://10.96.0.1:443",
        "kube-tools",
        None,
    )
    assert creds.auth_method == "in-cluster"
    assert await creds.auth_headers() == {"Authorization": "Bearer sa-token-1"}
    ctx = creds.ssl_context()
    assert isinstance(ctx, ssl.SSLContext) and ctx.verify_mode == ssl.CERT_REQUIRED

    # the projected token rotates: re-read after the period or after a 401
    (sa / "token").write_text("sa-token-2")
    assert await creds.auth_headers() == {"Authorization": "Bearer sa-token-1"}
    creds.invalidate_token()
    assert await creds.auth_headers() == {"Authorization": "Bearer sa-token-2"}
    monkeypatch.setattr(_refresh, "TOKEN_FILE_REREAD_SECONDS", 0.0)
    creds.invalidate_token()
    await creds.auth_headers()  # read with a zero period: stale at once
    (sa / "token").write_text("sa-token-3")
    assert await creds.auth_headers() == {"Authorization": "Bearer sa-token-3"}

    # IPv6 service address, POD_NAMESPACE, no namespace file
    sa6 = _service_account(tmp_path / "sa6", pki, namespace=None)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    creds = load_credentials(service_account_dir=sa6)
    assert (creds.server, creds.namespace) == ("https://[fd00::1]:443", "default")
    monkeypatch.setenv("POD_NAMESPACE", "from-env")
    assert load_credentials(service_account_dir=sa6).namespace == "from-env"


def test_kubeconfig_wins_over_in_cluster(
    tmp_path: Path, pki: Pki, clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sa = _service_account(tmp_path / "sa", pki)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    single(clean_env / ".kube" / "config", cluster={"server": "https://home.example"})
    assert load_credentials(service_account_dir=sa).context == "dev"
    # ...unless the in-cluster configuration is asked for by name
    assert load_credentials(service_account_dir=sa, context="in-cluster").context == "in-cluster"

    (sa / "ca.crt").unlink()
    with pytest.raises(ConfigError, match="in-cluster configuration is incomplete"):
        load_credentials(service_account_dir=sa, context="in-cluster")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    with pytest.raises(ConfigError, match="not running inside a cluster"):
        load_credentials(service_account_dir=sa, context="in-cluster")


# --------------------------------------------------------------------------------------------
# Exec credential plugins
# --------------------------------------------------------------------------------------------

PLUGIN = r"""
import datetime, json, os, pathlib, sys, time
state = pathlib.Path(os.environ["PLUGIN_STATE"])
n = int(state.read_text()) + 1 if state.exists() else 1
state.write_text(str(n))
info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
with open(os.environ["PLUGIN_LOG"], "a") as log:
    log.write(json.dumps({"info": info, "extra": os.environ.get("PLUGIN_EXTRA"),
                          "cwd": os.getcwd()}) + "\n")
mode = os.environ.get("PLUGIN_MODE", "ok")
if mode == "sleep":
    pathlib.Path(os.environ["PLUGIN_PID"]).write_text(str(os.getpid()))
    time.sleep(60)
if mode == "fail":
    print(json.dumps({"apiVersion": info["apiVersion"], "kind": "ExecCredential",
                      "status": {"token": "LEAKED-TOKEN-FROM-STDOUT"}}))
    sys.stderr.write("\nerror: refresh token expired; run `sso login`\nSECOND-LINE-SECRET\n")
    sys.exit(3)
if mode == "leaky":
    said = pathlib.Path(os.environ["PLUGIN_STDERR"]).read_text()  # a file: env values are redacted
    sys.stderr.write(said + "\nthe second line: token=SECOND-SECRET\n")
    sys.exit(5)
if mode == "garbage":
    print("Hello, this is not JSON LEAKED-TOKEN-FROM-STDOUT")
    sys.exit(0)
time.sleep(float(os.environ.get("PLUGIN_DELAY", "0")))
ttl = float(os.environ.get("PLUGIN_TTL", "3600"))
expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=ttl)
print(json.dumps({
    "apiVersion": info["apiVersion"],
    "kind": "ExecCredential",
    "status": {"token": f"{os.environ['PLUGIN_PREFIX']}-{n}",
               "expirationTimestamp": expiry.strftime("%Y-%m-%dT%H:%M:%S.%fZ")},
}))
"""


@dataclass
class Plugin:
    folder: Path
    script: Path

    @property
    def runs(self) -> int:
        state = self.folder / "state"
        return int(state.read_text()) if state.exists() else 0

    @property
    def calls(self) -> list[dict[str, Any]]:
        log = self.folder / "log"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def exec_config(
        self, api_version: str = "client.authentication.k8s.io/v1", **env: str
    ) -> dict[str, Any]:
        variables = {
            "PLUGIN_STATE": str(self.folder / "state"),
            "PLUGIN_LOG": str(self.folder / "log"),
            "PLUGIN_PID": str(self.folder / "pid"),
            "PLUGIN_PREFIX": "exec-SECRET-token",
            **env,
        }
        return {
            "apiVersion": api_version,
            "command": sys.executable,
            "args": [str(self.script)],
            "env": [{"name": k, "value": v} for k, v in variables.items()],
            "interactiveMode": "Never",
        }

    def load(
        self,
        tmp_path: Path,
        exec_config: dict[str, Any] | None = None,
        cluster: dict[str, Any] | None = None,
    ) -> ClusterCredentials:
        cfg = single(
            tmp_path / "exec-config",
            cluster=cluster or {"server": "https://127.0.0.1:6443"},
            user={"exec": exec_config or self.exec_config()},
        )
        return load_credentials(kubeconfig=cfg)


@pytest.fixture
def plugin(tmp_path: Path) -> Plugin:
    folder = tmp_path / "plugin"
    folder.mkdir()
    script = folder / "plugin.py"
    script.write_text(PLUGIN)
    return Plugin(folder, script)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "api_version", ["client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"]
)
async def test_exec_plugin_caches_and_refreshes(
    tmp_path: Path,
    plugin: Plugin,
    api_version: str,
    monkeypatch: pytest.MonkeyPatch,
    pki: Pki,
) -> None:
    exec_config = plugin.exec_config(api_version, PLUGIN_EXTRA="from-kubeconfig")
    exec_config["provideClusterInfo"] = True
    creds = plugin.load(
        tmp_path,
        exec_config,
        cluster={
            "server": "https://127.0.0.1:6443",
            "certificate-authority-data": b64(pki.ca.cert_pem),
            "extensions": [
                {"name": "client.authentication.k8s.io/exec", "extension": {"audience": "podmagic"}}
            ],
        },
    )
    assert creds.auth_method == "exec"
    assert plugin.runs == 0  # runs lazily, on first use
    assert await creds.auth_headers() == {"Authorization": "Bearer exec-SECRET-token-1"}
    assert await creds.auth_headers() == {"Authorization": "Bearer exec-SECRET-token-1"}
    assert plugin.runs == 1
    call = plugin.calls[0]
    assert call["extra"] == "from-kubeconfig"
    assert call["info"]["apiVersion"] == api_version
    assert call["info"]["kind"] == "ExecCredential"
    assert call["info"]["spec"]["interactive"] is False
    cluster = call["info"]["spec"]["cluster"]
    assert cluster["server"] == "https://127.0.0.1:6443"
    assert base64.b64decode(cluster["certificate-authority-data"]) == pki.ca.cert_pem
    assert cluster["config"] == {"audience": "podmagic"}

    # after the expirationTimestamp the plugin runs again
    real_now = _refresh.utcnow
    monkeypatch.setattr(_refresh, "utcnow", lambda: real_now() + dt.timedelta(hours=2))
    assert await creds.auth_headers() == {"Authorization": "Bearer exec-SECRET-token-2"}
    monkeypatch.setattr(_refresh, "utcnow", real_now)
    assert await creds.auth_headers() == {"Authorization": "Bearer exec-SECRET-token-2"}
    assert plugin.runs == 2

    # after a 401
    creds.invalidate_token()
    assert await creds.auth_headers() == {"Authorization": "Bearer exec-SECRET-token-3"}
    # a 401 for a token that was already replaced does not cause another refresh
    creds.invalidate_token({"Authorization": "Bearer exec-SECRET-token-2"})
    assert await creds.auth_headers() == {"Authorization": "Bearer exec-SECRET-token-3"}
    creds.invalidate_token({"Authorization": "Bearer exec-SECRET-token-3"})
    assert await creds.auth_headers() == {"Authorization": "Bearer exec-SECRET-token-4"}
    assert plugin.runs == 4
    assert "exec-SECRET" not in repr(creds)


@pytest.mark.anyio
async def test_exec_plugin_real_expiry(tmp_path: Path, plugin: Plugin) -> None:
    creds = plugin.load(tmp_path, plugin.exec_config(PLUGIN_TTL="0.6"))
    first = await creds.auth_headers()
    assert await creds.auth_headers() == first

    async def replaced() -> bool:
        return await creds.auth_headers() != first

    await await_until(replaced, what="the token was replaced once its 0.6 s had passed")
    assert plugin.runs == 2


@pytest.mark.anyio
async def test_concurrent_callers_share_one_refresh(tmp_path: Path, plugin: Plugin) -> None:
    creds = plugin.load(tmp_path, plugin.exec_config(PLUGIN_DELAY="0.3"))
    results: list[dict[str, str]] = []

    async def call() -> None:
        results.append(await creds.auth_headers())

    async with anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(call)
    assert plugin.runs == 1
    assert results == [{"Authorization": "Bearer exec-SECRET-token-1"}] * 50

    creds.invalidate_token()
    results.clear()
    async with anyio.create_task_group() as tg:
        for _ in range(200):
            tg.start_soon(call)
    assert plugin.runs == 2
    assert results == [{"Authorization": "Bearer exec-SECRET-token-2"}] * 200


@pytest.mark.anyio
async def test_event_loop_stays_responsive_during_refresh(tmp_path: Path, plugin: Plugin) -> None:
    creds = plugin.load(tmp_path, plugin.exec_config(PLUGIN_DELAY="0.5"))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.02)
            ticks += 1

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        await creds.auth_headers()
        tg.cancel_scope.cancel()
    assert ticks >= 10


@pytest.mark.anyio
async def test_exec_plugin_failure(tmp_path: Path, plugin: Plugin) -> None:
    creds = plugin.load(tmp_path, plugin.exec_config(PLUGIN_MODE="fail"))
    errors: list[ConfigError] = []

    async def call() -> None:
        try:
            await creds.auth_headers()
        except ConfigError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(call)
    assert len(errors) == 10
    assert plugin.runs == 1  # callers queued behind a failed refresh share its error
    text = assert_one_line(errors[0])
    assert 'exec credential plugin "python' in text
    assert "exit code 3: error: refresh token expired; run `sso login`" in text
    assert "SECOND-LINE" not in text
    assert "LEAKED-TOKEN" not in text
    assert all(str(e) == text for e in errors)

    # a later call tries again
    with pytest.raises(ConfigError):
        await creds.auth_headers()
    assert plugin.runs == 2

    garbage = plugin.load(tmp_path, plugin.exec_config(PLUGIN_MODE="garbage"))
    with pytest.raises(ConfigError, match="not an ExecCredential JSON") as info:
        await garbage.auth_headers()
    assert "LEAKED-TOKEN" not in str(info.value)


LEAKY_LINES = [
    ("refresh failed: token=tok-SECRET-1 rejected", "refresh failed: token=*** rejected"),
    ("sending Authorization: Bearer SECRET2abc", "sending Authorization: Bearer ***"),
    ('login with password="hunter SECRET3" failed', "login with password=*** failed"),
    (
        "id token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJTRUNSRVQ0In0.c2lnbmF0dXJl expired",
        "id token *** expired",
    ),
    ("key 0f3a9c5e7b1d2f4a6c8e0b2d4f6a8c0e1b3d5f7a unknown", "key *** unknown"),
    (
        '{"access_token": "SECRET5", "error": "expired"}',
        '{"access_token": ***, "error": "expired"}',
    ),
    ("client_secret:SECRET6; retry", "client_secret:***; retry"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("stderr", "shown"), LEAKY_LINES)
async def test_a_failing_plugins_stderr_shows_no_credential_in_the_error(
    tmp_path: Path, plugin: Plugin, stderr: str, shown: str
) -> None:
    (plugin.folder / "stderr").write_text(stderr)
    config = plugin.exec_config(PLUGIN_MODE="leaky", PLUGIN_STDERR=str(plugin.folder / "stderr"))
    creds = plugin.load(tmp_path, config)
    with pytest.raises(ConfigError) as info:
        await creds.auth_headers()
    text = assert_one_line(info.value)
    assert f"failed with exit code 5: {shown}" in text
    assert "SECRET" not in text and "c2lnbmF0dXJl" not in text and "0f3a9c5e" not in text
    # where to see the rest
    assert "only the first line of its stderr" in text and "in a terminal" in text


@pytest.mark.anyio
async def test_a_failing_plugins_long_stderr_line_is_cut_short(
    tmp_path: Path, plugin: Plugin
) -> None:
    stderr = "error: " + "word " * 200
    (plugin.folder / "stderr").write_text(stderr)
    config = plugin.exec_config(PLUGIN_MODE="leaky", PLUGIN_STDERR=str(plugin.folder / "stderr"))
    creds = plugin.load(tmp_path, config)
    with pytest.raises(ConfigError) as info:
        await creds.auth_headers()
    quoted = str(info.value).split("exit code 5: ", 1)[1].split(";", 1)[0]
    assert quoted.startswith("error: word") and quoted.endswith("…") and len(quoted) <= 200


def test_a_failing_plugins_secret_reaches_no_result_table_or_summary(
    tmp_path: Path, plugin: Plugin, sandbox: Sandbox
) -> None:
    (plugin.folder / "stderr").write_text("auth failed: token=tok-SECRET-7 (Bearer SECRET8x)")
    config = yaml.safe_load(sandbox.kubeconfig.read_text())
    good = config["current-context"]
    cluster = next(c for c in config["contexts"] if c["name"] == good)["context"]["cluster"]
    exec_config = plugin.exec_config(
        PLUGIN_MODE="leaky", PLUGIN_STDERR=str(plugin.folder / "stderr")
    )
    config["users"].append({"name": "leaky", "user": {"exec": exec_config}})
    config["contexts"].append({"name": "leaky", "context": {"cluster": cluster, "user": "leaky"}})
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    with Cluster.many([good, "leaky"], kubeconfig=kubeconfig, namespace="conf") as fleet:
        results = fleet.run("echo up", "solo")
    assert [(r.context, r.status.value) for r in results] == [(good, "ok"), ("leaky", "error")]
    error = results[1].error or ""
    assert "exit code 5: auth failed: token=*** (Bearer ***)" in error, error
    shown = [error, str(results.summary()), repr(results), results.to_dataframe().to_csv()]
    assert not [text for text in shown if "SECRET" in text]


def test_blank_credentials_keeps_ordinary_words() -> None:
    for text in (
        "error: refresh token expired; run `sso login`",
        "open https://login.example.invalid/device and enter code ABCD-1234",
        "/usr/local/bin/kubelogin-v1.28.0: exit status 1",
    ):
        assert blank_credentials(text) == text


@pytest.mark.anyio
async def test_exec_plugin_not_found_and_invalid(tmp_path: Path, plugin: Plugin) -> None:
    config = plugin.exec_config()
    config["command"] = "/nonexistent/bin/kubelogin"
    config["installHint"] = "Install kubelogin: https://example.invalid/kubelogin\nmore text"
    creds = plugin.load(tmp_path, config)
    with pytest.raises(ConfigError) as info:
        await creds.auth_headers()
    text = assert_one_line(info.value)
    assert 'exec credential plugin "kubelogin" of user "u-dev" was not found' in text
    assert "Install kubelogin: https://example.invalid/kubelogin)" in text

    config = plugin.exec_config("client.authentication.k8s.io/v1alpha1")
    with pytest.raises(ConfigError, match="v1alpha1.*not supported"):
        plugin.load(tmp_path, config)
    config = plugin.exec_config()
    del config["command"]
    with pytest.raises(ConfigError, match='exec section of user "u-dev" is invalid'):
        plugin.load(tmp_path, config)


@pytest.mark.anyio
async def test_exec_command_relative_to_kubeconfig(
    tmp_path: Path, plugin: Plugin, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "kube" / "bin"
    bin_dir.mkdir(parents=True)
    wrapper = bin_dir / "get-token"
    wrapper.write_text(f"#!{sys.executable}\n" + PLUGIN)
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    config = plugin.exec_config()
    config["command"] = "./bin/get-token"
    config["args"] = []
    cfg = single(
        tmp_path / "kube" / "config", cluster={"server": "https://x"}, user={"exec": config}
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    creds = load_credentials(kubeconfig=cfg)
    assert await creds.auth_headers() == {"Authorization": "Bearer exec-SECRET-token-1"}
    assert plugin.calls[0]["cwd"] == str(elsewhere)  # runs in the current folder, like kubectl


@pytest.mark.anyio
async def test_cancelled_refresh_stops_the_plugin(tmp_path: Path, plugin: Plugin) -> None:
    creds = plugin.load(tmp_path, plugin.exec_config(PLUGIN_MODE="sleep"))
    started = time.monotonic()
    with anyio.move_on_after(1.0):
        await creds.auth_headers()
    # The plugin sleeps 60 s: the caller got back without waiting for it.
    assert_ended_before(started, 20, "a refresh cancelled after 1 s")
    pid = int((plugin.folder / "pid").read_text())

    def stopped() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    await await_until(stopped, what="the exec plugin stopped after its caller was cancelled")


# --------------------------------------------------------------------------------------------
# Auth providers
# --------------------------------------------------------------------------------------------


def _jwt(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}.c2lnbmF0dXJl"


def _oidc_kubeconfig(path: Path, id_token: str, *, refresh: str, issuer: str) -> Path:
    config = {
        "id-token": id_token,
        "client-id": "podmagic",
        "client-secret": "oidc-CLIENT-SECRET",
        "refresh-token": refresh,
        "idp-issuer-url": issuer,
    }
    user = {"auth-provider": {"name": "oidc", "config": config}}
    return single(path, cluster={"server": "https://x"}, user=user)


@pytest.mark.anyio
async def test_oidc_auth_provider(tmp_path: Path) -> None:
    token = _jwt({"sub": "jane", "exp": int(time.time()) + 3600})
    cfg = _oidc_kubeconfig(
        tmp_path / "config",
        token,
        refresh="oidc-REFRESH-SECRET",
        issuer="https://idp.invalid",
    )
    creds = load_credentials(kubeconfig=cfg)
    assert creds.auth_method == "auth-provider:oidc"
    assert await creds.auth_headers() == {"Authorization": f"Bearer {token}"}
    text = repr(creds)
    for secret in (token, "oidc-CLIENT-SECRET", "oidc-REFRESH-SECRET"):
        assert secret not in text


def test_unsupported_auth_provider(tmp_path: Path) -> None:
    cfg = single(
        tmp_path / "config",
        cluster={"server": "https://x"},
        user={"auth-provider": {"name": "azure", "config": {"access-token": "azure-SECRET"}}},
    )
    with pytest.raises(ConfigError) as info:
        load_credentials(kubeconfig=cfg)
    text = assert_one_line(info.value)
    assert 'auth-provider "azure"' in text and "not supported" in text
    assert "azure-SECRET" not in text


def test_refreshed_auth_provider_config_is_persisted(tmp_path: Path) -> None:
    cfg = write_kubeconfig(
        tmp_path / "config",
        clusters={"c": {"server": "https://x"}},
        users={
            "u": {"auth-provider": {"name": "oidc", "config": {"id-token": "old"}}},
            "other": {"token": "keep"},
        },
        contexts={"a": {"cluster": "c", "user": "u"}, "b": {"cluster": "c", "user": "other"}},
        current="a",
    )
    cfg.chmod(0o600)
    document = yaml.safe_load(cfg.read_text())
    document["current-context"] = "b"  # changed by someone else meanwhile
    cfg.write_text(yaml.safe_dump(document))
    assert _official_loader.persist_auth_provider_config(
        str(cfg), "u", {"id-token": "new", "refresh-token": "r2"}
    )
    saved = yaml.safe_load(cfg.read_text())
    assert saved["current-context"] == "b"
    users = {u["name"]: u["user"] for u in saved["users"]}
    assert users["u"]["auth-provider"] == {
        "name": "oidc",
        "config": {"id-token": "new", "refresh-token": "r2"},
    }
    assert users["other"] == {"token": "keep"}
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600


@pytest.mark.anyio
async def test_expired_oidc_token_is_renewed_by_the_official_loader_off_the_loop_and_saved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The IdP answers on this test's event loop: a renewal run on the loop would never end.
    now = int(time.time())
    expired, also_expired, fresh = (
        _jwt({"sub": "jane", "exp": now - 60, "n": 1}),
        _jwt({"sub": "jane", "exp": now - 60, "n": 2}),
        _jwt({"sub": "jane", "exp": now + 3600, "n": 3}),
    )
    issued = [(also_expired, "refresh-2"), (fresh, "refresh-3")]
    presented: list[str] = []

    async def discovery(request: web.Request) -> web.Response:
        return web.json_response({"token_endpoint": f"{issuer}/token"})

    async def token(request: web.Request) -> web.Response:
        presented.append(str((await request.post())["refresh_token"]))
        id_token, refresh = issued.pop(0)
        return web.json_response(
            {
                "access_token": "access",
                "token_type": "Bearer",
                "expires_in": 3600,
                "id_token": id_token,
                "refresh_token": refresh,
            }
        )

    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", discovery)
    app.router.add_post("/token", token)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    issuer = f"http://127.0.0.1:{runner.addresses[0][1]}"
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # a plain-http IdP, for the test
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    cfg = _oidc_kubeconfig(tmp_path / "config", expired, refresh="refresh-1", issuer=issuer)
    cfg.chmod(0o600)

    def saved() -> dict[str, Any]:
        document = yaml.safe_load(cfg.read_text())
        return dict(document["users"][0]["user"]["auth-provider"]["config"])

    try:
        with anyio.fail_after(60):
            creds = await anyio.to_thread.run_sync(lambda: load_credentials(kubeconfig=cfg))
            # renewed while loading, and written back for kubectl (refresh tokens are single-use)
            assert (saved()["id-token"], saved()["refresh-token"]) == (also_expired, "refresh-2")
            # that token is expired too: the next use renews it again, in a worker thread
            assert await creds.auth_headers() == {"Authorization": f"Bearer {fresh}"}
            assert await creds.auth_headers() == {"Authorization": f"Bearer {fresh}"}
    finally:
        await runner.cleanup()
    assert presented == ["refresh-1", "refresh-2"]
    assert (saved()["id-token"], saved()["refresh-token"]) == (fresh, "refresh-3")
    assert saved()["client-secret"] == "oidc-CLIENT-SECRET"
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600
    assert "oidc-CLIENT-SECRET" not in repr(creds) and fresh not in repr(creds)


# --------------------------------------------------------------------------------------------
# Secrets never leak
# --------------------------------------------------------------------------------------------


def test_repr_and_messages_hide_secrets(tmp_path: Path, pki: Pki) -> None:
    secrets = [
        "tok-VERY-SECRET",
        "pw-VERY-SECRET",
        b64(pki.client.key_pem),
        b64(pki.client.cert_pem),
        b64(pki.ca.cert_pem),
    ]
    cfg = write_kubeconfig(
        tmp_path / "config",
        clusters={
            "c": {
                "server": "https://admin:pw-VERY-SECRET@k8s.example",
                "certificate-authority-data": b64(pki.ca.cert_pem),
            },
            "bad": {"server": "https://x", "certificate-authority-data": "@@@"},
        },
        users={
            "u": {
                "token": "tok-VERY-SECRET",
                "client-certificate-data": b64(pki.client.cert_pem),
                "client-key-data": b64(pki.client.key_pem),
            },
            "b": {"username": "admin", "password": "pw-VERY-SECRET"},
            "e": {
                "exec": {
                    "apiVersion": "client.authentication.k8s.io/v1",
                    "command": "x",
                    "env": [{"name": "T", "valu": "tok-VERY-SECRET"}],
                },
                "password": "pw-VERY-SECRET",
            },
        },
        contexts={
            "ok": {"cluster": "c", "user": "u"},
            "basic": {"cluster": "c", "user": "b"},
            "broken": {"cluster": "bad", "user": "u"},
            "exec": {"cluster": "c", "user": "e"},
        },
        current="ok",
    )
    creds = load_credentials(kubeconfig=cfg)
    assert creds.server == "https://k8s.example"  # URL user info is not kept in `server`
    texts = [repr(creds), repr(load_credentials(kubeconfig=cfg, context="basic"))]
    for context in ("broken", "missing", "exec"):
        with pytest.raises(ConfigError) as info:
            load_credentials(kubeconfig=cfg, context=context)
        texts.append(str(info.value))
    assert "missing key 'value'" in texts[-1]
    for text in texts:
        for secret in secrets:
            assert secret not in text, text


@pytest.mark.anyio
async def test_server_user_info_becomes_basic_auth(tmp_path: Path) -> None:
    cfg = single(
        tmp_path / "config", cluster={"server": "https://ad%40min:p%3Ass@k8s.example:6443"}
    )
    creds = load_credentials(kubeconfig=cfg)
    assert creds.server == "https://k8s.example:6443"
    assert creds.auth_method == "basic"
    expected = "Basic " + base64.b64encode(b"ad@min:p:ss").decode()
    assert await creds.auth_headers() == {"Authorization": expected}


# --------------------------------------------------------------------------------------------
# Real TLS handshakes
# --------------------------------------------------------------------------------------------


def _server_context(pki: Pki, issued: Issued) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(issued.cert_path, issued.key_path)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.load_verify_locations(cafile=pki.ca.cert_path)
    return ctx


def _peer_cn(peercert: Any) -> str:
    for rdn in (peercert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return "anonymous"


class _TlsEcho:
    """A loopback TLS server answering each connection with the client certificate's CN."""

    def __init__(self, server: asyncio.base_events.Server) -> None:
        self.server = server
        self.port = server.sockets[0].getsockname()[1]


async def _start_tls_echo(ctx: ssl.SSLContext) -> _TlsEcho:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(_peer_cn(writer.get_extra_info("peercert")).encode() + b"\n")
            await writer.drain()
        finally:
            writer.close()

    return _TlsEcho(await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx))


async def _talk(port: int, ctx: ssl.SSLContext | bool, server_hostname: str | None = None) -> str:
    """Connect as KubeApi does: the credentials' context, their tls-server-name if any."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ctx, server_hostname=server_hostname
    )
    try:
        return (await reader.readline()).decode().strip()
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ssl.SSLError, ConnectionError):
            pass


@pytest.fixture
async def tls_echo(pki: Pki) -> AsyncIterator[Callable[[Issued], Any]]:
    servers: list[asyncio.base_events.Server] = []
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()

    def quiet_rejections(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # In asyncio debug mode the server reports the handshakes the tests make fail.
        if isinstance(context.get("exception"), (ssl.SSLError, ConnectionResetError)):
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    async def start(issued: Issued) -> _TlsEcho:
        echo = await _start_tls_echo(_server_context(pki, issued))
        servers.append(echo.server)
        return echo

    loop.set_exception_handler(quiet_rejections)
    try:
        yield start
    finally:
        for server in servers:
            server.close()
            await server.wait_closed()
        loop.set_exception_handler(previous)


@pytest.mark.anyio
async def test_tls_handshake(tmp_path: Path, pki: Pki, tls_echo: Any) -> None:
    echo = await tls_echo(pki.server)
    server = f"https://127.0.0.1:{echo.port}"
    good = load_credentials(
        kubeconfig=single(
            tmp_path / "good",
            cluster={"server": server, "certificate-authority-data": b64(pki.ca.cert_pem)},
            user={
                "client-certificate": str(pki.client.cert_path),
                "client-key": str(pki.client.key_path),
            },
        )
    )
    assert await _talk(echo.port, good.ssl_context()) == "jane"

    wrong = load_credentials(
        kubeconfig=single(
            tmp_path / "wrong",
            cluster={"server": server, "certificate-authority": str(pki.other_ca.cert_path)},
        )
    )
    with pytest.raises(ssl.SSLCertVerificationError):
        await _talk(echo.port, wrong.ssl_context())


@pytest.mark.anyio
async def test_tls_server_name(tmp_path: Path, pki: Pki, tls_echo: Any) -> None:
    echo = await tls_echo(pki.named_server)  # valid for api.internal only
    cluster = {
        "server": f"https://127.0.0.1:{echo.port}",
        "certificate-authority-data": b64(pki.ca.cert_pem),
    }
    plain = load_credentials(kubeconfig=single(tmp_path / "plain", cluster=cluster))
    with pytest.raises(ssl.SSLCertVerificationError):
        await _talk(echo.port, plain.ssl_context())
    named = load_credentials(
        kubeconfig=single(
            tmp_path / "named", cluster={**cluster, "tls-server-name": "api.internal"}
        )
    )
    assert named.tls_server_name == "api.internal"
    assert await _talk(echo.port, named.ssl_context(), named.tls_server_name) == "anonymous"


@pytest.mark.anyio
async def test_ssl_context_leaves_the_server_name_to_the_connection(
    tmp_path: Path, pki: Pki, tls_echo: Any
) -> None:
    """tls-server-name reaches the handshake as each connection's server_hostname (as KubeApi
    passes it), not through the context: a connection that names the URL's host verifies
    that host, as the ssl module does for any context."""
    echo = await tls_echo(pki.named_server)  # valid for api.internal only
    named = load_credentials(
        kubeconfig=single(
            tmp_path / "named",
            cluster={
                "server": f"https://127.0.0.1:{echo.port}",
                "certificate-authority-data": b64(pki.ca.cert_pem),
                "tls-server-name": "api.internal",
            },
        )
    )
    with pytest.raises(ssl.SSLCertVerificationError):
        await _talk(echo.port, named.ssl_context(), "127.0.0.1")
    assert await _talk(echo.port, named.ssl_context(), "api.internal") == "anonymous"


@pytest.mark.anyio
async def test_aiohttp_request(tmp_path: Path, pki: Pki, plugin: Plugin) -> None:
    async def version(request: web.Request) -> web.Response:
        peercert = request.transport.get_extra_info("peercert") if request.transport else None
        return web.json_response(
            {"auth": request.headers.get("Authorization"), "cn": _peer_cn(peercert)}
        )

    app = web.Application()
    app.router.add_get("/version", version)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=_server_context(pki, pki.named_server))
    await site.start()
    try:
        port = runner.addresses[0][1]
        exec_config = plugin.exec_config()
        cfg = single(
            tmp_path / "config",
            cluster={
                "server": f"https://127.0.0.1:{port}/",
                "tls-server-name": "api.internal",
                "certificate-authority-data": b64(pki.ca.cert_pem),
            },
            user={
                "exec": exec_config,
                "client-certificate-data": b64(pki.client.cert_pem),
                "client-key-data": b64(pki.client.key_pem),
            },
        )
        creds = load_credentials(kubeconfig=cfg)
        headers = await creds.auth_headers()
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"{creds.server}/version",
                ssl=creds.ssl_context(),
                server_hostname=creds.tls_server_name,
                headers=headers,
            ) as response,
        ):
            assert response.status == 200
            body = await response.json()
        assert body == {"auth": "Bearer exec-SECRET-token-1", "cn": "jane"}
    finally:
        await runner.cleanup()


# --------------------------------------------------------------------------------------------
# Context resolution agrees with kubectl
# --------------------------------------------------------------------------------------------

_MERGE_ONE = {
    "clusters": {"shared": {"server": "https://first.example/"}},
    "users": {"u1": {"token": "t1"}},
    "contexts": {
        "both": {"cluster": "shared", "user": "u1", "namespace": "first-ns"},
        "a": {"cluster": "shared"},
    },
}
_MERGE_TWO = {
    "clusters": {
        "shared": {"server": "https://second.example"},
        "b": {"server": "https://b.example"},
    },
    "users": {"u1": {"token": "t2"}, "u2": {"token": "t3"}},
    "contexts": {
        "both": {"cluster": "b", "user": "u1", "namespace": "second-ns"},
        "b": {"cluster": "b", "user": "u2", "namespace": "bee"},
    },
    "current": "both",
}


@pytest.mark.kubectl
@pytest.mark.parametrize(
    ("order", "context"),
    [
        (["one", "missing", "two"], None),
        (["two", "one"], None),
        (["one", "two"], "b"),
        (["one", "two"], "a"),
        (["one", "two"], "both"),
        (["one"], None),  # no current-context anywhere: both refuse
        (["one", "two"], "nope"),  # unknown context: both refuse
    ],
)
def test_context_resolution_matches_kubectl(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    clean_env: Path,
    order: list[str],
    context: str | None,
) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not on PATH")
    write_kubeconfig(tmp_path / "one" / "config", **_MERGE_ONE)  # type: ignore[arg-type]
    write_kubeconfig(tmp_path / "two" / "config", **_MERGE_TWO)  # type: ignore[arg-type]
    kubeconfig = os.pathsep.join(str(tmp_path / name / "config") for name in order)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(clean_env), "KUBECONFIG": kubeconfig}
    args = [kubectl, "config", "view", "--minify", "-o", "json"]
    if context is not None:
        args += ["--context", context]
    done = subprocess.run(args, capture_output=True, env=env, timeout=60, check=False)
    monkeypatch.setenv("KUBECONFIG", kubeconfig)
    if done.returncode != 0:
        with pytest.raises(ConfigError):
            load_credentials(context=context)
        return
    view = json.loads(done.stdout)
    ctx = view["contexts"][0]["context"]
    creds = load_credentials(context=context)
    assert creds.context == view["current-context"]
    assert creds.server == view["clusters"][0]["cluster"]["server"].rstrip("/")
    assert creds.namespace == (ctx.get("namespace") or "default")
    assert creds.user == (ctx.get("user") or None)
