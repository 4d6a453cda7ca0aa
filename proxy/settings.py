"""One settings object for every command, built with one precedence.

    command-line flags  >  FLOODGATE_* environment  >  YAML config file  >  defaults

`load_settings` is the only place that reads the environment or a config file; everything else
receives a frozen `Settings`. The upstream registry is never written in code: it comes from
`--upstream` (or its env/config equivalents) or from what the local npm is configured with
(`npm config get registry`), found by `resolve_upstream`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import logging
import math
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from proxy.errors import SettingsError

log = logging.getLogger(__name__)

ENV_PREFIX = "FLOODGATE_"
NPM_CONFIG_TIMEOUT = 20.0  # seconds for `npm config get registry`
LOG_LEVELS = ("debug", "info", "warning", "error")
# The OpenSSF malicious-packages records, as OSV publishes them: <base>/npm/all.zip, plus
# <base>/npm/modified_id.csv and <base>/npm/<ID>.json for incremental updates.
DEFAULT_OSV_FEED = "https://osv-vulnerabilities.storage.googleapis.com"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "floodgate"


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of Floodgate; see `FIELD_HELP` for what each one means."""

    upstream: str | None = None
    host: str = "127.0.0.1"
    port: int = 4873
    public_url: str | None = None
    cache_dir: Path = field(default_factory=default_cache_dir)
    packument_memory_mb: int = 256
    packument_ttl: float = 300.0
    revalidate_wait: float = 1.0
    not_found_ttl: float = 30.0
    tarball_cache_mb: int = 4096
    tarball_memory_mb: int = 32
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    upstream_deadline: float = 120.0
    max_packument_mb: int = 100
    max_tarball_mb: int = 512
    allow_tarball_hosts: tuple[str, ...] = ()
    upstream_token: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    forward_auth: bool = False
    render_workers: int = 0
    log_level: str = "info"
    access_log: bool = True
    policy: str | None = None
    enforce: bool = True
    osv_feed: str | None = DEFAULT_OSV_FEED
    osv_refresh_seconds: float = 240.0  # + fetch time: enforced within 5 min
    scan_timeout: float = 10.0
    prefetch_scans: int = 1
    prefetch_pause: float = 0.5
    prefetch_packuments: int = 8
    client_timeout: float = 10.0
    anonymous: str = "auto"
    admin_groups: tuple[str, ...] = ("admin",)
    group_policies: tuple[tuple[str, str], ...] = ()
    internal_scopes: tuple[str, ...] = ()
    internal_names: tuple[str, ...] = ()
    internal_upstream: str | None = None
    internal_upstream_token: str | None = field(default=None, repr=False)
    internal_readers: tuple[tuple[str, str], ...] = ()
    internal_publishers: tuple[tuple[str, str], ...] = ()
    internal_anonymous_read: bool = False
    unpublish_hours: float = 72.0
    max_publish_mb: int = 100

    def policy_for_group(self, group: str | None) -> str | None:
        """The policy setting that applies to a group: its entry in `group_policies`, else
        the base `policy` (anonymous callers and groups not listed)."""
        if group is not None:
            for name, policy in self.group_policies:
                if name == group:
                    return policy
        return self.policy

    database_url: str | None = field(default=None, repr=False)  # may hold a password
    blob_store: str | None = None

    @property
    def upstream_url(self) -> str:
        """The upstream base URL; raise SettingsError when none was resolved."""
        if not self.upstream:
            raise SettingsError(no_upstream_message(shutil.which("npm") is not None))
        return self.upstream


