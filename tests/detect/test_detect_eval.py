"""bench/detect_eval.py: the stress variants and the evaluation over fixture cases."""

from __future__ import annotations

from bench.detect_eval import evaluate, read_cases, tea_added, tea_dropped
from proxy.detect.facts import facts_from_case
from proxy.detect.osv import OsvIndex
from proxy.npm.teafile import is_tea_path
from tests.detect.helpers import FIXTURES, case


def test_tea_dropped_removes_every_tea_file_of_spam_cases_only() -> None:
    spam = case("xcho")
    assert any(is_tea_path(f["path"]) for f in spam["files"])
    dropped = tea_dropped(spam)
    assert not any(is_tea_path(f["path"]) for f in dropped["files"])
    assert not any(is_tea_path(p) for p in dropped["texts"])
    assert len(dropped["files"]) == len(spam["files"]) - 1
    benign = case("@babel/code-frame")
    assert tea_dropped(benign) is benign


def test_tea_added_gives_benign_tree_cases_a_wallet_of_their_own() -> None:
    benign = case("@babel/code-frame")
    added = tea_added(benign)
    _, _, tarball = facts_from_case(added)
    assert tarball is not None
    (tea,) = tarball.tea_files
    assert tea.path == "package/tea.yaml"
    assert len(tea.wallets) == 1
    other = tea_added(case("cliui"))
    assert other["texts"]["package/tea.yaml"] != added["texts"]["package/tea.yaml"]
    spam = case("uniset")
    assert tea_added(spam) is spam  # only benign_tree cases get one


def test_evaluate_scores_fixture_cases_in_each_variant() -> None:
    cases = read_cases(FIXTURES / "detect" / "cases.jsonl")
    plain = evaluate(cases, OsvIndex())
    assert plain["categories"]["benign_tree"]["flagged"] == 0
    assert plain["categories"]["tea_token_farming"]["flagged"] >= 8
    added = evaluate([tea_added(c) for c in cases], OsvIndex())
    assert added["false_positives"] == []  # a tea.yaml alone is no farm
    rules = evaluate(cases, OsvIndex(), model=False)
    assert "learned-score" not in rules["signals"]
    assert "learned-score" in plain["signals"]
