"""Real Floodgate tokens for dashboard tests, made in the proxy's cache folder before it starts
(the proxy reads them through its token store, as `floodgate token create` leaves them)."""

from __future__ import annotations

from pathlib import Path

from proxy.tokens import TokenStore

WHO = ("admin/alice", "developers/bob", "security/carol")


def make_tokens(cache: Path, who: tuple[str, ...] = WHO) -> dict[str, str]:
    """A token for each `group/name`, keyed by it."""
    cache.mkdir(parents=True, exist_ok=True)
    store = TokenStore.in_cache(cache)
    try:
        out = {}
        for label in who:
            group, _, name = label.partition("/")
            out[label] = store.create(group, name)
        return out
    finally:
        store.close()


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def in_url(url: str, token: str) -> str:
    """`url` with the token as its password, as a browser sends it after the login prompt."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://admin:{token}@{rest}"
