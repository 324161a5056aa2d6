"""A kubeconfig token that no HTTP header may carry is one ConfigError line, token unshown."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from podmagic._credentials import load_credentials
from podmagic._errors import ConfigError


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _kubeconfig(path: Path, user: dict[str, str]) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "alice", "user": user}],
                "contexts": [{"name": "dev", "context": {"cluster": "c", "user": "alice"}}],
                "current-context": "dev",
            }
        )
    )
    return path


@pytest.mark.anyio
@pytest.mark.parametrize("secret", ["SEKRIT\r\nX-Evil: 1", "SEKRIT\nmore", "SEKRIT\x1b]0;t\x07"])
@pytest.mark.parametrize("where", ["token", "tokenFile"])
async def test_token_with_control_characters_is_a_one_line_config_error_naming_the_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, secret: str, where: str
) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    if where == "token":
        user = {"token": secret}
    else:
        (tmp_path / "tok").write_text(secret + "\n")
        user = {"tokenFile": str(tmp_path / "tok")}
    creds = load_credentials(kubeconfig=_kubeconfig(tmp_path / "config", user))
    with pytest.raises(ConfigError) as caught:
        await creds.auth_headers()
    text = str(caught.value)
    assert "\n" not in text and "\r" not in text and "\x1b" not in text
    assert 'user "alice"' in text and "SEKRIT" not in text


@pytest.mark.anyio
async def test_token_with_a_tab_or_plain_text_still_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    creds = load_credentials(kubeconfig=_kubeconfig(tmp_path / "config", {"token": "abc.def-1"}))
    assert await creds.auth_headers() == {"Authorization": "Bearer abc.def-1"}
