"""The package graph answers each distinct question once until the graph changes."""

from __future__ import annotations

from typing import Any

from proxy.detect.db import Database
from proxy.detect.graph import SCHEMA, PackageGraph
from proxy.detect.model import Label


class CountingDatabase(Database):
    def __init__(self) -> None:
        super().__init__(None, SCHEMA)
        self.queries = 0

    def query(self, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        self.queries += 1
        return super().query(sql, params)


def test_versions_sharing_a_dependency_set_ask_the_database_once() -> None:
    db = CountingDatabase()
    graph = PackageGraph(db=db)
    graph.record("ring-b", ["ring-a"], Label.SPAM)
    db.queries = 0
    answers = [
        (graph.flagged(["ring-b", "lodash"]), graph.cycles("ring-a", ["ring-b", "lodash"]))
        for _ in range(100)  # a hundred versions with the same dependencies
    ]
    assert answers[0] == ({"ring-b": "spam"}, (("ring-a", "ring-b", "ring-a"),))
    assert all(a == answers[0] for a in answers)
    first_round = db.queries
    assert 0 < first_round <= 4  # one flagged query, a few edge lookups for the cycle search
    graph.flagged(["lodash", "ring-b"])  # the same set in another order: still memoised
    assert db.queries == first_round


def test_a_recorded_change_makes_older_answers_stale() -> None:
    graph = PackageGraph()
    assert graph.flagged(["fg-x"]) == {}
    assert graph.cycles("fg-y", ["fg-x"]) == ()
    graph.record("fg-x", ["fg-y"], Label.SPAM)
    assert graph.flagged(["fg-x"]) == {"fg-x": "spam"}
    assert graph.cycles("fg-y", ["fg-x"]) == (("fg-y", "fg-x", "fg-y"),)


def test_record_says_when_others_ring_findings_can_change() -> None:
    graph = PackageGraph()
    assert not graph.record("fg-user", ["fg-x", "lodash"], Label.CLEAN)  # an ordinary record
    assert not graph.record("fg-lone", [], Label.SPAM)  # spam, but nobody depends on it
    assert graph.record("fg-x", [], Label.SPAM)  # fg-user depends on it
    assert not graph.record("fg-x", [], Label.SPAM)  # no change
    assert not graph.record("fg-x", [], Label.SUSPICIOUS)  # a name keeps its worst label
    assert graph.record("fg-x", [], Label.MALICIOUS)  # no longer counted as a spam dependency
    # edges that close a cycle (as the caller found) matter when they are new
    assert graph.record("fg-x", ["fg-user"], Label.MALICIOUS, closes_cycle=True)
    assert not graph.record("fg-x", ["fg-user"], Label.MALICIOUS, closes_cycle=True)
    assert graph.dependencies("fg-x") == {"fg-user": ""}
    assert graph.dependencies("fg-nobody") == {}
