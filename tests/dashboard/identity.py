"""Real Floodgate tokens for dashboard tests, made in the proxy's cache folder before it starts
(the proxy reads them through its token store, as `floodgate token create` leaves them)."""

from __future__ import annotations

from pathlib import Path

from proxy.settings import load_settings
from proxy.storage.backends import token_store

WHO = ("admin/alice", "developers/bob", "security/carol")


def make_tokens(
    cache: Path, who: tuple[str, ...] = WHO, database_url: str | None = None
) -> dict[str, str]:
    """A token for each `group/name`, keyed by it (in the shared database with `database_url`,
    where a proxy with that setting reads them)."""
    cache.mkdir(parents=True, exist_ok=True)
    values = {"cache_dir": str(cache)}
    if database_url is not None:
        values["database_url"] = database_url
    with token_store(load_settings(values, env={})) as store:
        out = {}
        for label in who:
            group, _, name = label.partition("/")
            out[label] = store.create(group, name)
        return out


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def in_url(url: str, token: str) -> str:
    """`url` with the token as its password, as a browser sends it after the login prompt."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://admin:{token}@{rest}"