FIELD_HELP: dict[str, str] = {
    "upstream": "registry to proxy (default: the registry npm is configured with; when that "
    "is this Floodgate, the upstream it last served, remembered in the cache folder)",
    "host": "address to listen on",
    "port": "port to listen on (0 picks a free one)",
    "public_url": "base URL clients reach Floodgate at, for tarball links behind a reverse "
    "proxy (default: taken from each request's Host header)",
    "cache_dir": "directory for cached tarballs, packuments and databases",
    "packument_memory_mb": "memory for cached packuments, in MB",
    "packument_ttl": "seconds a cached packument is served before it is revalidated upstream",
    "revalidate_wait": "seconds a request for an expired packument waits for its revalidation "
    "before the cached copy is served stale (the revalidation goes on in the background)",
    "not_found_ttl": "seconds an upstream 404 is remembered before the upstream is asked again "
    "(0: never remembered)",
    "tarball_cache_mb": "disk space for cached tarballs, in MB (least recently used go first)",
    "tarball_memory_mb": "memory for hot small tarballs, in MB",
    "connect_timeout": "seconds to wait for a connection to the upstream",
    "read_timeout": "seconds to wait for each read from the upstream",
    "upstream_deadline": "seconds one upstream download may take in total",
    "max_packument_mb": "largest packument accepted from the upstream, in MB",
    "max_tarball_mb": "largest tarball accepted from the upstream, in MB",
    "allow_tarball_hosts": "other hosts that tarball URLs may point at (comma-separated)",
    "upstream_token": "bearer token Floodgate sends to the upstream (never logged)",
    "ca_file": "CA bundle that signs the upstream's TLS certificate (default: the system's "
    "store, which honours SSL_CERT_FILE and SSL_CERT_DIR, plus certifi's)",
    "forward_auth": "forward clients' Authorization header to the upstream for whoami, "
    "search and audit",
    "render_workers": "worker processes that parse and render packuments over 1 MB (0: a "
    "thread, which holds the event loop for the few ms orjson needs per MB; each worker "
    "process costs ~50 MB of memory)",
    "log_level": "log level: " + ", ".join(LOG_LEVELS),
    "access_log": "log one line per request",
    "policy": "policy file, or a shipped policy: default, strict, audit (default: default)",
    "enforce": "run the detector and the policy (--no-enforce serves everything unchecked)",
    "osv_feed": "OSV malicious-packages feed: a directory or zip of OSV JSON records, a URL of "
    "such a zip, the base URL of OSV's per-ecosystem bucket layout (updated incrementally), "
    f"or off (default: {DEFAULT_OSV_FEED})",
    "osv_refresh_seconds": "seconds between updates of the OSV feed (a zip or folder is "
    "reloaded whole; the bucket layout fetches only records modified since)",
    "scan_timeout": "seconds a tarball request waits for its scan before the rule's unscanned "
    "mode decides",
    "client_timeout": "seconds a client connection gets to send a request's headers (and a "
    "passthrough request's body) before it is closed",
    "anonymous": "requests without a token: auto (allowed while no token exists, refused once "
    "`floodgate token create` has made one), on, or off (default: auto)",
    "admin_groups": "token groups that may open the dashboard at /-/dashboard "
    "(comma-separated; default: admin)",
    "group_policies": "policy per token group, as group=policy pairs (comma-separated; in the "
    "config file a mapping); other groups and anonymous callers get `policy` (default: none)",
    "internal_scopes": "the organization's own npm scopes (e.g. @acme): nothing under them is "
    "ever fetched from the upstream (comma-separated)",
    "internal_names": "the organization's own package names (acme-utils, @acme/utils): never "
    "fetched from the upstream; public twins (acme_utils) match the policy condition "
    "shadows_internal (comma-separated)",
    "internal_upstream": "the organization's own registry, the only one asked for the internal "
    "scopes and names (their packuments and tarballs are inspected like any other; default: "
    "none, so they are 404)",
    "internal_upstream_token": "bearer token Floodgate sends to the internal registry (never "
    "logged)",
    "internal_readers": "who may install the packages Floodgate hosts (the internal scopes and "
    "names, when no internal_upstream is set), as scope=groups pairs: @acme=developers+ci "
    "(comma-separated; in the config file a mapping; a name or * as key; default: every token)",
    "internal_publishers": "who may publish, deprecate, dist-tag and unpublish hosted packages, "
    "as scope=groups pairs like internal_readers (default: the admin groups only)",
    "internal_anonymous_read": "let callers without a token install hosted packages (default: off)",
    "unpublish_hours": "hours after its publish during which a publisher may unpublish a "
    "version; after that only an admin group may (default: 72, as npm)",
    "max_publish_mb": "largest tarball accepted by npm publish, in MB",
    "database_url": "shared database for N replicas: postgresql://USER@HOST:PORT/DB (verdicts, "
    "the detector's indexes, campaigns, the decision log; default: SQLite under cache_dir)",
    "blob_store": "shared object store for N replicas: s3://BUCKET/PREFIX, endpoint and "
    "credentials from the environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...; default: "
    "cache_dir alone)",
    "prefetch_scans": "versions per fetched packument downloaded and scanned in the background "
    "ahead of installs (1: the latest; never platform builds or 0.0.x placeholders)",
    "prefetch_packuments": "packuments of a served package's dependencies (of its latest "
    "version) fetched, inspected and rendered at once in the background, before the client "
    "asks for them (0: none)",
    "prefetch_pause": "seconds without a client request before the background prefetch scans "
    "run: they share the CPU with clients, so they wait for a pause (at most a minute; 0: at "
    "once)",
}

