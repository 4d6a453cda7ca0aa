"""Upstream- and client-controlled text never reaches a terminal or a log raw (defects 9, 10)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from proxy.cli import main
from proxy.decisions import DecisionLog, DecisionRecord
from proxy.log import SafeFormatter, printable, terminal_text
from tests.conftest import ProxyFactory
from tests.fakes.packages import make_tarball

ESC = "\x1b"


@pytest.mark.parametrize(
    ("raw", "line", "block"),
    [
        ("plain text", "plain text", "plain text"),
        ("a\nb", "a\\nb", "a\nb"),
        ("\x1b[2J", "\\x1b[2J", "\\x1b[2J"),
        ("bell\x07", "bell\\x07", "bell\\x07"),
        ("cr\rover", "cr\\rover", "cr\\rover"),
        ("c1\x9b31m", "c1\\x9b31m", "c1\\x9b31m"),
        ("bidi\u202egnp.exe", "bidi\\u202egnp.exe", "bidi\\u202egnp.exe"),
        ("caf\u00e9 \u2713", "caf\u00e9 \u2713", "caf\u00e9 \u2713"),
    ],
)
def test_escaping_table(raw: str, line: str, block: str) -> None:
    assert printable(raw) == line
    assert terminal_text(raw) == block


def test_log_records_stay_one_line() -> None:
    record = logging.LogRecord(
        "x", logging.WARNING, __file__, 1, "upstream said %s", ("ok\n2026 FAKE\x1b[31m",), None
    )
    out = SafeFormatter("%(levelname)s %(message)s").format(record)
    assert out == "WARNING upstream said ok\\n2026 FAKE\\x1b[31m"


def test_access_log_escapes_the_decoded_path(
    make_proxy: ProxyFactory, capfd: pytest.CaptureFixture[str]
) -> None:
    proxy = make_proxy()
    proxy.client.get("/-/nothing%0a2026-01-01 00:00:00,000 INFO    forged")
    proxy.client.get("/-/x%1b%5b2J%1b%5d0%3bpwned%07")
    proxy.stop()  # flushes the access log
    err = capfd.readouterr().err
    assert ESC not in err
    assert "\x07" not in err
    assert not any(line.endswith("INFO    forged") for line in err.splitlines())
    assert "/-/nothing\\n2026-01-01" in err
    assert "/-/x\\x1b[2J\\x1b]0;pwned\\x07" in err


def test_scan_output_escapes_tarball_strings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = {"name": "fg-escape", "version": "1.0.0-\x1b[2Jx", "main": "index.js"}
    tea = b"---\nversion: 1.0.0\ncodeOwners:\n  - '0x723332A6f259f8457e71a346566466036a5Eb3C8'\n"
    target = tmp_path / "evil.tgz"
    target.write_bytes(
        make_tarball(
            {
                "package.json": json.dumps(manifest).encode(),
                "tea.yaml": tea,
                "lib\x1b]0;pwned\x07/tea.yaml": tea,
            }
        )
    )
    main(["scan", "--cache-dir", str(tmp_path / "cache"), "--tarball", str(target)])
    out = capsys.readouterr().out
    assert "fg-escape" in out
    assert ESC not in out
    assert "\x07" not in out
    assert "\\x1b" in out


def test_decisions_output_escapes_logged_strings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    log = DecisionLog(cache / "decisions.sqlite3")
    log.record(
        DecisionRecord(
            time=time.time(),
            package="fg-evil",
            version="1.0.0\x1b[2J",
            action="block",
            intended="block",
            rule="malicious",
            label="malicious",
            score=90,
            reasons=("a reason with \x1b]0;title\x07 in it",),
            waiver="",
            via="tarball",
            client="127.0.0.1",
            user_agent="npm\x1b[31m",
            token="",
            request_id="1",
            policy="default",
            policy_digest="d",
        )
    )
    log.close()
    for argv in (["decisions"], ["why", "fg-evil"]):
        main([*argv, "--cache-dir", str(cache)])
        out = capsys.readouterr().out
        assert "fg-evil" in out, argv
        assert ESC not in out, argv
        assert "\x07" not in out, argv
