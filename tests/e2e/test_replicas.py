"""Three `floodgate serve` replicas sharing one PostgreSQL and one S3 store, behind a tiny
round-robin proxy on loopback, driven by the real npm client (the fake upstream counts what
they ask of it)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.conftest import publish_basics
from tests.e2e.balancer import RoundRobin
from tests.e2e.npm import Floodgate, installed_version, needs_npm, npm, serve, write_project
from tests.fakes.packages import FakeVersion, farm
from tests.fakes.registry import FakeRegistry, UvicornThread, running_registry
from tests.servers import Postgres, S3Server, wait_for

pytestmark = [pytest.mark.e2e, needs_npm]

DEPENDENCIES = {"fg-alpha": "^1.0.0", "@fg-scope/gamma": "1.0.0"}
DEFAULT_POLICY = (Path(__file__).resolve().parents[2] / "policies" / "default.yaml").read_text()


@dataclass
class Cluster:
    upstream: FakeRegistry
    balancer: RoundRobin
    url: str
    replicas: list[Floodgate]
    database: str
    postgres: Postgres
    policy: Path

    start_replica: Callable[..., Floodgate]  # (name, *extra serve arguments)

    def tarball_fetches(self) -> Counter[str]:
        return Counter(s.path for s in self.upstream.seen if s.path.endswith(".tgz"))

    def sql(self, statement: str, *params: object) -> list[tuple[object, ...]]:
        with psycopg.connect(self.database, autocommit=True) as conn:
            cur = conn.execute(statement, list(params))
            return cur.fetchall() if cur.description is not None else []


@pytest.fixture(scope="module")
def cluster(
    postgres: Postgres, s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    database = postgres.create_database()
    bucket = s3_server.bucket
    work = tmp_path_factory.mktemp("replicas")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOODGATE_")}
    env.update(s3_server.env())
    balancer = RoundRobin()
    policy = work / "policy.yaml"  # one file for all (a shared volume or a config map)
    policy.write_text(DEFAULT_POLICY)
    with ExitStack() as stack, running_registry() as (upstream, _server):
        publish_basics(upstream)
        lb = UvicornThread(balancer.app())
        lb.start()
        stack.callback(lb.stop)

        def start(name: str, *extra: str) -> Floodgate:
            args = [
                "--upstream", upstream.url, "--port", "0",
                "--cache-dir", str(work / f"replica-{name}"), "--render-workers", "0",
                "--database-url", database, "--blob-store", f"s3://{bucket}/cluster",
                "--public-url", lb.url, "--policy", str(policy), *extra,
            ]  # fmt: skip
            return stack.enter_context(serve(args, work / f"replica-{name}.log", env=env))

        # The first revalidates at once: it is the one that learns of upstream changes.
        replicas = [start("0", "--packument-ttl", "0.01"), start("1"), start("2")]
        balancer.backends = [r.url for r in replicas]
        yield Cluster(upstream, balancer, lb.url, replicas, database, postgres, policy, start)


def test_npm_install_cold_then_warm_through_three_replicas(
    cluster: Cluster, tmp_path: Path
) -> None:
    project = write_project(tmp_path / "app", DEPENDENCIES)
    npm(["install"], project, cluster.url, tmp_path / "npm-cache")
    assert installed_version(project, "fg-alpha") == "1.1.0"
    assert installed_version(project, "fg-beta") == "2.1.0"
    assert installed_version(project, "@fg-scope/gamma") == "1.0.0"
    lock = json.loads((project / "package-lock.json").read_text())
    resolved = [v["resolved"] for k, v in lock["packages"].items() if k]
    assert all(url.startswith(cluster.url + "/") for url in resolved)  # the balancer's address
    for replica in cluster.replicas:  # every replica took part
        assert replica.logged(" GET /")
    # What npm installed, as the upstream saw it fetched (background prefetches of versions
    # npm does not install wait for a pause in client requests, and may come at any time).
    installed = {url.removeprefix(cluster.url) for url in resolved}
    fetched = +Counter({p: n for p, n in cluster.tarball_fetches().items() if p in installed})
    assert set(fetched) == installed, "the install fetched its tarballs"
    assert max(fetched.values()) == 1, f"a tarball was fetched more than once: {fetched}"

    # Warm: a fresh npm cache, no node_modules nor lockfile: nothing new from the upstream.
    shutil.rmtree(project / "node_modules")
    (project / "package-lock.json").unlink()
    npm(["install"], project, cluster.url, tmp_path / "npm-cache-2")
    assert installed_version(project, "fg-alpha") == "1.1.0"
    assert (
        +Counter({p: n for p, n in cluster.tarball_fetches().items() if p in installed}) == fetched
    )


def count_verdict_writes(cluster: Cluster) -> None:
    """Test instrumentation in the real database: every write of a verdict row is counted."""
    for statement in (
        "CREATE TABLE IF NOT EXISTS verdict_writes (name TEXT NOT NULL)",
        "CREATE OR REPLACE FUNCTION count_verdict_write() RETURNS trigger AS $$ BEGIN "
        "INSERT INTO verdict_writes VALUES (NEW.name); RETURN NEW; END $$ LANGUAGE plpgsql",
        "CREATE OR REPLACE TRIGGER verdict_write AFTER INSERT OR UPDATE ON verdicts "
        "FOR EACH ROW EXECUTE FUNCTION count_verdict_write()",
    ):
        cluster.sql(statement)


def test_one_cold_tarball_asked_of_all_three_at_once_is_fetched_and_scanned_once(
    cluster: Cluster,
) -> None:
    count_verdict_writes(cluster)
    cluster.upstream.add("fg-cold", FakeVersion("1.0.0"))
    path = cluster.upstream.tarball_path("fg-cold", "1.0.0")
    cluster.upstream.faults[path] = "hold"  # the first download waits for our signal
    results: dict[int, tuple[int, bytes]] = {}

    def get(i: int) -> None:
        got = httpx.get(cluster.replicas[i].url + path, timeout=60)
        results[i] = (got.status_code, got.content)

    threads = [threading.Thread(target=get, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    try:
        # One replica downloads; the two others wait on its lease in the database.
        wait_for(lambda: len(cluster.upstream.requests_for(path)) == 1, "the first download", 30)
        waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        wait_for(
            lambda: int(str(cluster.sql(waiting)[0][0])) == 2,
            "two replicas waiting on the lease",
            30,
        )
    finally:
        cluster.upstream.release.set()
        for t in threads:
            t.join(60)
    assert [results[i][0] for i in range(3)] == [200, 200, 200]
    assert results[0][1] == results[1][1] == results[2][1] == cluster.upstream.tarballs[path]
    assert len(cluster.upstream.requests_for(path)) == 1
    # One scan: the others waited on its lease and read the verdict it stored.
    scanned = "SELECT tarball_scanned FROM verdicts WHERE name = 'fg-cold'"
    assert cluster.sql(scanned) == [(1,)]
    assert cluster.sql("SELECT count(*) FROM verdict_writes WHERE name = 'fg-cold'") == [(1,)]


def test_a_verdict_made_on_one_replica_is_used_by_the_others(cluster: Cluster) -> None:
    cluster.upstream.add("fg-verdict", FakeVersion("1.0.0"))
    path = cluster.upstream.tarball_path("fg-verdict", "1.0.0")
    assert httpx.get(cluster.replicas[0].url + path, timeout=30).status_code == 200
    stored = "SELECT stored_at, tarball_scanned FROM verdicts WHERE name = 'fg-verdict'"
    wait_for(lambda: len(cluster.sql(stored)) == 1, "the verdict stored", 30)
    before = cluster.sql(stored)
    assert before[0][1] == 1  # made with the tarball
    for replica in cluster.replicas[1:]:
        assert httpx.get(replica.url + path, timeout=30).status_code == 200
    assert cluster.sql(stored) == before  # read by the others, not made again
    assert len(cluster.upstream.requests_for(path)) == 1


def test_a_packument_change_one_replica_learns_reaches_the_others(cluster: Cluster) -> None:
    cluster.upstream.add("fg-notify", FakeVersion("1.0.0"))
    one, other = cluster.replicas[0], cluster.replicas[2]

    def latest(replica: Floodgate) -> str:
        got = httpx.get(replica.url + "/fg-notify", timeout=30)
        assert got.status_code == 200
        return str(got.json()["dist-tags"]["latest"])

    assert latest(other) == "1.0.0"  # cached in its memory for packument_ttl (300s)
    assert latest(one) == "1.0.0"
    cluster.upstream.add("fg-notify", FakeVersion("1.1.0"), tags={"latest": "1.1.0"})
    # It revalidates at once (served stale meanwhile if that is slow), and tells the others.
    wait_for(lambda: latest(one) == "1.1.0", "the replica with a short TTL to revalidate", 20)
    wait_for(lambda: latest(other) == "1.1.0", "the other replica to drop its copy", 20)
    assert other.logged("listening for other replicas' changes")


def test_a_waiver_added_to_the_shared_policy_applies_on_every_replica(cluster: Cluster) -> None:
    cluster.upstream.add("fg-farm", farm("1.0.0"))
    path = cluster.upstream.tarball_path("fg-farm", "1.0.0")
    for replica in cluster.replicas:
        refused = httpx.get(replica.url + path, timeout=30, follow_redirects=True)
        assert refused.status_code == 451
        assert "token-farming" in refused.text
    blocks = "SELECT count(*) FROM decisions WHERE package = 'fg-farm' AND action = 'block'"
    # One log, every refusal written before it was sent (the packument's and the tarball's).
    assert int(str(cluster.sql(blocks)[0][0])) >= 3
    expires = (date.today() + timedelta(days=1)).isoformat()
    waiver = (
        "waivers:\n  - package: fg-farm@1.0.0\n    reason: vetted by the security team\n"
        f"    owner: security@example.com\n    expires: {expires}\n"
    )
    cluster.policy.write_text(DEFAULT_POLICY.replace("waivers: []", waiver))

    def waived_everywhere() -> bool:
        codes = [
            httpx.get(r.url + path, timeout=30, follow_redirects=True).status_code
            for r in cluster.replicas
        ]
        return codes == [200, 200, 200]

    wait_for(waived_everywhere, "the waiver on every replica (policy reload interval)", 30)


def test_the_database_stopped_and_started_while_serving(cluster: Cluster, tmp_path: Path) -> None:
    cluster.upstream.add("fg-outage", FakeVersion("1.0.0"))
    path = cluster.upstream.tarball_path("fg-outage", "1.0.0")
    cluster.postgres.stop()
    try:
        # Warm and cold packages are served while the shared database is away.
        for replica in cluster.replicas:
            assert httpx.get(replica.url + "/fg-alpha", timeout=30).status_code == 200
        got = httpx.get(cluster.replicas[0].url + path, timeout=60)
        assert got.status_code == 200
        assert got.content == cluster.upstream.tarballs[path]
        ready = httpx.get(cluster.replicas[0].url + "/-/ready", timeout=30)
        assert ready.status_code == 200  # degraded, still serving
        assert ready.json()["ready"] is True
        assert any("the shared database cannot be reached" in w for w in ready.json()["warnings"])
        assert cluster.replicas[0].logged("the shared database cannot be reached")
        # A replica (re)started meanwhile starts, serves, and joins once the database is back.
        # It cannot know whether client tokens exist (they are in the database), so by default
        # (anonymous: auto) it refuses anonymous requests rather than open up; a deployment
        # without tokens says `anonymous: on`.
        late = cluster.start_replica("late", "--anonymous", "on")
        assert httpx.get(late.url + "/fg-alpha", timeout=30).status_code == 200
        assert late.logged("the shared database cannot be reached")
        cluster.replicas.append(late)
        closed = cluster.start_replica("late-auto")
        assert httpx.get(closed.url + "/fg-alpha", timeout=30).status_code == 401
    finally:
        cluster.postgres.start()

    def recovered() -> bool:
        for replica in cluster.replicas:
            body = httpx.get(replica.url + "/-/ready", timeout=30).json()
            if not body["storage"]["ok"]:
                return False
        return True

    wait_for(recovered, "every replica back on the shared database", 60)

    # Once the database says no token exists, the cautious replica serves anonymous requests.
    def anonymous_ok() -> bool:
        return httpx.get(closed.url + "/fg-alpha", timeout=30).status_code == 200

    wait_for(anonymous_ok, "anonymous requests served once the token count is known", 60)
    assert cluster.replicas[0].logged("the shared database answers again")
    # The decision made during the outage was kept and written once the database was back.
    decided = "SELECT count(*) FROM decisions WHERE package = 'fg-outage'"
    wait_for(lambda: int(str(cluster.sql(decided)[0][0])) >= 1, "the outage's decision written", 60)
    # And an install works through all three again.
    project = write_project(tmp_path / "app", DEPENDENCIES)
    npm(["install"], project, cluster.url, tmp_path / "npm-cache")
    assert installed_version(project, "fg-alpha") == "1.1.0"


def test_a_replica_killed_mid_install_the_install_completes(
    cluster: Cluster, tmp_path: Path
) -> None:
    victim = cluster.replicas[1]
    cluster.balancer.after[cluster.balancer.forwarded + 3] = lambda: victim.process.send_signal(
        signal.SIGKILL
    )
    project = write_project(tmp_path / "app", DEPENDENCIES)
    npm(["install"], project, cluster.url, tmp_path / "npm-cache")
    assert installed_version(project, "fg-alpha") == "1.1.0"
    assert installed_version(project, "fg-beta") == "2.1.0"
    assert victim.process.wait(10) == -signal.SIGKILL
    assert cluster.balancer.failovers >= 1  # requests meant for it went to the others