_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def _convert(name: str, value: Any, origin: str) -> Any:
    """Turn a raw value from env (str) or YAML (any) into the field's type."""
    kind = str(_FIELDS[name].type)

    def bad(expected: str) -> SettingsError:
        return SettingsError(
            f"setting {name!r} from {origin} has value {value!r}: expected {expected}"
        )

    if kind in ("str", "str | None"):
        if value is None and "None" in kind:
            return None
        if value is False and name == "osv_feed":  # YAML reads `osv_feed: off` as false
            return "off"
        if isinstance(value, bool) and name == "anonymous":  # YAML reads on/off as booleans
            return "on" if value else "off"
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise bad("a string")
        return str(value)
    if kind == "int":
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise bad("an integer")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad("an integer") from None
    if kind == "float":
        if isinstance(value, bool):
            raise bad("a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise bad("a number") from None
        if not math.isfinite(number):
            raise bad("a finite number")
        return number
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise bad("true or false")
    if kind == "Path":
        if not isinstance(value, str | Path) or not str(value):
            raise bad("a path")
        return Path(value).expanduser()
    if kind == "tuple[str, ...]":
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise bad("a list of strings")
        return tuple(str(i).strip() for i in items if str(i).strip())
    if kind == "tuple[tuple[str, str], ...]":
        return _pairs(value, bad)
    raise AssertionError(f"no converter for {name}: {kind}")  # pragma: no cover


def _pairs(value: Any, bad: Callable[[str], SettingsError]) -> tuple[tuple[str, str], ...]:
    """`group=policy` pairs from a mapping (YAML) or `a=b,c=d` text (flag, environment)."""
    expected = "group=policy pairs (a=b,c=d) or a mapping"
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, str):
        items = []
        for part in value.split(","):
            if not part.strip():
                continue
            key, sep, val = part.replace(":", "=", 1).partition("=")
            if not sep:
                raise bad(expected)
            items.append((key, val))
    else:
        raise bad(expected)
    out: dict[str, str] = {}
    for key, val in items:
        if not isinstance(key, str | int) or not isinstance(val, str) or isinstance(key, bool):
            raise bad(expected)
        k, v = str(key).strip(), val.strip()
        if not k or not v:
            raise bad(expected)
        out[k] = v
    return tuple(out.items())


def _is_internal(key: str, s: Settings) -> bool:
    """Whether an access rule's key (a scope or a name) is one Floodgate hosts."""
    if key in s.internal_names or key in s.internal_scopes:
        return True
    return key.startswith("@") and "/" in key and key.split("/", 1)[0] in s.internal_scopes


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    out = {}
    for name in _FIELDS:
        key = ENV_PREFIX + name.upper()
        if key in env:
            out[name] = _convert(name, env[key], f"environment variable {key}")
    return out


