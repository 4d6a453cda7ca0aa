"""`PolicyHolder`: the policy in force, reloaded when its file changes (or on SIGHUP).

A bad edit never takes effect: the previous policy stays in force and the log says why.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import proxy
from proxy.errors import PolicyError
from proxy.metrics import POLICY_RELOADS
from proxy.policy.loader import load_policy

log = logging.getLogger(__name__)

SHIPPED = ("default", "strict", "audit")


def shipped_policy(name: str) -> Path:
    """The path of a policy shipped with Floodgate (inside the wheel, or in the source tree)."""
    here = Path(proxy.__file__).resolve().parent
    for folder in (here / "_policies", here.parent / "policies"):
        path = folder / f"{name}.yaml"
        if path.is_file():
            return path
    raise PolicyError(f"no shipped policy named {name!r} (shipped: {', '.join(SHIPPED)})")


def resolve_policy_path(value: str | Path | None) -> Path:
    """A policy file from a setting: a path, or the name of a shipped policy; None: default."""
    if value is None:
        return shipped_policy("default")
    if isinstance(value, str) and value in SHIPPED and not Path(value).exists():
        return shipped_policy(value)
    return Path(value).expanduser()


class PolicyHolder:
    """Holds the current policy; `reload_if_changed` picks up valid edits to its file."""

    def __init__(self, path: Path):
        self.path = path
        self.policy = load_policy(path)  # a bad file refuses to start: PolicyError propagates
        self._stamp = self._file_stamp()
        self.reloads = 0  # new policies that took effect since start
        self.failures = 0  # reloads refused (malformed files)
        self.error = ""  # why the last reload failed ("" when it did not)

    def _file_stamp(self) -> tuple[float, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime, st.st_size)

    def reload_if_changed(self) -> bool:
        """Reload when the file's mtime or size changed; True when a new policy took effect."""
        stamp = self._file_stamp()
        if stamp is None or stamp == self._stamp:
            return False
        self._stamp = stamp
        return self.reload()

    def reload(self) -> bool:
        """Reload now; a malformed file keeps the current policy in force (and is logged)."""
        try:
            policy = load_policy(self.path)
        except PolicyError as exc:
            self.failures += 1
            self.error = str(exc)
            POLICY_RELOADS.labels("failed").inc()
            log.error(
                "policy not reloaded, keeping %s (%s): %s",
                self.policy.name,
                self.policy.digest,
                exc,
            )
            return False
        self.error = ""
        if policy.digest == self.policy.digest:
            POLICY_RELOADS.labels("unchanged").inc()
            return False
        log.info(
            "policy %s reloaded from %s: digest %s -> %s, %d rules, %d waivers, mode %s",
            policy.name,
            self.path,
            self.policy.digest,
            policy.digest,
            len(policy.rules),
            len(policy.waivers),
            policy.mode,
        )
        self.policy = policy
        self.reloads += 1
        POLICY_RELOADS.labels("applied").inc()
        return True
