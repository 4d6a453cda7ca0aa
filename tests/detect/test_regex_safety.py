"""No input makes the detector's text checks backtrack for ever.

A real tarball froze a running proxy: a pattern that repeated `//[^\\n]*\\n?\\s*` (a newline could
go to `\\n?` or to `\\s*`) backtracked exponentially on a file of comment lines followed by code,
holding the GIL. Every shape below is scanned by the whole detector in a child process; with an
exponential or quadratic pattern it would not finish within the bound.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SHAPES = {
    "comment lines then code": '"// comment\\n\\n" * 3000 + "function f() {}\\n"',
    "block comments then code": '"/* c */\\n " * 3000 + "let x = 1;\\n"',
    "whitespace": '"\\n \\t" * 30000 + "x"',
    "unclosed block comments": '"/*" * 20000',
    "braces": '"}" * 30000 + "()"',
    "a long IIFE": '"(function(){" + " " * 60000 + "})()"',
    "console.log floods": '"console.log(\\"a\\")" * 5000 + "x"',
    "use strict floods": '"\\"use strict\\";\\n" * 5000 + "y = 2"',
}


@pytest.mark.parametrize("shape", SHAPES.values(), ids=list(SHAPES))
def test_pathological_code_is_scanned_in_bounded_time(shape: str) -> None:
    script = textwrap.dedent(
        f"""
        import json
        from proxy.detect.evaluate import Detector
        from proxy.detect.facts import PackageFacts
        from proxy.npm.tarball import read_tarball
        from tests.fakes.packages import make_tarball

        code = ({shape}).encode()
        manifest = {{"name": "fg-regex", "version": "1.0.0", "main": "index.js"}}
        tgz = make_tarball({{"package.json": json.dumps(manifest).encode(), "index.js": code,
                             "lib/other.js": code}})
        facts = PackageFacts.name_only("fg-regex", "1.0.0")
        verdict = Detector().assess(facts, "1.0.0", read_tarball(tgz), record=False)
        print(verdict.label)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() in ("clean", "suspicious", "spam", "malicious")
