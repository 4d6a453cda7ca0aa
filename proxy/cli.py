"""The `floodgate` command line: one entry point, subcommands, one settings model.

Every subcommand takes the settings flags that concern it; flags beat `FLOODGATE_*` environment
variables, which beat the config file (`--config`), which beats the defaults. This module only
parses arguments and hands over; the work happens in `proxy.app` and the packages below it.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import shutil
import signal
import socket
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from proxy import __version__
from proxy.errors import FloodgateError
from proxy.log import printable, setup_logging, terminal_text
from proxy.progress import Progress
from proxy.settings import (
    FIELD_HELP,
    Settings,
    ensure_cache_dir,
    load_settings,
    remember_upstream,
    resolve_upstream,
)
from proxy.storage.sql import database_errors

if TYPE_CHECKING:
    from proxy.decisions import DecisionRecord
    from proxy.hosted.registry import HostedRegistry
    from proxy.tokens import TokenStorage

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FLAGGED, EXIT_ERROR = 0, 1, 2

# Settings every command that talks to a registry understands.
COMMON_SETTINGS = (
    "upstream",
    "cache_dir",
    "log_level",
    "connect_timeout",
    "read_timeout",
    "upstream_deadline",
    "upstream_token",
    "ca_file",
    "max_packument_mb",
    "max_tarball_mb",
    "allow_tarball_hosts",
    "osv_feed",
    "database_url",
    "blob_store",
)
# What the commands reading Floodgate's memory (decisions, campaigns) need.
LOG_SETTINGS = ("cache_dir", "log_level", "database_url")
SERVE_SETTINGS = (
    "host",
    "port",
    "public_url",
    "packument_memory_mb",
    "packument_ttl",
    "revalidate_wait",
    "not_found_ttl",
    "tarball_cache_mb",
    "tarball_memory_mb",
    "forward_auth",
    "render_workers",
    "access_log",
    "policy",
    "enforce",
    "osv_refresh_seconds",
    "scan_timeout",
    "prefetch_scans",
    "prefetch_pause",
    "prefetch_packuments",
    "client_timeout",
    "anonymous",
    "admin_groups",
    "group_policies",
    "internal_scopes",
    "internal_names",
    "internal_upstream",
    "internal_readers",
    "internal_publishers",
    "internal_anonymous_read",
    "unpublish_hours",
    "max_publish_mb",
)
_METAVARS = {"upstream": "URL", "public_url": "URL", "cache_dir": "DIR", "host": "ADDR"}


def _add_settings(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    group = parser.add_argument_group(
        "settings", "each also reads FLOODGATE_<NAME> from the environment and <name> from --config"
    )
    for name in names:
        flag = "--" + name.replace("_", "-")
        default_kind = str(Settings.__dataclass_fields__[name].type)
        if default_kind == "bool":
            group.add_argument(
                flag,
                dest=name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=setting_help(name),
            )
        else:
            group.add_argument(
                flag,
                dest=name,
                default=argparse.SUPPRESS,
                metavar=_METAVARS.get(name, name.split("_")[-1].upper()),
                help=setting_help(name),
            )


def setting_help(name: str) -> str:
    """A setting's help with its default, unless the text already says it (pure)."""
    text = FIELD_HELP[name].replace("%", "%%")  # argparse formats help with %
    if "default:" in text:
        return text
    value = getattr(Settings(), name)
    if value is None or value == ():
        shown = "none"
    elif isinstance(value, bool):
        shown = "on" if value else "off"
    elif isinstance(value, float) and value.is_integer():
        shown = str(int(value))
    else:
        shown = str(value)
    return f"{text} (default: {shown})"


def _settings_from(args: argparse.Namespace, names: Sequence[str]) -> Settings:
    given: dict[str, Any] = {n: getattr(args, n) for n in names if hasattr(args, n)}
    return load_settings(given, config_file=args.config)


