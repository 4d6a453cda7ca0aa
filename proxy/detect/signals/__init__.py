"""The signal registry: every signal the detector runs, as an explicit tuple of (spec, check).

Each signal lives in its own module, whose docstring is its documentation (`docs/signals.md`
is generated from this registry by `python -m proxy.detect.docs`).
"""

from __future__ import annotations

from collections.abc import Callable

from proxy.detect.facts import Subject
from proxy.detect.model import Finding, SignalSpec
from proxy.detect.signals import (
    boilerplate_manifest,
    campaign,
    cloned_code,
    dependency_ring,
    empty_package,
    filler_code,
    foreign_manifest,
    generated_name,
    install_scripts,
    known_malicious,
    learned_score,
    missing_entry,
    publish_burst,
    script_entry,
    spam_name,
    stub_code,
    tea_wallet_reuse,
    tea_yaml,
    template_code,
    trivial_code,
    unsafe_tarball,
    unused_dependencies,
    young_package,
)

Check = Callable[[Subject], Finding | None]

# Order is the order findings are listed in a verdict: feed and tarball safety first.
SIGNALS: tuple[tuple[SignalSpec, Check], ...] = (
    (known_malicious.SPEC, known_malicious.check),
    (unsafe_tarball.SPEC, unsafe_tarball.check),
    (tea_yaml.SPEC, tea_yaml.check),
    (tea_wallet_reuse.SPEC, tea_wallet_reuse.check),
    (spam_name.SPEC, spam_name.check),
    (empty_package.SPEC, empty_package.check),
    (missing_entry.SPEC, missing_entry.check),
    (template_code.SPEC, template_code.check),
    (filler_code.SPEC, filler_code.check),
    (script_entry.SPEC, script_entry.check),
    (boilerplate_manifest.SPEC, boilerplate_manifest.check),
    (foreign_manifest.SPEC, foreign_manifest.check),
    (trivial_code.SPEC, trivial_code.check),
    (stub_code.SPEC, stub_code.check),
    (cloned_code.SPEC, cloned_code.check),
    (generated_name.SPEC, generated_name.check),
    (dependency_ring.SPEC, dependency_ring.check),
    (unused_dependencies.SPEC, unused_dependencies.check),
    (campaign.SPEC, campaign.check),
    (learned_score.SPEC, learned_score.check),
    (publish_burst.SPEC, publish_burst.check),
    (young_package.SPEC, young_package.check),
    (install_scripts.SPEC, install_scripts.check),
)
