"""The real npm client through a running `floodgate serve`: scrape `/-/metrics`, install,
scrape again; the counters moved by what the install did."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import publish_basics
from tests.e2e.npm import floodgate, installed_version, needs_npm, npm, write_project
from tests.fakes.packages import farm
from tests.fakes.registry import running_registry
from tests.web.test_metrics import Samples, parse, value

pytestmark = [pytest.mark.e2e, needs_npm]


def scrape(url: str) -> Samples:
    r = httpx.get(f"{url}/-/metrics", timeout=10)
    assert r.status_code == 200
    return parse(r.text)


def test_metrics_follow_an_npm_install(tmp_path: Path) -> None:
    with running_registry() as (registry, _server):
        publish_basics(registry)
        registry.add("fg-farm", farm("1.0.0"))
        (tmp_path / "fg").mkdir()
        with floodgate(registry.url, tmp_path / "fg", "--prefetch-scans", "0") as gate:
            ready = httpx.get(f"{gate.url}/-/ready", timeout=10)
            assert ready.status_code == 200, ready.text
            before = scrape(gate.url)
            project = write_project(tmp_path / "app", {"fg-alpha": "^1.0.0"})
            npm(["install"], project, gate.url, tmp_path / "npm-cache")
            assert installed_version(project, "fg-alpha") == "1.1.0"
            refused = write_project(tmp_path / "bad", {"fg-farm": "1.0.0"})
            done = npm(["install"], refused, gate.url, tmp_path / "npm-cache", check=False)
            assert done.returncode != 0
            after = scrape(gate.url)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "floodgate_requests_total"
    # fg-alpha, fg-beta, @fg-scope/gamma, fg-farm packuments; three tarballs installed.
    assert delta(requests, route="/{package}", method="GET", status="200") >= 4
    assert delta(requests, route="/{package}/-/{file}", method="GET", status="200") == 3
    # The farm's tarball: redirected to its blocked URL, which answers 451.
    assert delta(requests, route="/{package}/-/{file}", method="GET", status="302") >= 1
    blocked_route = "/-/blocked/{reason}/{package}/-/{file}"
    assert delta(requests, route=blocked_route, method="GET", status="451") >= 1
    # Each was a miss, or a hit on what was fetched ahead for the packument that depends on it.
    cached = sum(
        delta("floodgate_cache_total", route="/{package}", state=s) for s in ("miss", "hit")
    )
    assert cached >= 4
    assert delta("floodgate_cache_total", route="/{package}", state="miss") >= 1
    assert delta("floodgate_upstream_request_seconds_count", kind="packument") >= 4
    assert delta("floodgate_upstream_request_seconds_count", kind="tarball") == 4
    assert delta("floodgate_scan_seconds_count") == 4
    blocks = sum(
        v - before.get((name, labels), 0.0)
        for (name, labels), v in after.items()
        if name == "floodgate_decisions_total" and ("action", "block") in labels
    )
    assert blocks >= 1
    assert value(after, "floodgate_upstream_up") == 1