def ensure_settings(args: argparse.Namespace) -> Settings:
    """The command's settings, with its cache folder created and proven writable."""
    settings = _settings_from(args, args.settings_names)
    ensure_cache_dir(settings.cache_dir)
    return settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="floodgate",
        description="An npm registry proxy that keeps token-farming spam and known-malicious "
        "packages out of installs.",
        epilog="Point npm at it with: npm config set registry http://127.0.0.1:4873/",
    )
    parser.add_argument("--version", action="version", version=f"floodgate {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = commands.add_parser(
        "serve",
        help="run the proxy",
        description="Run the registry proxy. Without --upstream it proxies the registry that "
        "`npm config get registry` names.",
    )
    serve.add_argument("--config", type=Path, metavar="FILE", help="YAML config file")
    _add_settings(serve, COMMON_SETTINGS + SERVE_SETTINGS)
    serve.set_defaults(handler=cmd_serve, settings_names=COMMON_SETTINGS + SERVE_SETTINGS)

    scan = commands.add_parser(
        "scan",
        help="run the detector on packages or tarballs",
        description="Assess NAME[@VERSION|@RANGE|@TAG] through the upstream (every version a "
        "range allows), or local tarballs with --tarball. Exit status: 0 nothing flagged, "
        "1 something labelled spam or malicious, 2 errors only.",
    )
    scan.add_argument("targets", nargs="*", metavar="NAME[@VERSION|@RANGE]")
    scan.add_argument("--tarball", action="append", type=Path, default=[], metavar="FILE.tgz")
    scan.add_argument("--json", action="store_true", help="print one JSON object")
    # Deprecated spelling of --osv-feed, still accepted; not listed.
    scan.add_argument("--osv", dest="osv_feed", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    scan.add_argument("--metadata-only", action="store_true", help="do not download tarballs")
    scan.add_argument("--config", type=Path, metavar="FILE", help="YAML config file")
    _add_settings(scan, COMMON_SETTINGS)
    scan.set_defaults(handler=cmd_scan, settings_names=COMMON_SETTINGS)

    policy = commands.add_parser(
        "policy", help="check or explain policies", description="Check or explain policies."
    )
    policy_commands = policy.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    check = policy_commands.add_parser(
        "check",
        help="validate policy files",
        description="Validate policy files (paths, or the shipped names default, strict, "
        "audit). Exit status 0 when all are valid, 2 otherwise; errors name file, line and key.",
    )
    check.add_argument("files", nargs="+", metavar="FILE")
    check.set_defaults(handler=cmd_policy_check)
    explain = policy_commands.add_parser(
        "explain",
        help="show which rule decides a version, and why",
        description="Fetch NAME@VERSION (or a tag or range: its newest version) through the "
        "upstream, assess it and walk the policy's rules. Exit status 0 when it would be "
        "served, 1 when hidden or blocked, 2 on errors.",
    )
    _add_explain_arguments(explain, "NAME@VERSION", cmd_policy_explain)

    audit = commands.add_parser(
        "audit",
        help="check a project's lockfile against the detector and the policy",
        description="Read the lockfile in PATH (package-lock.json v1-v3, npm-shrinkwrap.json, "
        "pnpm-lock.yaml v6/v9, yarn.lock classic or berry), fetch every package through the "
        "upstream (or a running Floodgate: --upstream URL), assess it and decide with the policy. "
        "Exit status: 0 nothing blocked, 1 something blocked, 2 could not audit.",
    )
    audit.add_argument(
        "path", nargs="?", default=".", type=Path, metavar="PATH",
        help="project folder or lockfile (default: the current folder)",
    )  # fmt: skip
    audit.add_argument(
        "--format",
        choices=["table", "json", "sarif"],
        default="table",
        help="output format (default: table)",
    )
    audit.add_argument("--output", type=Path, metavar="FILE", help="write the report here")
    audit.add_argument("--sbom", type=Path, metavar="FILE", help="write a CycloneDX 1.5 SBOM")
    audit.add_argument("--all", action="store_true", help="list clean packages too (table)")
    # Deprecated spelling of --upstream (e.g. a running Floodgate), still accepted; not listed.
    audit.add_argument(
        "--registry", dest="upstream", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    audit.add_argument(
        "--metadata-only", action="store_true", help="do not download and scan tarballs"
    )
    audit.add_argument(
        "--concurrency", type=int, default=16, help="packages audited at once (default: 16)"
    )
    audit.add_argument("--config", type=Path, metavar="FILE", help="YAML config file")
    audit_settings = (*COMMON_SETTINGS, "policy", "internal_scopes", "internal_names")
    _add_settings(audit, audit_settings)
    audit.set_defaults(handler=cmd_audit, settings_names=audit_settings)

    why = commands.add_parser(
        "why",
        help="why Floodgate blocked, hid or warned about a package",
        description="Why NAME[@VERSION] was blocked, hidden or warned about: Floodgate's latest "
        "decisions on it from the decision log (run it where `floodgate serve` runs, or give "
        "its --cache-dir), with the rule and every reason; when the log has none, the "
        "policy's answer now, as `floodgate policy explain`. Exit status: 0 served, 1 hidden "
        "or blocked, 2 errors.",
    )
    _add_explain_arguments(why, "NAME[@VERSION]", cmd_why)  # it falls back to explain

    decisions = commands.add_parser(
        "decisions",
        help="query what the proxy blocked, hid, warned about, and why",
        description="Query the decision log (newest first). Filters combine.",
    )
    decisions.add_argument("--package", metavar="GLOB", help="package name or glob")
    decisions.add_argument(
        "--group", metavar="GROUP", help="decisions for callers of this token group only"
    )
    decisions.add_argument("--token", metavar="NAME", help="decisions for this token name only")
    decisions.add_argument(
        "--action",
        action="append",
        default=[],
        choices=["allow", "monitor", "warn", "hide", "block"],
        help="enforced or intended action (repeatable)",
    )
    decisions.add_argument("--since", metavar="AGE|TIME", help="e.g. 1h, 7d, or an ISO time")
    decisions.add_argument(
        "--limit", type=int, default=100, help="at most this many, 0 for all (default: 100)"
    )
    decisions.add_argument("--json", action="store_true", help="print JSON lines")
    decisions.add_argument("--config", type=Path, metavar="FILE", help="YAML config file")
    _add_settings(decisions, LOG_SETTINGS)
    decisions.set_defaults(handler=cmd_decisions, settings_names=LOG_SETTINGS)

    doctor = commands.add_parser(
        "doctor",
        help="check the setup: upstream, cache, policy, OSV feed",
        description="Check that the upstream answers, the cache folder is writable, the policy "
        "loads (expired waivers count as problems) and the OSV feed is up to date. Prints one "
        "line per check. Exit status: 0 healthy, 1 problems (listed), 2 errors.",
    )
    doctor.add_argument("--config", type=Path, metavar="FILE", help="YAML config file")
    doctor_settings = (
        *COMMON_SETTINGS,
        "policy",
        "osv_refresh_seconds",
        "admin_groups",
        "internal_scopes",
        "internal_names",
        "internal_upstream",
        "internal_publishers",
    )
    _add_settings(doctor, doctor_settings)
    doctor.set_defaults(handler=cmd_doctor, settings_names=doctor_settings)

    token = commands.add_parser(
        "token",
        help="create, list or revoke client tokens",
        description="Client tokens: clients send them as any registry token "
        "(//host/:_authToken= in .npmrc; npmAuthToken for yarn 4). Only a token's hash is "
        "stored, in tokens.sqlite3 in the cache folder (with database_url: in the shared "
        "database, for every replica); the running proxy sees changes within seconds.",
    )
    token_commands = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    create = token_commands.add_parser(
        "create",
        help="make a token for a group and print it (once)",
        description="Make a token; it is printed once and cannot be shown again.",
    )
    create.add_argument("--group", required=True, help="the caller's group (chooses its policy)")
    create.add_argument("--name", required=True, help="a unique name: a person, a CI runner")
    create.add_argument("--json", action="store_true", help="print one JSON object")
    listing = token_commands.add_parser("list", help="list tokens (never the tokens themselves)")
    listing.add_argument("--json", action="store_true", help="print JSON lines")
    revoke = token_commands.add_parser("revoke", help="revoke a token by name")
    revoke.add_argument("name", metavar="NAME")
    for sub, handler in (
        (create, cmd_token_create),
        (listing, cmd_token_list),
        (revoke, cmd_token_revoke),
    ):
        sub.add_argument("--config", type=Path, metavar="FILE", help="YAML config file")
        _add_settings(sub, LOG_SETTINGS)
        sub.set_defaults(handler=handler, settings_names=LOG_SETTINGS)

    campaigns = commands.add_parser(
        "campaigns",
        help="list the campaigns (clusters of farm packages) the detector has seen",
        description="List clusters of packages that share wallets, code, name templates, "
        "dependency edges or publish minutes and have farm traits, largest first.",
    )
    campaigns.add_argument("--min-size", type=int, default=2, help="smallest cluster listed")
    campaigns.add_argument("--json", action="store_true", help="print JSON lines")
    campaigns.add_argument("--config", type=Path, metavar="FILE", help="YAML config file")
    _add_settings(campaigns, LOG_SETTINGS)
    campaigns.set_defaults(handler=cmd_campaigns, settings_names=LOG_SETTINGS)
    _add_storage_commands(commands)
    return parser


STORAGE_SETTINGS = ("cache_dir", "log_level", "database_url", "blob_store")


def _add_storage_commands(commands: Any) -> None:
    migrate = commands.add_parser(
        "migrate",
        help="bring the shared database's schema up to date (serve also does it on start)",
        description="Apply the schema migrations the shared database (database_url) lacks. "
        "Safe to run from several replicas at once: they take turns under a database lock.",
    )
    migrate.add_argument("--config", type=Path, metavar="FILE", help="YAML config file")
    _add_settings(migrate, STORAGE_SETTINGS)
    migrate.set_defaults(handler=cmd_migrate, settings_names=STORAGE_SETTINGS)

    storage = commands.add_parser(
        "storage",
        help="check the shared storage, or copy between embedded and shared storage",
        description="check: connectivity, permissions and the schema version of the shared "
        "database and object store. import: copy the embedded storage of a cache folder (its "
        "SQLite files, tarballs and saved packuments) into the shared storage. export: copy "
        "the shared storage into a cache folder. Rows and files already there are kept.",
    )
    storage.add_argument("action", choices=("check", "import", "export"))
    storage.add_argument(
        "--embedded",
        type=Path,
        metavar="DIR",
        help="the cache folder to import from or export to (default: cache_dir)",
    )
    storage.add_argument("--config", type=Path, metavar="FILE", help="YAML config file")
    _add_settings(storage, STORAGE_SETTINGS)
    storage.set_defaults(handler=cmd_storage, settings_names=STORAGE_SETTINGS)


def cmd_migrate(args: argparse.Namespace) -> int:
    from proxy.storage.sql import migrate

    settings = _settings_from(args, args.settings_names)
    setup_logging(settings.log_level)
    if settings.database_url is None:
        raise FloodgateError(
            "no shared database to migrate: set database_url (the embedded SQLite files "
            "are brought up to date when they are opened)"
        )
    try:
        before, after = migrate(settings.database_url)
    except Exception as exc:
        if not isinstance(exc, database_errors()):
            raise
        raise FloodgateError(f"the shared database cannot be migrated: {exc}") from None
    if before == after:
        print(f"schema at version {after}: nothing to do")
    else:
        print(f"schema migrated from version {before} to {after}")
    return EXIT_OK


def cmd_storage(args: argparse.Namespace) -> int:
    from proxy.storage import ops

    settings = _settings_from(args, args.settings_names)
    setup_logging(settings.log_level)
    if args.action == "check":
        lines = ops.check(settings)
        for line in lines:
            mark = "ok  " if line.ok else "FAIL"
            print(printable(f"{mark} {line.what}: {line.detail}"))
        return EXIT_OK if all(line.ok for line in lines) else EXIT_FLAGGED
    if settings.database_url is None and settings.blob_store is None:
        raise FloodgateError(
            f"storage {args.action} needs a shared storage: set database_url and/or blob_store"
        )
    embedded = args.embedded or settings.cache_dir
    up = args.action == "import"
    if not up:
        ensure_cache_dir(embedded)
    report = ops.copy_storage(embedded, settings, up=up)
    for text in report.lines():
        print(printable(text))
    return EXIT_OK if not report.skipped else EXIT_FLAGGED


def _add_explain_arguments(
    parser: argparse.ArgumentParser, metavar: str, handler: Callable[[argparse.Namespace], int]
) -> None:
    """The arguments `policy explain` takes (and `why`, which falls back to it)."""
    parser.add_argument("spec", metavar=metavar)
    parser.add_argument(
        "--group",
        metavar="GROUP",
        help="explain with the policy of this token group (group_policies; default: the base "
        "policy, which anonymous callers get)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--metadata-only", action="store_true", help="do not download and scan the tarball"
    )
    parser.add_argument("--config", type=Path, metavar="FILE", help="YAML config file")
    names = (*COMMON_SETTINGS, "policy", "group_policies", "internal_scopes", "internal_names")
    _add_settings(parser, names)
    parser.set_defaults(handler=handler, settings_names=names)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from proxy.app import create_app
    from proxy.web.server import listening_socket, raise_descriptor_limit, server_config
    from proxy.workers import limit_malloc_arenas

    limit_malloc_arenas()  # before any thread starts
    settings = _settings_from(args, args.settings_names)
    setup_logging(settings.log_level)
    ensure_cache_dir(settings.cache_dir)
    settings = resolve_upstream(settings)
    try:
        sock = listening_socket(settings.host, settings.port)
    except OSError as exc:
        raise FloodgateError(
            f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}"
        ) from exc
    port = sock.getsockname()[1]
    from dataclasses import replace

    settings = replace(settings, port=port)
    try:
        app = create_app(settings)  # a malformed policy stops us here
    except BaseException:
        sock.close()
        raise
    remember_upstream(settings.cache_dir, settings.upstream_url)
    config = server_config(app, settings, timeout_graceful_shutdown=GRACE_SECONDS)
    log.debug("open-file limit: %d", raise_descriptor_limit())
    server = uvicorn.Server(config)
    display_host = f"[{settings.host}]" if sock.family == socket.AF_INET6 else settings.host
    log.info("Floodgate %s listening on http://%s:%d/", __version__, display_host, port)
    # uvicorn stops on SIGINT and SIGTERM (finishing requests in flight, at most GRACE_SECONDS)
    # and then raises the signal again: that is a normal stop here, exit 0, no traceback.
    previous = signal.signal(signal.SIGTERM, _stopped_by_signal)
    try:
        server.run(sockets=[sock])
    except (KeyboardInterrupt, _Stopped):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    log.info("Floodgate stopped")
    return EXIT_OK


GRACE_SECONDS = 5  # requests in flight when asked to stop get this long to finish


class _Stopped(Exception):
    """SIGTERM arrived (re-raised by uvicorn after its graceful shutdown)."""


def _stopped_by_signal(signum: int, frame: object) -> None:
    raise _Stopped


def cmd_scan(args: argparse.Namespace) -> int:
    import anyio
    import orjson

    from proxy.detect import scan
    from proxy.inspect import open_detector

    if not args.targets and not args.tarball:
        raise FloodgateError("nothing to scan: give NAME[@VERSION|@RANGE] or --tarball FILE")
    settings = _settings_from(args, args.settings_names)
    setup_logging(settings.log_level)
    ensure_cache_dir(settings.cache_dir)
    inspector = open_detector(settings)
    detector, store = inspector.detector, inspector.verdicts
    targets = [scan.Target.parse(t) for t in args.targets]
    progress = Progress(sys.stderr, len(targets) + len(args.tarball))
    outcomes: list[scan.Outcome] = []
    for path in args.tarball:
        outcomes.append(scan.scan_file(detector, path))
        progress.step(str(path))

    async def remote() -> None:
        from proxy.upstream.client import UpstreamClient

        client = UpstreamClient(resolve_upstream(settings))
        try:
            for target in targets:
                try:
                    found = await scan.scan_target(
                        client, detector, target, store, args.metadata_only
                    )
                except FloodgateError as exc:
                    found = [scan.Outcome(str(target), error=str(exc))]
                outcomes.extend(found)
                progress.step(str(target))
        finally:
            await client.aclose()

    with inspector:
        if targets:
            anyio.run(remote)
    if args.json:
        body = {"verdicts": [o.to_json() for o in outcomes], "exit": scan.exit_code(outcomes)}
        print(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
    else:
        print(terminal_text("\n".join(scan.render(o) for o in outcomes)))
    return scan.exit_code(outcomes)


def cmd_policy_check(args: argparse.Namespace) -> int:
    from proxy.errors import PolicyError
    from proxy.policy.holder import resolve_policy_path
    from proxy.policy.loader import load_policy, policy_warnings

    status = EXIT_OK
    for name in args.files:
        try:
            policy = load_policy(resolve_policy_path(name))
        except PolicyError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = EXIT_ERROR
            continue
        print(
            f"{policy.source}: ok ({policy.name}, {len(policy.rules)} rules, "
            f"{len(policy.waivers)} waivers, mode {policy.mode}, digest {policy.digest})"
        )
        for warning in policy_warnings(policy, date.today()):
            print(f"warning: {policy.source}: {warning}", file=sys.stderr)
    return status


def cmd_policy_explain(args: argparse.Namespace) -> int:
    import anyio
    import orjson

    from proxy.explain import Explanation, explain
    from proxy.inspect import open_detector
    from proxy.internal import InternalNames
    from proxy.policy.holder import resolve_policy_path
    from proxy.policy.loader import load_policy, split_spec
    from proxy.policy.model import Action
    from proxy.upstream.client import UpstreamClient

    settings = resolve_upstream(ensure_settings(args))
    setup_logging("warning" if settings.log_level == "info" else settings.log_level)
    group = getattr(args, "group", None)
    policy = load_policy(resolve_policy_path(settings.policy_for_group(group)))
    internal = InternalNames.of(settings.internal_scopes, settings.internal_names)
    name, _ = split_spec(args.spec)
    if internal.is_internal(name):
        raise FloodgateError(internal.refusal(name))

    async def run() -> Explanation:
        client = UpstreamClient(settings)
        try:
            return await explain(
                client,
                detector,
                policy,
                args.spec,
                not args.metadata_only,
                shadows=internal.shadowed(name),
            )
        finally:
            await client.aclose()

    with open_detector(settings) as inspector:
        detector = inspector.detector
        result = anyio.run(run)
    if args.json:
        print(orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        print(terminal_text(result.render()))
    refused = result.decision.action in (Action.HIDE, Action.BLOCK)
    return EXIT_FLAGGED if refused else EXIT_OK


def cmd_audit(args: argparse.Namespace) -> int:
    import anyio
    import orjson

    from proxy import __version__ as version
    from proxy.audit import report, sarif, sbom
    from proxy.audit.lockfile import find_lockfile, read_lockfile
    from proxy.audit.model import Audited
    from proxy.audit.run import Auditor
    from proxy.inspect import open_detector
    from proxy.internal import InternalNames
    from proxy.policy.holder import resolve_policy_path
    from proxy.policy.loader import load_policy
    from proxy.upstream.client import UpstreamClient

    settings = resolve_upstream(ensure_settings(args))
    setup_logging("warning" if settings.log_level == "info" else settings.log_level)
    lockfile = read_lockfile(find_lockfile(args.path))
    policy = load_policy(resolve_policy_path(settings.policy))
    progress = Progress(sys.stderr, len(lockfile.packages), verb="audited")

    async def run() -> tuple[list[Audited], int]:
        client = UpstreamClient(settings)
        internal = InternalNames.of(settings.internal_scopes, settings.internal_names)
        hosted = hosted_packages(settings) if internal else None
        auditor = Auditor(
            client,
            inspector.detector,
            inspector.verdicts,
            policy,
            scan_tarballs=not args.metadata_only,
            concurrency=max(1, args.concurrency),
            internal=internal,
            internal_source=hosted,
        )
        try:
            results = await auditor.audit(lockfile, lambda a: progress.step(a.package.spec))
        finally:
            await client.aclose()
            if hosted is not None:
                await hosted.aclose()
        return results, auditor.unreachable

    with open_detector(settings) as inspector:
        results, unreachable = anyio.run(run)
    project_dir = args.path if args.path.is_dir() else args.path.parent
    if args.format == "json":
        text = orjson.dumps(report.to_json(lockfile, results), option=orjson.OPT_INDENT_2).decode()
    elif args.format == "sarif":
        log_ = sarif.to_sarif(lockfile, results, tool_version=version, project_dir=project_dir)
        text = orjson.dumps(log_, option=orjson.OPT_INDENT_2).decode()
    else:
        width = shutil.get_terminal_size((120, 24)).columns if sys.stdout.isatty() else 120
        text = report.render_table(lockfile, results, show_all=args.all, width=width)
    if args.output:
        args.output.write_text(text + "\n", encoding="utf-8")
    else:
        print(terminal_text(text))
    if args.sbom:
        bom = sbom.to_cyclonedx(lockfile, results, tool_version=version)
        args.sbom.write_text(
            orjson.dumps(bom, option=orjson.OPT_INDENT_2).decode() + "\n", encoding="utf-8"
        )
    if unreachable:
        print(
            f"floodgate: error: could not audit {unreachable} package(s): the upstream "
            f"{settings.upstream} could not be reached",
            file=sys.stderr,
        )
        return EXIT_ERROR
    return EXIT_FLAGGED if any(r.blocked for r in results) else EXIT_OK


def hosted_packages(settings: Settings) -> HostedRegistry | None:
    """The packages a Floodgate with these settings hosts, to read (audit): its hosted store
    in the cache folder when there is one, or the shared database's; None when it hosts none
    (an embedded store that does not exist is not created)."""
    from proxy.hosted.access import HostedAccess
    from proxy.hosted.registry import HostedRegistry
    from proxy.hosted.store import HOSTED_DIR, HOSTED_FILE
    from proxy.internal import InternalNames
    from proxy.storage.backends import open_database, open_hosted_store

    if (
        settings.database_url is None
        and not (settings.cache_dir / HOSTED_DIR / HOSTED_FILE).exists()
    ):
        return None
    db = open_database(settings)
    return HostedRegistry(
        open_hosted_store(settings, db),
        HostedAccess(),  # reading only: access is the serving Floodgate's to check
        InternalNames.of(settings.internal_scopes, settings.internal_names),
        max_publish_bytes=settings.max_publish_mb * 1024 * 1024,
    )


WHY_VERSIONS = 5  # versions shown by `floodgate why NAME`


def cmd_why(args: argparse.Namespace) -> int:
    import orjson

    from proxy.policy.loader import split_spec
    from proxy.storage.backends import query_decisions

    settings = _settings_from(args, args.settings_names)
    name, version = split_spec(args.spec)
    rows = query_decisions(settings, package=name, limit=1000, group=args.group)
    latest = latest_refusals(rows, version)
    if not latest:
        print(
            f"no decision on {args.spec} in the log under {settings.cache_dir}; "
            "asking the policy now",
            file=sys.stderr,
        )
        return cmd_policy_explain(args)
    if args.json:
        print(orjson.dumps({"decisions": [r.to_json() for r in latest]}).decode())
    else:
        print(terminal_text("\n".join(explain_decision(r) for r in latest)))
    return EXIT_FLAGGED if latest[0].action in ("hide", "block") else EXIT_OK


def latest_refusals(rows: Iterable[DecisionRecord], version: str | None) -> list[DecisionRecord]:
    """The newest decision that did (or would have done) something, per version, newest
    first, for `version` only when given (pure; `rows` are newest first)."""
    seen: dict[str, DecisionRecord] = {}
    for r in rows:
        if version is not None and r.version != version:
            continue
        if r.action == "allow" and r.intended == "allow":
            continue
        seen.setdefault(r.version, r)
    return list(seen.values())[:WHY_VERSIONS]


def explain_decision(r: DecisionRecord) -> str:
    """One decision as a paragraph: what, by which rule and policy, when, and every reason."""
    import time

    action = {"block": "blocked", "hide": "hidden", "warn": "warned about"}.get(r.action, r.action)
    if r.action != r.intended:
        action = f"{action} (the rule says {r.intended})"
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.time))
    score = r.score if r.score is not None else "-"
    lines = [
        f"{r.package}@{r.version}: {action} by rule {r.rule or '-'!r} of policy {r.policy!r}",
        f"  last decided {when} ({r.via}, client {r.client}"
        f"{f', token {r.group}/{r.token}' if r.group else ''}); verdict {r.label or '-'}/{score}",
    ]
    if r.waiver:
        lines.append(f"  waiver: {r.waiver}")
    lines += [f"  - {reason}" for reason in r.reasons]
    return "\n".join(lines)


def _token_store(args: argparse.Namespace) -> contextlib.AbstractContextManager[TokenStorage]:
    """The token store the settings name: the cache folder's, or the shared database's."""
    from proxy.storage.backends import token_store

    return token_store(ensure_settings(args))


def cmd_token_create(args: argparse.Namespace) -> int:
    import orjson

    with _token_store(args) as store:
        token = store.create(args.group, args.name)
    if args.json:
        print(orjson.dumps({"name": args.name, "group": args.group, "token": token}).decode())
        return EXIT_OK
    print(token)
    print(
        f"token {args.name!r} for group {args.group!r}: shown once, only its hash is kept. "
        "Clients: //<floodgate host>/:_authToken=<token> in .npmrc "
        "(yarn 4: npmAuthToken, with npmAlwaysAuth: true)",
        file=sys.stderr,
    )
    return EXIT_OK


def cmd_token_list(args: argparse.Namespace) -> int:
    import orjson

    with _token_store(args) as store:
        tokens = store.list()
    if args.json:
        for t in tokens:
            print(orjson.dumps(t.to_json()).decode())
        return EXIT_OK
    for line in token_table(tokens):
        print(printable(line))
    return EXIT_OK


def token_table(tokens: Sequence[Any]) -> list[str]:
    """Tokens as aligned columns (pure)."""
    import time

    def when(t: float | None) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t is not None else "never"

    rows = [("NAME", "GROUP", "CREATED", "LAST USED")]
    rows += [(t.name, t.group, when(t.created), when(t.last_used)) for t in tokens]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return [
        "  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[-1]]) for r in rows
    ]


def cmd_token_revoke(args: argparse.Namespace) -> int:
    with _token_store(args) as store:
        info = store.revoke(args.name)
    print(
        f"revoked token {info.name!r} (group {info.group!r}); a running Floodgate refuses it "
        "within seconds"
    )
    return EXIT_OK


def _since(text: str) -> float:
    import time
    from datetime import datetime

    from proxy.policy.loader import parse_duration

    age = parse_duration(text)
    if age is not None:
        return time.time() - age.total_seconds()
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise FloodgateError(
            f"--since {text!r}: expected an age like 1h or 7d, or an ISO time"
        ) from None


def cmd_decisions(args: argparse.Namespace) -> int:
    import orjson

    from proxy.storage.backends import decisions_path, query_decisions

    settings = _settings_from(args, args.settings_names)
    path = decisions_path(settings)
    if settings.database_url is None and not path.exists():
        raise FloodgateError(
            f"no decision log at {path} (has `floodgate serve` run with this cache?)"
        )
    since = _since(args.since) if args.since else None
    rows = query_decisions(
        settings,
        package=args.package,
        actions=args.action,
        since=since,
        limit=args.limit or None,
        group=args.group,
        token=args.token,
    )
    if args.json:
        for r in rows:
            print(orjson.dumps(r.to_json()).decode())
        return EXIT_OK
    for line in decision_table(list(rows)):
        print(printable(line))
    return EXIT_OK


DECISION_COLUMNS = (
    "TIME", "ACTION", "PACKAGE", "RULE", "LABEL", "VIA", "CLIENT", "WHO", "REASON",
)  # fmt: skip
MAX_REASON = 120  # characters of the first reason in the table


def decision_table(rows: Sequence[DecisionRecord]) -> list[str]:
    """The decisions as aligned columns under a header; the reason comes last (pure)."""
    import time

    table = [DECISION_COLUMNS]
    for r in rows:
        action = r.action if r.action == r.intended else f"{r.action}({r.intended})"
        score = r.score if r.score is not None else "-"
        table.append(
            (
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.time)),
                action,
                f"{r.package}@{r.version}",
                r.rule or "-",
                f"{r.label or '-'}/{score}",
                r.via,
                r.client,
                f"{r.group}/{r.token}" if r.group else "anonymous",
                (r.reasons[0] if r.reasons else "")[:MAX_REASON],
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(DECISION_COLUMNS) - 1)]
    return [
        "  ".join(
            [*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]]
        ).rstrip()
        for row in table
    ]


