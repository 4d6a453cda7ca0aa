"""Evaluate the detector on a labelled corpus (the `cases.jsonl` format of shared/corpus).

    python bench/detect_eval.py --corpus DIR [--json] [--osv DIR_OR_ZIP] [--stress]

`--stress` also runs two variants built on the fly from the corpus: every tea.yaml/tea.yml
dropped from the spam cases (later waves of the campaign dropped the file), and a tea.yaml
naming a wallet (one per package, as a maintainer registering a project has) added to every
`benign_tree` case.

Every case goes through the same code path as the proxy: facts are built from the case
(`facts_from_case`) and assessed by a `Detector` with fresh in-memory indexes, cases in file
order. Only name, version, packument, files and texts are read; label, category, source and id
are used for scoring alone. The OSV index is loaded from `--osv`, else from DIR/osv when it
exists (malware records for other names, not the corpus's answers).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from proxy.detect.evaluate import Detector
from proxy.detect.facts import facts_from_case
from proxy.detect.model import Verdict
from proxy.detect.osv import OsvIndex, load_index
from proxy.npm.teafile import is_tea_path

SPAM, BENIGN = "spam", "benign"


def read_cases(path: Path) -> list[dict[str, Any]]:
    with path.open("rb") as fh:
        return [orjson.loads(line) for line in fh if line.strip()]


def tea_dropped(case: dict[str, Any]) -> dict[str, Any]:
    """`case` without its tea.yaml/tea.yml files (spam cases with files only)."""
    if case["label"] != SPAM or not isinstance(case.get("files"), list):
        return case
    files = [f for f in case["files"] if not is_tea_path(str(f["path"]))]
    texts = {p: t for p, t in (case.get("texts") or {}).items() if not is_tea_path(p)}
    return {**case, "files": files, "texts": texts}


def tea_added(case: dict[str, Any]) -> dict[str, Any]:
    """`case` (benign_tree only) with a root tea.yaml naming a wallet of its own."""
    if case["category"] != "benign_tree" or not isinstance(case.get("files"), list):
        return case
    wallet = "0x" + hashlib.sha256(str(case["name"]).encode()).hexdigest()[:40]
    text = f"---\nversion: 1.0.0\ncodeOwners:\n  - '{wallet}'\nquorum: 1\n"
    root = str(case["files"][0]["path"]).split("/", 1)[0] if case["files"] else "package"
    path = f"{root}/tea.yaml"
    entry = {"path": path, "size": len(text), "sha256": hashlib.sha256(text.encode()).hexdigest()}
    files = sorted([*case["files"], entry], key=lambda f: str(f["path"]))
    return {**case, "files": files, "texts": {path: text, **(case.get("texts") or {})}}


VARIANTS = {"tea-dropped": tea_dropped, "tea-added": tea_added}


def evaluate(
    cases: Iterable[dict[str, Any]], osv: OsvIndex, *, model: bool = True
) -> dict[str, Any]:
    """Assess every case (recording, as the proxy does), then score each case's verdict as the
    proxy serves it once everything was seen (`Detector.current`: clone, wallet and campaign
    findings follow the indexes, so no verdict depends on the order cases come in)."""
    detector = Detector.open(None, osv, model=model)
    started = time.perf_counter()
    seen: list[tuple[dict[str, Any], Any, Verdict]] = []
    for case in cases:
        package, version, tarball = facts_from_case(case)
        seen.append((case, package, detector.assess(package, version, tarball)))
    per: dict[str, dict[str, Any]] = {}
    false_pos: list[dict[str, Any]] = []
    false_neg: list[dict[str, Any]] = []
    fired: dict[str, Counter[str]] = defaultdict(Counter)
    labels: dict[str, Counter[str]] = defaultdict(Counter)
    name_only_flagged: Counter[str] = Counter()
    for case, package, first in seen:
        verdict = detector.current(first, package)
        cat, truth = str(case["category"]), str(case["label"])
        row = per.setdefault(cat, {"label": truth, "cases": 0, "flagged": 0, "with_files": 0,
                                   "with_files_flagged": 0, "first_flagged": 0})  # fmt: skip
        row["cases"] += 1
        flagged = verdict.label.flagged
        row["flagged"] += flagged
        row["first_flagged"] += first.label.flagged  # as assessed, before the rest was seen
        scanned = isinstance(case.get("files"), list)
        if scanned:
            row["with_files"] += 1
            row["with_files_flagged"] += flagged
        labels[cat][verdict.label.value] += 1
        for sid in sorted(verdict.signal_ids):
            fired[sid][cat] += 1
        if not scanned and flagged:
            name_only_flagged[cat] += 1
        brief = {
            "name": case["name"],
            "version": case.get("version") or "",
            "category": cat,
            "label": verdict.label.value,
            "signals": sorted(verdict.signal_ids),
        }
        if flagged and truth == BENIGN:
            false_pos.append(brief)
        elif not flagged and truth == SPAM:
            false_neg.append(brief)
    return {
        "categories": per,
        "false_positives": false_pos,
        "false_negatives": false_neg,
        "signals": {k: dict(v) for k, v in sorted(fired.items())},
        "labels": {k: dict(v) for k, v in labels.items()},
        "name_only_flagged": dict(name_only_flagged),
        "seconds": round(time.perf_counter() - started, 2),
    }


def _ratio(a: int, b: int) -> str:
    return f"{a / b:.4f}" if b else "n/a"


def print_report(r: dict[str, Any]) -> None:
    cats = r["categories"]
    tp = sum(c["flagged"] for c in cats.values() if c["label"] == SPAM)
    fn = sum(c["cases"] - c["flagged"] for c in cats.values() if c["label"] == SPAM)
    fp = sum(c["flagged"] for c in cats.values() if c["label"] == BENIGN)
    print(f"overall: precision {_ratio(tp, tp + fp)}  recall {_ratio(tp, tp + fn)}  "
          f"(tp {tp}, fp {fp}, fn {fn}; {r['seconds']}s)")  # fmt: skip
    print("\nper category (spam: recall = flagged/cases; benign: false-positive rate;"
          " precision = share of this category's flagged cases that are right)")  # fmt: skip
    for name, c in sorted(cats.items()):
        right = c["flagged"] if c["label"] == SPAM else 0
        what = "recall" if c["label"] == SPAM else "fp-rate"
        print(f"  {name:20} {c['label']:6} cases {c['cases']:6}  flagged {c['flagged']:6}  "
              f"{what} {_ratio(c['flagged'], c['cases'])}  "
              f"precision {_ratio(right, c['flagged'])}  "
              f"with files {c['with_files_flagged']}/{c['with_files']}  "
              f"at first sight {c['first_flagged']}  "
              f"labels {r['labels'].get(name, {})}")  # fmt: skip
    print(f"\nflagged with no files (name signals + feed only): {r['name_only_flagged']}")
    print(f"\nfalse positives ({len(r['false_positives'])}):")
    for b in r["false_positives"]:
        print(f"  {b['category']:16} {b['name']}@{b['version']} -> {b['label']} {b['signals']}")
    print(f"\nfalse negatives ({len(r['false_negatives'])}):")
    for b in r["false_negatives"]:
        print(f"  {b['category']:16} {b['name']}@{b['version']} -> {b['label']} {b['signals']}")
    print("\nsignals fired (by category):")
    for sid, by_cat in r["signals"].items():
        print(f"  {sid:18} {sum(by_cat.values()):6}  {by_cat}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="folder holding cases.jsonl")
    parser.add_argument("--osv", type=Path, help="OSV records (folder or zip); default DIR/osv")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--stress", action="store_true", help="also the two tea.yaml variants")
    parser.add_argument("--no-model", action="store_true", help="rules only: no learned score")
    args = parser.parse_args(argv)
    path = args.corpus / "cases.jsonl" if args.corpus.is_dir() else args.corpus
    osv_source = args.osv or (args.corpus / "osv")
    osv = load_index(osv_source) if osv_source.exists() else OsvIndex()
    cases = read_cases(path)
    runs = {"corpus": cases}
    if args.stress:
        runs.update({k: [change(c) for c in cases] for k, change in VARIANTS.items()})
    results = {k: evaluate(v, osv, model=not args.no_model) for k, v in runs.items()}
    if args.json:
        out = {}
        for k, result in results.items():
            cats = {
                c: {"label": v["label"], "cases": v["cases"], "flagged": v["flagged"],
                    "with_files": v["with_files"], "with_files_flagged": v["with_files_flagged"],
                    "first_flagged": v["first_flagged"]}
                for c, v in result["categories"].items()
            }  # fmt: skip
            out[k] = {
                "categories": cats,
                "false_positives": result["false_positives"],
                "false_negatives": result["false_negatives"],
                "signals": result["signals"],
            }
        sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        for k, result in results.items():
            if len(results) > 1:
                print(f"\n===== {k} =====")
            print_report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
