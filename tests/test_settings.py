"""Settings: precedence, conversion, helpful errors and upstream resolution.

Every test passes `env=` explicitly, so nothing here depends on the real environment, and
`resolve_upstream` gets an injected `discover`, so npm is never called.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from proxy.errors import SettingsError
from proxy.settings import (
    REMEMBERED_UPSTREAM,
    Settings,
    ensure_cache_dir,
    load_settings,
    no_upstream_message,
    remember_upstream,
    remembered_upstream,
    resolve_upstream,
)


def config(tmp_path: Path, text: str, name: str = "floodgate.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# -- precedence --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("in_file", "in_env", "in_cli", "port"),
    [
        (False, False, False, 4873),  # the default
        (True, False, False, 1111),
        (True, True, False, 2222),
        (False, True, False, 2222),
        (True, True, True, 3333),
        (True, False, True, 3333),
        (False, True, True, 3333),
    ],
)
def test_precedence_cli_env_file_default(
    tmp_path: Path, in_file: bool, in_env: bool, in_cli: bool, port: int
) -> None:
    path = config(tmp_path, "port: 1111\nhost: 0.0.0.0\n") if in_file else None
    env = {"FLOODGATE_PORT": "2222", "FLOODGATE_LOG_LEVEL": "debug"} if in_env else {}
    cli = {"port": 3333} if in_cli else {}
    s = load_settings(cli, env=env, config_file=path)
    assert s.port == port
    # Settings no higher source overrides still come from their own source.
    assert s.host == ("0.0.0.0" if in_file else "127.0.0.1")
    assert s.log_level == ("debug" if in_env else "info")


def test_config_file_named_by_env_and_overridden_by_argument(tmp_path: Path) -> None:
    named = config(tmp_path, "port: 1111\n", "from-env.yaml")
    given = config(tmp_path, "port: 5555\n", "given.yaml")
    env = {"FLOODGATE_CONFIG": str(named)}
    assert load_settings(env=env).port == 1111
    assert load_settings(env=env, config_file=given).port == 5555


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    s = load_settings(env={})
    assert s == Settings(cache_dir=tmp_path / "xdg" / "floodgate")
    assert (s.upstream, s.host, s.port, s.packument_ttl, s.access_log) == (
        None,
        "127.0.0.1",
        4873,
        300.0,
        True,
    )


def test_unrelated_environment_is_ignored() -> None:
    s = load_settings(env={"PORT": "1", "FLOODGATE_NOT_A_SETTING": "x", "NPM_CONFIG_REGISTRY": "y"})
    assert s.port == 4873


# -- conversion --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("port", "5000", 5000),
        ("port", " 5000 ", 5000),
        ("packument_ttl", "12.5", 12.5),
        ("packument_ttl", "60", 60.0),
        ("access_log", "off", False),
        ("access_log", "NO", False),
        ("access_log", "0", False),
        ("access_log", "Yes", True),
        ("access_log", "on", True),
        ("forward_auth", "true", True),
        ("allow_tarball_hosts", "cdn.example, mirror.example,", ("cdn.example", "mirror.example")),
        ("allow_tarball_hosts", "", ()),
        ("upstream", "https://registry-host.invalid", "https://registry-host.invalid"),
        ("upstream_token", "npm_abc123", "npm_abc123"),
        ("cache_dir", "/var/cache/floodgate", Path("/var/cache/floodgate")),
    ],
)
def test_env_values_are_converted(name: str, text: str, value: object) -> None:
    s = load_settings(env={f"FLOODGATE_{name.upper()}": text})
    assert getattr(s, name) == value


def test_yaml_values_keep_their_types(tmp_path: Path) -> None:
    path = config(
        tmp_path,
        "upstream: https://registry-host.invalid/\n"
        "public-url: https://npm.example.com\n"  # dashes as on the command line
        "allow_tarball_hosts:\n  - cdn.example.com\n  - Mirror.Example.com\n"
        "forward_auth: yes\n"
        "access_log: false\n"
        "read_timeout: 7\n"
        "cache_dir: /srv/floodgate\n"
        "upstream_token: null\n",
    )
    s = load_settings(env={}, config_file=path)
    assert s.upstream == "https://registry-host.invalid/"
    assert s.public_url == "https://npm.example.com"
    assert s.allow_tarball_hosts == ("cdn.example.com", "Mirror.Example.com")
    assert (s.forward_auth, s.access_log) == (True, False)
    assert s.read_timeout == 7.0
    assert isinstance(s.read_timeout, float)
    assert s.cache_dir == Path("/srv/floodgate")
    assert s.upstream_token is None


@pytest.mark.parametrize("text", ["", "# nothing here\n", "---\n"])
def test_empty_config_file_means_defaults(tmp_path: Path, text: str) -> None:
    assert load_settings(env={}, config_file=config(tmp_path, text)).port == 4873


def test_token_is_not_in_repr() -> None:
    s = load_settings(env={"FLOODGATE_UPSTREAM_TOKEN": "npm_sekrit"})
    assert s.upstream_token == "npm_sekrit"
    assert "npm_sekrit" not in repr(s)


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "key", "value"),
    [
        ({"FLOODGATE_PORT": "abc"}, "port", "'abc'"),
        ({"FLOODGATE_PORT": "4873.5"}, "port", "'4873.5'"),
        ({"FLOODGATE_READ_TIMEOUT": "soon"}, "read_timeout", "'soon'"),
        ({"FLOODGATE_ACCESS_LOG": "maybe"}, "access_log", "'maybe'"),
        ({"FLOODGATE_RENDER_WORKERS": ""}, "render_workers", "''"),
    ],
)
def test_bad_env_value_names_key_value_and_variable(
    env: dict[str, str], key: str, value: str
) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(env=env)
    message = str(info.value)
    assert f"'{key}'" in message
    assert value in message
    assert f"environment variable {next(iter(env))}" in message


@pytest.mark.parametrize(
    ("line", "key", "value"),
    [
        ("port: abc", "port", "'abc'"),
        ("port: [4873]", "port", "[4873]"),
        ("port: true", "port", "True"),  # YAML booleans are not numbers
        ("port: 4873.5", "port", "4873.5"),  # a float is not an integer
        ("port:", "port", "None"),
        ("packument_ttl: {seconds: 5}", "packument_ttl", "{'seconds': 5}"),
        ("packument_ttl: false", "packument_ttl", "False"),
        ("access_log: [yes]", "access_log", "[True]"),
        ("access_log: 2", "access_log", "2"),
        ("host: [0.0.0.0]", "host", "['0.0.0.0']"),
        ("host: true", "host", "True"),
        ("cache_dir: 42", "cache_dir", "42"),
        ("cache_dir: ''", "cache_dir", "''"),
        ("allow_tarball_hosts: {cdn: 1}", "allow_tarball_hosts", "{'cdn': 1}"),
        ("allow_tarball_hosts: 7", "allow_tarball_hosts", "7"),
    ],
)
def test_bad_yaml_value_names_key_value_and_file(
    tmp_path: Path, line: str, key: str, value: str
) -> None:
    path = config(tmp_path, line + "\n")
    with pytest.raises(SettingsError) as info:
        load_settings(env={}, config_file=path)
    message = str(info.value)
    assert f"'{key}'" in message
    assert value in message
    assert str(path) in message


def test_bad_cli_value_names_the_command_line() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({"port": "eighty"}, env={})
    message = str(info.value)
    assert "'port'" in message
    assert "'eighty'" in message
    assert "command line" in message


def test_unknown_config_key_names_file_and_key(tmp_path: Path) -> None:
    path = config(tmp_path, "port: 4873\nupstrem: https://registry-host.invalid\n")
    with pytest.raises(SettingsError) as info:
        load_settings(env={}, config_file=path)
    message = str(info.value)
    assert str(path) in message
    assert "'upstrem'" in message
    assert "upstream" in message  # the known keys are listed


def test_unknown_cli_key() -> None:
    with pytest.raises(SettingsError, match="registry"):
        load_settings({"registry": "https://registry-host.invalid"}, env={})


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("port: 4873\n  host: [unclosed\n", ":2"),  # the line of the problem
        ("- port\n- host\n", "must be a mapping"),
        ("just a string\n", "must be a mapping"),
    ],
)
def test_malformed_config_file(tmp_path: Path, text: str, fragment: str) -> None:
    path = config(tmp_path, text)
    with pytest.raises(SettingsError) as info:
        load_settings(env={}, config_file=path)
    assert str(path) in str(info.value)
    assert fragment in str(info.value)


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(SettingsError, match=r"nope\.yaml"):
        load_settings(env={}, config_file=missing)
    with pytest.raises(SettingsError, match=r"nope\.yaml"):
        load_settings(env={"FLOODGATE_CONFIG": str(missing)})


@pytest.mark.parametrize(
    ("cli", "fragment"),
    [
        ({"port": 70000}, "'port'"),
        ({"port": -1}, "'port'"),
        ({"log_level": "verbose"}, "'log_level'"),
        ({"packument_ttl": 0}, "'packument_ttl'"),
        ({"read_timeout": -5}, "'read_timeout'"),
        ({"read_timeout": "nan"}, "'read_timeout'"),  # NaN is not a positive number
        ({"max_tarball_mb": 0}, "'max_tarball_mb'"),
        ({"tarball_memory_mb": -1}, "'tarball_memory_mb'"),
        ({"render_workers": -1}, "'render_workers'"),
        ({"upstream": "ftp://registry.example.com"}, "'upstream'"),
        ({"upstream": "registry-host.invalid"}, "'upstream'"),
        ({"upstream": "https://registry-host.invalid/?x=1"}, "'upstream'"),
        ({"public_url": "https://npm.example.com/#top"}, "'public_url'"),
        ({"public_url": "http://"}, "'public_url'"),
    ],
)
def test_invalid_values_are_refused(cli: dict[str, Any], fragment: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(cli, env={})
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    "cli",
    [
        {"port": 0},
        {"port": 65535},
        {"tarball_memory_mb": 0},
        {"render_workers": 0},
        {"packument_ttl": 0.001},
        {"upstream": "http://127.0.0.1:8080/npm/"},
        {"public_url": "https://npm.example.com/"},
    ],
)
def test_boundary_values_are_accepted(cli: dict[str, Any]) -> None:
    s = load_settings(cli, env={})
    for name, value in cli.items():
        assert getattr(s, name) == value


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().port = 1  # type: ignore[misc]


# -- resolve_upstream --------------------------------------------------------------------------


def never() -> str | None:
    raise AssertionError("discover must not be called when an upstream is configured")


def found(url: str | None) -> Callable[[], str | None]:
    return lambda: url


@pytest.mark.parametrize(
    ("upstream", "discover", "resolved"),
    [
        ("https://registry-host.invalid", never, "https://registry-host.invalid"),
        ("https://registry-host.invalid/", never, "https://registry-host.invalid"),
        ("https://npm.corp.example/repo/npm/", never, "https://npm.corp.example/repo/npm"),
        (None, found("https://registry-host.invalid/"), "https://registry-host.invalid"),
        (None, found("http://127.0.0.1:4874"), "http://127.0.0.1:4874"),
    ],
)
def test_resolve_upstream(
    upstream: str | None, discover: Callable[[], str | None], resolved: str
) -> None:
    before = Settings(upstream=upstream)
    after = resolve_upstream(before, discover=discover)
    assert after.upstream == resolved
    assert after.upstream_url == resolved
    assert dataclasses.replace(after, upstream=upstream) == before
    assert before.upstream == upstream


@pytest.mark.parametrize("discovered", [None, ""])
def test_no_upstream_anywhere_is_a_clear_error(discovered: str | None, tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as info:
        resolve_upstream(Settings(cache_dir=tmp_path), discover=found(discovered))
    message = str(info.value)
    assert "--upstream" in message
    assert "FLOODGATE_UPSTREAM" in message
    with pytest.raises(SettingsError, match="--upstream"):
        _ = Settings().upstream_url


def test_without_npm_the_error_does_not_suggest_configuring_npm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm on it
    with pytest.raises(SettingsError) as info:
        resolve_upstream(Settings(cache_dir=tmp_path))  # the real discovery: npm is absent
    message = str(info.value)
    assert "--upstream" in message
    assert "npm is not installed here" in message
    assert "npm config set" not in message


def test_no_upstream_message_names_npm_only_where_it_exists() -> None:
    assert "npm config set registry" in no_upstream_message(npm_installed=True)
    assert "npm config set registry" not in no_upstream_message(npm_installed=False)


# The quick start: serve once (npm still names the real registry), point npm at Floodgate,
# serve again with no flags.
SELF = "http://127.0.0.1:4873/"
REAL = "https://registry-host.invalid"


@pytest.mark.parametrize(
    ("configured", "npm", "saved", "resolved", "source"),
    [
        (REAL, never, None, REAL, None),  # configured: npm is not even asked
        (None, found(REAL), None, REAL, "the registry npm is configured with"),
        (None, found(REAL + "/"), "https://other.invalid", REAL, "npm is configured with"),
        (None, found(SELF), REAL, REAL, "npm's registry http://127.0.0.1:4873/ is this Floodgate"),
        (None, found(None), REAL, REAL, "npm names no registry"),
        (None, found(SELF), None, "loop", None),
        (None, found(SELF), SELF, "loop", "ignoring the upstream remembered"),
        (None, found(None), "not a url", "none", "ignoring the upstream remembered"),
    ],
)  # fmt: skip
def test_the_upstream_is_remembered_for_the_next_start(
    configured: str | None,
    npm: Callable[[], str | None],
    saved: str | None,
    resolved: str,
    source: str | None,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if saved is not None:
        (tmp_path / REMEMBERED_UPSTREAM).write_text(saved + "\n")
    settings = Settings(upstream=configured, cache_dir=tmp_path)
    caplog.set_level(logging.INFO, logger="proxy.settings")
    if resolved in ("loop", "none"):
        with pytest.raises(SettingsError) as info:
            resolve_upstream(settings, discover=npm)
        expected = "is this Floodgate itself" if resolved == "loop" else "no upstream registry"
        assert expected in str(info.value)
    else:
        assert resolve_upstream(settings, discover=npm).upstream == resolved
    if source is not None:
        assert source in caplog.text


def test_remember_upstream_writes_once_and_reads_back(tmp_path: Path) -> None:
    assert remembered_upstream(tmp_path) is None
    remember_upstream(tmp_path, REAL)
    assert remembered_upstream(tmp_path) == REAL
    assert (tmp_path / REMEMBERED_UPSTREAM).read_text() == REAL + "\n"
    assert [p.name for p in tmp_path.iterdir()] == [REMEMBERED_UPSTREAM]  # no temporary left


def test_remember_upstream_in_an_unusable_folder_logs_and_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    remember_upstream(blocker / "cache", REAL)  # a folder under a file cannot exist
    assert "could not remember the upstream" in caplog.text


def test_an_unusable_cache_folder_is_a_settings_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SettingsError, match=r"the cache folder .*file/cache cannot be used: "):
        ensure_cache_dir(blocker / "cache")
    assert ensure_cache_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert list((tmp_path / "a" / "b").iterdir()) == []  # the probe is gone


def test_discovered_upstream_is_checked() -> None:
    with pytest.raises(SettingsError, match="'upstream'"):
        resolve_upstream(Settings(), discover=found("file:///home/me/registry"))


@pytest.mark.parametrize(
    ("host", "port", "upstream", "public_url", "refused"),
    [
        # Pointing at our own listening socket: a request loop.
        ("127.0.0.1", 4873, "http://127.0.0.1:4873", None, True),
        ("127.0.0.1", 4873, "http://localhost:4873/", None, True),
        ("127.0.0.1", 4873, "http://127.0.0.2:4873", None, True),
        ("0.0.0.0", 4873, "http://127.0.0.1:4873", None, True),
        ("::", 4873, "http://localhost:4873", None, True),
        ("::1", 4873, "http://[::1]:4873", None, True),
        ("localhost", 80, "http://127.0.0.1", None, True),  # the scheme's default port
        ("127.0.0.1", 443, "https://localhost/", None, True),
        ("10.0.0.5", 4873, "http://10.0.0.5:4873", None, True),
        ("npm.internal", 4873, "http://NPM.internal:4873", None, True),
        # Our public URL, however it is spelled.
        ("127.0.0.1", 4873, "https://npm.example.com/", "https://npm.example.com", True),
        ("127.0.0.1", 4873, "https://npm.example.com:443", "https://npm.example.com", True),
        ("127.0.0.1", 4873, "http://npm.example.com:8080", "http://npm.example.com:8080/", True),
        # Somewhere else.
        ("127.0.0.1", 4873, "http://127.0.0.1:4874", None, False),
        ("127.0.0.1", 4873, "https://registry-host.invalid", None, False),
        ("127.0.0.1", 443, "https://registry-host.invalid", None, False),
        ("10.0.0.5", 4873, "http://127.0.0.1:4873", None, False),  # not listening there
        ("127.0.0.1", 0, "http://127.0.0.1:4873", None, False),  # port 0: picked at start
        ("127.0.0.1", 4873, "https://registry-host.invalid", "https://npm.example.com", False),
        ("127.0.0.1", 4873, "http://npm.example.com:8081", "http://npm.example.com:8080", False),
    ],
)
def test_upstream_pointing_at_this_floodgate_is_refused(
    host: str, port: int, upstream: str, public_url: str | None, refused: bool
) -> None:
    s = Settings(upstream=upstream, host=host, port=port, public_url=public_url)
    if refused:
        with pytest.raises(SettingsError) as info:
            resolve_upstream(s, discover=never)
        assert "this Floodgate" in str(info.value)
        assert "--upstream" in str(info.value)
    else:
        assert resolve_upstream(s, discover=never).upstream == upstream.rstrip("/")


# -- identity, groups, internal names ----------------------------------------------------------


def test_identity_settings_defaults() -> None:
    s = load_settings({}, env={})
    assert s.anonymous == "auto"
    assert s.admin_groups == ("admin",)
    assert s.group_policies == ()
    assert s.internal_scopes == ()
    assert s.internal_names == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "group_policies: {ci: strict, developers: default}",
            (("ci", "strict"), ("developers", "default")),
        ),
        ("group_policies:\n  ci: ./ci.yaml\n", (("ci", "./ci.yaml"),)),
        ("anonymous: off", "off"),
        ("anonymous: on", "on"),
        ("anonymous: auto", "auto"),
        ("internal_scopes: ['@acme', '@acme-labs']", ("@acme", "@acme-labs")),
        ("internal_names: acme-utils, acme-cli", ("acme-utils", "acme-cli")),
        ("admin_groups: [security]", ("security",)),
    ],
)
def test_identity_settings_from_the_config_file(tmp_path: Path, text: str, expected: Any) -> None:
    s = load_settings({}, env={}, config_file=config(tmp_path, text))
    key = text.split(":", 1)[0]
    assert getattr(s, key) == expected


@pytest.mark.parametrize(
    ("env", "key", "expected"),
    [
        (
            "ci=strict,developers=default",
            "group_policies",
            (("ci", "strict"), ("developers", "default")),
        ),
        ("ci: strict , dev:audit", "group_policies", (("ci", "strict"), ("dev", "audit"))),
        ("OFF", "anonymous", "off"),
    ],
)
def test_identity_settings_from_the_environment(env: str, key: str, expected: Any) -> None:
    value = env.lower() if key == "anonymous" else env
    s = load_settings({}, env={f"FLOODGATE_{key.upper()}": value})
    assert getattr(s, key) == expected


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"anonymous": "sometimes"}, "expected auto, on or off"),
        ({"group_policies": "ci"}, "group=policy pairs"),
        ({"group_policies": "=strict"}, "group=policy pairs"),
        ({"internal_scopes": "acme"}, "a scope like @acme"),
        ({"internal_scopes": "@acme/utils"}, "a scope like @acme"),
    ],
)
def test_bad_identity_settings_say_what_is_wrong(values: dict[str, Any], problem: str) -> None:
    with pytest.raises(SettingsError, match=problem):
        load_settings(values, env={})


def test_policy_for_group() -> None:
    s = load_settings({"policy": "audit", "group_policies": "ci=strict"}, env={})
    assert s.policy_for_group("ci") == "strict"
    assert s.policy_for_group("developers") == "audit"
    assert s.policy_for_group(None) == "audit"
