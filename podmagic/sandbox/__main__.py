"""``python -m podmagic.sandbox serve`` (or ``podmagic-sandbox serve``): run a sandbox cluster in
the foreground.

Stops cleanly on SIGINT or SIGTERM: every pod process is killed, and the kubeconfig it wrote
is removed (so the file's existence means "a sandbox is serving here"). It never writes over,
or removes, a file it did not write (``~/.kube/config``, ``$KUBECONFIG``'s files, any other).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from . import MissingExtraError
from ._behaviour import BehaviourError
from ._kubeconfig import KubeconfigPathError
from ._state import ManifestError


def _program() -> str:
    """How the user called us: ``podmagic-sandbox`` (the console script) or ``python -m ...``."""
    called = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if called and called not in ("__main__.py", "-c", "-m"):
        return called
    return "python -m podmagic.sandbox"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_program(),
        description="A local Kubernetes API whose pods run commands as local processes.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve a sandbox cluster until interrupted")
    serve.add_argument(
        "--manifest",
        type=Path,
        action="append",
        help=(
            "Kubernetes YAML to load (default: the built-in demo cluster); repeated, one per "
            "context (--manifest staging.yaml --manifest prod.yaml serves two clusters)"
        ),
    )
    serve.add_argument(
        "--empty", action="store_true", help="start with no objects instead of the demo cluster"
    )
    serve.add_argument(
        "--kubeconfig",
        type=Path,
        required=True,
        help=(
            "where to write the kubeconfig (context podmagic-sandbox, the current one); "
            "never your own config"
        ),
    )
    serve.add_argument(
        "--contexts",
        type=int,
        metavar="N",
        help=(
            "serve N separate clusters, contexts podmagic-sandbox, podmagic-sandbox-2, … in the "
            "one kubeconfig, each loading the manifest (default: 1, or one per --manifest)"
        ),
    )
    serve.add_argument(
        "--port",
        type=int,
        default=0,
        help="port to listen on (default: a free one); the first context's, the others the next",
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    serve.add_argument(
        "--state-dir", type=Path, help="folder for the pods' files (default: a temporary one)"
    )
    serve.add_argument(
        "--insecure-http",
        action="store_true",
        help="serve plain HTTP without a token (kubectl then sends no credentials)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); the exit code."""
    args = _parser().parse_args(argv)
    try:
        # Imported here, not at the top: without the [sandbox] extra, --help still works and
        # serving ends with the one line that says what to install.
        from ._server import Sandbox
    except MissingExtraError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from ._kubeconfig import MAX_CONTEXTS

    given: list[Path] = [] if args.empty else (args.manifest or [])
    contexts: int = args.contexts if args.contexts is not None else max(len(given), 1)
    if not 1 <= contexts <= MAX_CONTEXTS:
        print(
            f"error: --contexts {contexts}: pass a number from 1 to {MAX_CONTEXTS}",
            file=sys.stderr,
        )
        return 2
    if len(given) > 1 and contexts != len(given):
        print(
            f"error: --contexts {contexts} but {len(given)} --manifest: pass one --manifest "
            "per context, or one for all",
            file=sys.stderr,
        )
        return 2
    for path in given:
        if not path.is_file():
            print(
                f"error: manifest {path} does not exist; pass a Kubernetes YAML file",
                file=sys.stderr,
            )
            return 2
    manifest: Path | list[dict[str, object]] | None = None
    if args.empty:
        manifest = []
    elif len(given) == 1:
        manifest = given[0]
    try:
        sandbox = Sandbox(
            manifest if len(given) <= 1 else None,
            manifests=given if len(given) > 1 else None,
            kubeconfig=args.kubeconfig,
            host=args.host,
            port=args.port,
            tls=not args.insecure_http,
            auth=not args.insecure_http,
            state_dir=args.state_dir,
            contexts=contexts,
        )
    except KubeconfigPathError as error:  # ~/.kube/config, $KUBECONFIG's, someone's file
        print(f"error: {error.reason}; pass another --kubeconfig path", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        sandbox.start()
    except KubeconfigPathError as error:  # a file appeared there while starting
        print(f"error: {error.reason}; pass another --kubeconfig path", file=sys.stderr)
        return 2
    except (ManifestError, BehaviourError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        ports = (
            f"{args.port}"
            if contexts == 1 or not args.port
            else (f"{args.port}-{args.port + contexts - 1}")
        )
        print(f"error: cannot listen on {args.host}:{ports}: {error.strerror}", file=sys.stderr)
        return 2
    if len(sandbox.contexts) == 1:
        pods = len(sandbox.pods())
        print(
            f"podmagic sandbox serving {sandbox.url} with {pods} pods; "
            f"kubeconfig {sandbox.kubeconfig} (context {sandbox.context}). Ctrl-C to stop.",
            flush=True,
        )
    else:
        print(
            f"podmagic sandbox serving {len(sandbox.contexts)} clusters; "
            f"kubeconfig {sandbox.kubeconfig} (current context {sandbox.context}). "
            "Ctrl-C to stop.",
            flush=True,
        )
        for context in sandbox.contexts:
            each = sandbox.in_context(context)
            print(f"  context {context}: {each.url} with {len(each.pods())} pods", flush=True)
    from ._isolation import describe_isolation

    print(describe_isolation(sandbox.isolation), flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        sandbox.stop()
    print("podmagic sandbox stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
