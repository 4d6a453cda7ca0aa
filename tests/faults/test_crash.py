"""kill -9 at the worst moments: nothing half-written, no refusal unrecorded (defects 11, 12)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from proxy.decisions import query

RECORDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from proxy.decisions import DecisionLog, DecisionRecord

    log = DecisionLog(Path(sys.argv[1]))
    count = int(sys.argv[2])
    for i in range(count):
        action = "block" if i % 2 == 0 else "allow"
        log.record(DecisionRecord(
            time=time.time(), package=f"fg-{i}", version="1.0.0", action=action,
            intended=action, rule="r", label=None, score=None, reasons=("why",), waiver="",
            via="tarball", client="127.0.0.1", user_agent="", token="", request_id=str(i),
            policy="default", policy_digest="d",
        ))
    print("recorded", flush=True)
    time.sleep(600)
    """
)


def test_kill_9_after_recording_loses_no_block(tmp_path: Path) -> None:
    db = tmp_path / "decisions.sqlite3"
    count = 2000
    with subprocess.Popen(
        [sys.executable, "-c", RECORDER, str(db), str(count)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "recorded"
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(30)
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        conn.close()
    blocks = list(query(db, actions=["block"]))
    assert len(blocks) == count // 2  # every block, whatever happened to the batched allows
