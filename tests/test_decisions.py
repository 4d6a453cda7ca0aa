from __future__ import annotations

import sqlite3
from pathlib import Path

from proxy.decisions import SCHEMA, DecisionLog, DecisionRecord, query


def record(package: str, group: str = "", token: str = "") -> DecisionRecord:
    return DecisionRecord(
        time=1.0,
        package=package,
        version="1.0.0",
        action="block",
        intended="block",
        rule="spam",
        label="spam",
        score=90,
        reasons=("a tea.yaml wallet",),
        waiver="",
        via="packument",
        client="npm",
        user_agent="npm/11",
        token=token,
        request_id="1",
        policy="default",
        policy_digest="d",
        group=group,
    )


def old_log(path: Path) -> None:
    """A decision log as Floodgate wrote it before groups existed (no client_group column)."""
    old = SCHEMA.replace(",\n    client_group TEXT NOT NULL DEFAULT ''", "")
    assert "client_group" not in old
    conn = sqlite3.connect(path)
    conn.executescript(old)
    conn.execute(
        "INSERT INTO decisions (time, package, version, action, intended, rule, label, score,"
        " reasons, waiver, via, client, user_agent, token, request_id, policy, policy_digest)"
        " VALUES (0.5, 'old-pkg', '1.0.0', 'block', 'block', 'spam', 'spam', 90, '[]', '',"
        " 'packument', 'npm', 'npm/10', '', '0', 'default', 'd')"
    )
    conn.commit()
    conn.close()


def test_group_and_token_name_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "decisions.db"
    log = DecisionLog(path)
    log.record(record("spam-pkg", group="ci", token="runner-7"))
    log.close()
    [found] = query(path)
    assert (found.group, found.token) == ("ci", "runner-7")
    assert found.to_json()["group"] == "ci"


def test_an_older_log_is_read_and_then_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "decisions.db"
    old_log(path)
    [found] = query(path)  # read-only: the missing column reads as its default
    assert (found.package, found.group) == ("old-pkg", "")
    log = DecisionLog(path)  # opening for writing adds the column, keeping the rows
    log.record(record("new-pkg", group="developers"))
    log.close()
    assert [(r.package, r.group) for r in query(path)] == [
        ("new-pkg", "developers"),
        ("old-pkg", ""),
    ]
