"""The learned score: feature extraction, the shipped model file, deterministic scoring and
training, and the signal's tiers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import train_model
from proxy.detect.features import NAMES, extract
from proxy.detect.learned import MODEL_FILE, Model, shipped, sigmoid
from proxy.detect.model import Confidence, Severity
from proxy.detect.signals import learned_score
from proxy.npm.teafile import is_tea_path
from tests.detect.helpers import FIXTURES, name_only, subject, with_tarball
from tests.detect.test_signals import npm_init


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # an unmodified create-next-app scaffold: all template, no entry point, no own code
        ("xcho", {"template_share": 1.0, "log_original_bytes": 0.0, "entry_resolves": 0.0}),
        # a README stub beside a tea.yaml: nothing but metadata
        ("uniset", {"metadata_share": 1.0, "log_code_bytes": 0.0, "entry_resolves": 0.0}),
        # a real library: its entry resolves, all code its own, a licence and a description
        (
            "@babel/code-frame",
            {
                "entry_resolves": 1.0,
                "original_share": 1.0,
                "has_license_field": 1.0,
                "has_description": 1.0,
                "template_share": 0.0,
                "default_test_script": 0.0,
            },
        ),
        ("nomind-big-integer", {"default_test_script": 1.0, "entry_resolves": 1.0}),
        (
            "yimiwork_form",
            {"entry_missing": 1.0, "log_script_files": 0.0, "unused_dependencies": 1.0},
        ),
        ("damp_spoonbill_coral-60", {}),  # name only: no features (see below)
    ],
)
def test_feature_table(name: str, expected: dict[str, float]) -> None:
    if name == "damp_spoonbill_coral-60":
        assert extract(name_only(name)) is None
        return
    x = extract(subject(name))
    assert x is not None
    assert list(x) == list(NAMES)
    for feature, value in expected.items():
        assert x[feature] == pytest.approx(value), feature


def test_filler_and_name_features() -> None:
    x = extract(subject("balladoriel-8396"))
    assert x is not None
    assert x["filler_share"] > 0.3
    assert x["name_digits"] > 0
    assert x["generated_name"] == 1.0


def test_no_feature_reads_the_tea_file() -> None:
    """Dropping the tea.yaml changes only what any file would: the file count and the share of
    metadata files (training augments both ways so the model cannot lean on them)."""
    s = subject("xcho")
    assert s.tarball is not None
    without = with_tarball(
        s,
        entries=tuple(e for e in s.tarball.entries if not is_tea_path(e.path)),
        tea_files=(),
    )
    a, b = extract(s), extract(without)
    assert a is not None
    assert b is not None
    changed = {k for k in NAMES if a[k] != b[k]}
    assert changed <= {"log_files", "metadata_share"}


def test_the_shipped_model_loads_and_scores_deterministically() -> None:
    model = Model.load()
    assert model.names == NAMES
    assert shipped() == model
    x = extract(subject("kopiliong"))
    assert x is not None
    one, two = model.score(x), model.score(x)
    assert one == two
    assert 0.0 <= one.probability <= 1.0
    assert one.probability == pytest.approx(sigmoid(model.calib_a * model.logit(x) + model.calib_b))
    real = extract(subject("@babel/code-frame"))
    assert real is not None
    assert model.score(real).probability < 0.1 < 0.9 < one.probability


def test_a_model_of_other_features_is_refused(tmp_path: Path) -> None:
    doc = json.loads(MODEL_FILE.read_text(encoding="utf-8"))
    doc["features"] = [*doc["features"][:-1], "tea_yaml"]
    bad = tmp_path / "model.json"
    bad.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ValueError, match="feature set"):
        Model.load(bad)
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="cannot read"):
        Model.load(bad)


def test_training_is_deterministic(tmp_path: Path) -> None:
    """The training script on the fixture cases, twice: byte-identical model files."""
    outs = []
    for i in range(2):
        out = tmp_path / f"m{i}.json"
        code = train_model.main(["--corpus", str(FIXTURES / "detect"), "--out", str(out)])
        assert code == 0
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    trained = Model.from_json(json.loads(outs[0]))
    assert trained.names == NAMES
    assert trained.meta["rows"] == 40  # 20 full cases, each as is and augmented


H, M = Severity.HIGH, Severity.MEDIUM
MC, LC = Confidence.MEDIUM, Confidence.LOW


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda: subject("xcho"), (H, MC)),
        (lambda: npm_init(subject("nomind-big-integer")), (M, LC)),  # an unedited manifest
        (lambda: subject("nomind-big-integer"), None),
        (lambda: subject("@babel/code-frame"), None),
        (lambda: subject("@parcel/watcher-linux-x64-glibc"), None),  # a platform binary
        (lambda: name_only("xcho"), None),  # no tarball, no score
    ],
)
def test_learned_signal_tiers(build: object, expected: tuple[Severity, Confidence] | None) -> None:
    finding = learned_score.check(build())  # type: ignore[operator]
    if expected is None:
        assert finding is None
        return
    assert finding is not None
    assert (finding.severity, finding.confidence) == expected
    assert 0.0 <= finding.evidence["probability"] <= 1.0
    assert finding.evidence["drivers"]
    assert all(d["weight"] > 0 for d in finding.evidence["drivers"])


def test_detector_without_the_model() -> None:
    from proxy.detect.evaluate import Detector

    assert any(s.id == "learned-score" for s, _ in Detector.open(None).signals)
    assert not any(s.id == "learned-score" for s, _ in Detector.open(None, model=False).signals)
