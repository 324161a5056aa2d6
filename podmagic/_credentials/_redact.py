"""Secret-free, one-line text for messages: the one job here is that nothing secret reaches
a person.

Text from elsewhere (a plugin's stderr, an error the official loader raised) may quote a
token, a password or key data: :class:`Redactor` remembers the loaded context's secrets and
blanks them out. The official loader's own messages embed whole kubeconfig entries (tokens
included), so :func:`describe_loader_error` keeps only the key they name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["Redactor", "blank_credentials", "describe_loader_error", "first_line", "one_line"]


def one_line(text: str, limit: int = 300) -> str:
    """``text`` with each run of whitespace as one space, cut to ``limit`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def first_line(text: str) -> str:
    """The first line of ``text`` that is not blank, as :func:`one_line`."""
    for line in text.splitlines():
        if line.strip():
            return one_line(line)
    return ""


#: What looks like a credential in text that came from elsewhere (a plugin's stderr), each
#: blanked to ``***`` whether or not it is one: a JWT; the word after ``Bearer``/``Basic``; the
#: value after a ``token``/``password``/``secret``/``api key``-like key and ``=`` or ``:``
#: (quoted or not, the key kept; an unquoted value ends at a space, ``,``, ``;`` or a closing
#: bracket); and any run of 32 or more base64/hex characters that mixes
#: letters and digits (keys, opaque tokens).
_CREDENTIAL_PATTERNS = (
    (re.compile(r"\beyJ[\w-]*\.[\w-]+\.[\w-]*"), "***"),
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[^\s\"',;)\]}>]+"), r"\1\2***"),
    (
        re.compile(
            r"(?i)([\w.-]*(?:token|passw(?:or)?d|pwd|secret|api[_-]?key|access[_-]?key|"
            r"credentials?|authorization|cookie|session)[\w.-]*[\"']?\s*[=:]\s*)"
            r"((?:bearer|basic)\s+)?(?:\"[^\"]*\"?|'[^']*'?|[^\s,;)\]}>]+)"
        ),
        r"\1\2***",
    ),
    (re.compile(r"(?=[\w+/=-]*\d)(?=[\w+/=-]*[A-Za-z])[\w+/=-]{32,}"), "***"),
)


def blank_credentials(text: str) -> str:
    """``text`` with whatever looks like a credential blanked (``_CREDENTIAL_PATTERNS``): for
    text that may quote a secret nothing here knows, such as an exec plugin's stderr."""
    for pattern, replacement in _CREDENTIAL_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class Redactor:
    """Remembers secret strings and blanks them out of text that came from elsewhere."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add(self, *secrets: str | None) -> None:
        for secret in secrets:
            if isinstance(secret, str) and len(secret.strip()) >= 4:
                self._secrets.add(secret.strip())

    def add_tree(self, value: Any, skip_keys: frozenset[str] = frozenset()) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                if key not in skip_keys:
                    self.add_tree(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                self.add_tree(item)
        elif isinstance(value, str):
            self.add(value)

    def __call__(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


def describe_loader_error(exc: BaseException, redact: Redactor) -> str:
    """A short, secret-free description of an error raised by the kubernetes loaders."""
    text = str(exc)
    # ConfigNode names embed whole kubeconfig entries (tokens included): keep only the key.
    match = re.search(r"Expected key (\S+) in", text)
    if match:
        return f"missing key {match.group(1)!r}"
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.strerror or type(exc).__name__}: {exc.filename}"
    text = text.replace("Invalid kube-config file. ", "").replace("Invalid kube-config. ", "")
    return redact(first_line(text)) or type(exc).__name__