def cmd_campaigns(args: argparse.Namespace) -> int:
    import orjson

    from proxy.detect.evaluate import INDEX_FILE, Detector
    from proxy.inspect import detector_dir
    from proxy.storage.backends import open_database

    settings = _settings_from(args, args.settings_names)
    folder = detector_dir(settings)
    db = open_database(settings, run_migrations=False)  # the shared one, when set
    if db is None and not (folder / INDEX_FILE).exists():
        raise FloodgateError(
            f"no detector index at {folder / INDEX_FILE} (has Floodgate scanned with this cache?)"
        )
    detector = Detector.open(folder, db=db)
    try:
        clusters = detector.campaign_list(max(2, args.min_size))
    finally:
        detector.close()
    for c in clusters:
        if args.json:
            print(orjson.dumps(c.to_json()).decode())
            continue
        links = ", ".join(f"{k} {n}" for k, n in c.links.items())
        more = f" (+{c.size - 10} more)" if c.size > 10 else ""
        print(f"{c.id}  {c.size:>4} members  links: {links}")
        print(f"    {', '.join(c.members[:10])}{more}")
    if not clusters and not args.json:
        print("no campaigns")
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    from functools import partial

    from proxy.doctor import run_checks
    from proxy.upstream.feed import ping

    settings = _settings_from(args, args.settings_names)
    setup_logging(settings.log_level)
    checks = run_checks(settings, partial(ping, ca_file=settings.ca_file), date.today())
    for check in checks:
        print(check.render())
    problems = [c for c in checks if not c.ok]
    print(f"{len(problems)} problem(s)" if problems else "healthy")
    return EXIT_FLAGGED if problems else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.handler(args)
        return result
    except FloodgateError as exc:
        print(f"floodgate: error: {terminal_text(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_ERROR