def _from_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise SettingsError(f"config file {path}{where} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f"config file {path} must be a mapping of setting: value")
    out = {}
    for raw_key, value in data.items():
        key = str(raw_key).replace("-", "_")
        if key not in _FIELDS:
            known = ", ".join(sorted(_FIELDS))
            raise SettingsError(f"config file {path}: unknown setting {raw_key!r} (known: {known})")
        out[key] = _convert(key, value, f"config file {path}")
    return out


def load_settings(
    cli: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Build Settings from flags, environment and config file, in that order of precedence.

    `cli` holds only the flags the user gave (already typed by argparse). The config file is
    `config_file`, else `FLOODGATE_CONFIG` from `env`, else none. Raises SettingsError naming
    the source, key and value of anything invalid.
    """
    env = os.environ if env is None else env
    cli = dict(cli or {})
    if config_file is None and env.get(ENV_PREFIX + "CONFIG"):
        config_file = Path(env[ENV_PREFIX + "CONFIG"]).expanduser()
    values: dict[str, Any] = {}
    if config_file is not None:
        values.update(_from_file(config_file))
    values.update(_from_env(env))
    unknown = set(cli) - set(_FIELDS)
    if unknown:
        raise SettingsError(f"unknown settings: {', '.join(sorted(unknown))}")
    values.update({k: _convert(k, v, "the command line") for k, v in cli.items()})
    settings = Settings(**values)
    _validate(settings)
    return settings


def _validate(s: Settings) -> None:
    if not 0 <= s.port <= 65535:
        raise SettingsError(f"setting 'port' has value {s.port}: expected 0-65535")
    if s.log_level not in LOG_LEVELS:
        raise SettingsError(
            f"setting 'log_level' has value {s.log_level!r}: expected one of "
            + ", ".join(LOG_LEVELS)
        )
    for name in (
        "packument_ttl",
        "connect_timeout",
        "read_timeout",
        "upstream_deadline",
        "osv_refresh_seconds",
        "scan_timeout",
        "client_timeout",
    ):
        if getattr(s, name) <= 0:
            raise SettingsError(f"setting {name!r} has value {getattr(s, name)}: must be positive")
    for name in ("packument_memory_mb", "tarball_cache_mb", "max_packument_mb", "max_tarball_mb"):
        if getattr(s, name) < 1:
            raise SettingsError(f"setting {name!r} has value {getattr(s, name)}: must be >= 1")
    for name in (
        "tarball_memory_mb",
        "render_workers",
        "prefetch_scans",
        "prefetch_pause",
        "prefetch_packuments",
        "not_found_ttl",
        "revalidate_wait",
    ):
        if getattr(s, name) < 0:
            raise SettingsError(f"setting {name!r} has value {getattr(s, name)}: must be >= 0")
    if s.anonymous not in ("auto", "on", "off"):
        raise SettingsError(
            f"setting 'anonymous' has value {s.anonymous!r}: expected auto, on or off"
        )
    for scope in s.internal_scopes:
        if not scope.startswith("@") or "/" in scope or len(scope) < 2:
            raise SettingsError(
                f"setting 'internal_scopes' has value {scope!r}: expected a scope like @acme"
            )
    for setting in ("internal_readers", "internal_publishers"):
        for key, _groups in getattr(s, setting):
            if key != "*" and not _is_internal(key, s):
                raise SettingsError(
                    f"setting {setting!r} names {key!r}, which is not one of internal_scopes "
                    "or internal_names: Floodgate hosts only those"
                )
    if s.upstream is not None:
        _check_http_url("upstream", s.upstream)
    if s.public_url is not None:
        _check_http_url("public_url", s.public_url)
    if s.database_url is not None and urlsplit(s.database_url).scheme not in (
        "postgresql",
        "postgres",
    ):
        raise SettingsError(
            "setting 'database_url' is not a postgresql://USER@HOST:PORT/DATABASE URL"
        )
    if s.blob_store is not None and (
        urlsplit(s.blob_store).scheme != "s3" or len(urlsplit(s.blob_store).netloc) < 3
    ):
        raise SettingsError(
            f"setting 'blob_store' has value {s.blob_store!r}: expected s3://BUCKET[/PREFIX]"
        )


def _check_http_url(name: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"setting {name!r} has value {url!r}: expected an http(s) URL")
    if parts.query or parts.fragment:
        raise SettingsError(f"setting {name!r} has value {url!r}: no query or fragment allowed")


def npm_configured_registry() -> str | None:
    """The registry the local npm is configured with, or None when npm is absent or says none."""
    npm = shutil.which("npm")
    if npm is None:
        return None
    try:
        done = subprocess.run(
            [npm, "config", "get", "registry"],
            capture_output=True,
            text=True,
            timeout=NPM_CONFIG_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    url = done.stdout.strip()
    return url if done.returncode == 0 and url and url != "undefined" else None


_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0", "::"})  # noqa: S104


def _is_local(host: str) -> bool:
    if host in _LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


REMEMBERED_UPSTREAM = "upstream"  # file in the cache folder: the upstream serve last used


class _Loop(SettingsError):
    """The upstream is this Floodgate itself."""


def resolve_upstream(
    settings: Settings, discover: Callable[[], str | None] = npm_configured_registry
) -> Settings:
    """Settings with the upstream filled in and checked, from the first of:

    1. the configured upstream (flag, environment, config file);
    2. the registry npm is configured with (`discover`), unless that is this Floodgate, as it
       is once the quick start's `npm config set registry` has run;
    3. the upstream remembered in the cache folder (`remember_upstream`: `floodgate serve`
       writes it), so that a plain `floodgate serve` keeps working after that.

    The choice and its source are logged. Raises SettingsError when there is none, or when the
    configured one points back at this Floodgate (a request loop).
    """
    if settings.upstream:
        return _checked(settings, settings.upstream)
    loop: _Loop | None = None
    npm = discover()
    if npm:
        try:
            chosen = _checked(settings, npm)
        except _Loop as exc:
            loop = exc
        else:
            log.info("upstream %s: the registry npm is configured with", chosen.upstream)
            return chosen
    saved = remembered_upstream(settings.cache_dir)
    if saved:
        try:
            chosen = _checked(settings, saved)
        except SettingsError as exc:
            log.warning("ignoring the upstream remembered in %s: %s", settings.cache_dir, exc)
        else:
            why = f"npm's registry {npm} is this Floodgate" if npm else "npm names no registry"
            log.info(
                "upstream %s: remembered in %s (%s)",
                chosen.upstream,
                settings.cache_dir / REMEMBERED_UPSTREAM,
                why,
            )
            return chosen
    if loop is not None:
        raise loop
    raise SettingsError(no_upstream_message(shutil.which("npm") is not None))


def no_upstream_message(npm_installed: bool) -> str:
    """What to do when no upstream is known; npm is only suggested where it exists (pure)."""
    fix = "pass --upstream URL or set FLOODGATE_UPSTREAM"
    if npm_installed:
        return f"no upstream registry: {fix}, or configure npm (npm config set registry URL)"
    return f"no upstream registry: {fix} (npm is not installed here, so its registry is unknown)"


def _checked(settings: Settings, upstream: str) -> Settings:
    """`upstream` checked as an http(s) URL that is not this Floodgate itself."""
    _check_http_url("upstream", upstream)
    upstream = upstream.rstrip("/")
    parts = urlsplit(upstream)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or ""
    same_host = host == settings.host or (_is_local(host) and _is_local(settings.host))
    if settings.port and port == settings.port and same_host:
        raise _Loop(
            f"the upstream {upstream} is this Floodgate itself ({settings.host}:{settings.port}); "
            "pass --upstream with the real registry's URL"
        )
    if settings.public_url:
        pub = urlsplit(settings.public_url)
        pub_port = pub.port or (443 if pub.scheme == "https" else 80)
        if (pub.hostname, pub_port) == (parts.hostname, port):
            raise _Loop(
                f"the upstream {upstream} is this Floodgate's public URL; "
                "pass --upstream with the real registry's URL"
            )
    return dataclasses.replace(settings, upstream=upstream)


def remembered_upstream(cache_dir: Path) -> str | None:
    """The upstream `remember_upstream` stored in `cache_dir`, or None."""
    try:
        text = (cache_dir / REMEMBERED_UPSTREAM).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text or None


def remember_upstream(cache_dir: Path, upstream: str) -> None:
    """Store the upstream in `cache_dir` (written whole, then renamed); a failure is logged."""
    path = cache_dir / REMEMBERED_UPSTREAM
    if remembered_upstream(cache_dir) == upstream:
        return
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(upstream + "\n", encoding="utf-8")
        os.replace(temporary, path)
    except OSError as exc:
        log.warning("could not remember the upstream in %s: %s", path, exc.strerror or exc)
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)


def ensure_cache_dir(path: Path) -> Path:
    """Create the cache folder and prove it writable; SettingsError (a clean exit 2) if not."""
    probe = path / f".probe.{os.getpid()}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise SettingsError(
            f"the cache folder {path} cannot be used: {reason} "
            "(choose another with --cache-dir or FLOODGATE_CACHE_DIR)"
        ) from exc
    return path
