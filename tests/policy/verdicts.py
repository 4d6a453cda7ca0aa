"""Real-shaped verdicts and subjects for policy tests.

Scores follow `proxy.detect.evaluate.combine` (severity points x confidence weight, summed):
tea-yaml high/high 50 + trivial-code medium/medium 18.75 = 69, and so on. Reasons are the
sentences the signals write. The malicious record is LWA-2026-10072 / MAL-2026-11724 from
tests/fixtures/osv; the spam feed record ids are shaped like the feed's but made up.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from proxy.detect.model import Confidence, Family, Finding, Label, Severity, Verdict
from proxy.policy.engine import Subject
from proxy.policy.model import ScanState

NOW = datetime(2026, 8, 10, 12, 0, tzinfo=UTC)  # a fixed clock for every policy test
DETECTOR = "1"
WALLET = "0x723332A6f259f8457e71a346566466036a5Eb3C8"

H, M, L, C = Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.CRITICAL
HC, MC, LC = Confidence.HIGH, Confidence.MEDIUM, Confidence.LOW

TEA_YAML = Finding(
    "tea-yaml",
    H,
    HC,
    f"the package ships a tea.xyz registration file (tea.yaml) naming wallet {WALLET}",
    {"path": "package/tea.yaml", "wallets": [WALLET.lower()], "quorum": 1, "layout": "codeOwners"},
    Family.SPAM,
)
TEA_WALLET_REUSE = Finding(
    "tea-wallet-reuse",
    H,
    HC,
    f"wallet {WALLET.lower()} is also registered by 37 other package(s): "
    "xcho, uniset, stankpoll...",
    {"wallet": WALLET.lower(), "other_names": ["xcho", "uniset", "stankpoll"], "count": 37},
    Family.SPAM,
)
TRIVIAL_ENTRY = Finding(
    "trivial-code",
    M,
    MC,
    "the entry point index.js is empty or only prints a greeting",
    {"entry_point": "package/index.js", "entry_text": "console.log('Hello, world!');\n"},
    Family.SPAM,
)
CLONED = Finding(
    "cloned-code",
    M,
    MC,
    "100% of its 2 code files are byte-identical to files of 2 other package(s), e.g. xcho",
    {"code_files": 2, "share": 1.0, "other_names": ["xcho", "kopiliong"]},
    Family.SPAM,
)
GENERATED = Finding(
    "generated-name",
    M,
    MC,
    "the name looks generated: adjective_noun_suffix shape with a random tag",
    {"name": "brave_otter_x7k2"},
    Family.SPAM,
)
RING = Finding(
    "dependency-ring",
    M,
    MC,
    "it depends on 3 package(s) already flagged: xcho, uniset, stankpoll",
    {"flagged_dependencies": {"xcho": "^0.1.0", "uniset": "*", "stankpoll": "^1.0.0"}},
    Family.SPAM,
)
SPAM_NAME = Finding(
    "spam-name",
    H,
    HC,
    "the name is built from SEO-spam words (vbucks, free, generator, 2024, human, verification)",
    {"spam_words": ["vbucks", "free", "generator", "2024", "human", "verification"]},
    Family.SPAM,
)
KNOWN_MALICIOUS = Finding(
    "known-malicious",
    C,
    HC,
    "the malicious-packages feed lists @or-sdk/sdk-api@0.29.4 as malicious "
    "(LWA-2026-10072, MAL-2026-11724)",
    {
        "ids": ["LWA-2026-10072"],
        "aliases": ["MAL-2026-11724"],
        "summaries": ["Malicious code in @or-sdk/sdk-api (npm)"],
        "categories": ["malware"],
    },
    Family.MALWARE,
)
KNOWN_SPAM = Finding(
    "known-malicious",
    H,
    HC,
    "the malicious-packages feed lists nomind-big-integer@1.0.1 as spam "
    "(LWA-2026-10412, MAL-2026-12240)",
    {
        "ids": ["LWA-2026-10412"],
        "aliases": ["MAL-2026-12240"],
        "summaries": ["Spam package nomind-big-integer (npm)"],
        "categories": ["spam"],
    },
    Family.SPAM,
)
INSTALL_SCRIPT = Finding(
    "install-scripts",
    L,
    HC,
    "it runs a preinstall script: 'node setup.mjs'",
    {"scripts": {"preinstall": "node setup.mjs"}},
    Family.RISK,
)


def tea_spam(name: str = "kopiliong", version: str = "0.1.0") -> Verdict:
    """A tea.xyz token-farming version: tea.yaml naming a wallet, and no real code."""
    return Verdict(name, version, 69, Label.SPAM, (TEA_YAML, TRIVIAL_ENTRY), DETECTOR, (), True)


def wallet_reuse_spam(name: str = "uniset", version: str = "1.0.3") -> Verdict:
    """Token farming seen through the wallet index rather than the package's own tea.yaml."""
    return Verdict(name, version, 69, Label.SPAM, (TEA_WALLET_REUSE, TRIVIAL_ENTRY), DETECTOR)


def campaign_spam(size: int, name: str = "brave_otter_x7k2") -> Verdict:
    """A farm member seen through the campaign graph: one of `size` linked packages."""
    members = [name, *(f"brave_otter_{i}x" for i in range(size - 1))]
    campaign = Finding(
        "campaign",
        H,
        MC,
        f"one of {size} packages of campaign campaign-0123456789 linked by code",
        {"campaign": "campaign-0123456789", "size": size, "members": sorted(members)},
        Family.SPAM,
    )
    return Verdict(name, "1.0.0", 75, Label.SPAM, (campaign, GENERATED), DETECTOR, (), True)


def cloned_spam(name: str = "brave_otter_x7k2", version: str = "1.0.0") -> Verdict:
    """Spam from medium signals only (cloned + trivial code, generated name, ring): no tea."""
    findings = (TRIVIAL_ENTRY, CLONED, GENERATED, RING)
    return Verdict(name, version, 75, Label.SPAM, findings, DETECTOR, (), True)


def seo_spam(
    name: str = "free-v-bucks-generator-2024-no-human-verification", version: str = "1.0.0"
) -> Verdict:
    """An SEO spam name: the only finding is the name."""
    return Verdict(name, version, 50, Label.SPAM, (SPAM_NAME,), DETECTOR)


def osv_spam(name: str = "nomind-big-integer", version: str = "1.0.1") -> Verdict:
    """A spam version the malicious-packages feed lists (category spam)."""
    ids = ("MAL-2026-12240", "LWA-2026-10412")
    return Verdict(name, version, 50, Label.SPAM, (KNOWN_SPAM,), DETECTOR, ids)


def malicious(name: str = "@or-sdk/sdk-api", version: str = "0.29.4") -> Verdict:
    """A version the malicious-packages feed lists as malware."""
    ids = ("MAL-2026-11724", "LWA-2026-10072")
    return Verdict(name, version, 100, Label.MALICIOUS, (KNOWN_MALICIOUS,), DETECTOR, ids)


def suspicious(name: str = "client-only", version: str = "0.0.1") -> Verdict:
    """Weak evidence only (trivial code), as for tiny legitimate marker packages."""
    return Verdict(name, version, 19, Label.SUSPICIOUS, (TRIVIAL_ENTRY,), DETECTOR, (), True)


def with_scripts(name: str = "postinstall-banner", version: str = "2.1.0") -> Verdict:
    """Install scripts and trivial code: suspicious (risk findings never make spam)."""
    findings = (TRIVIAL_ENTRY, INSTALL_SCRIPT)
    return Verdict(name, version, 29, Label.SUSPICIOUS, findings, DETECTOR, (), True)


def clean(name: str = "@babel/code-frame", version: str = "7.29.7") -> Verdict:
    return Verdict(name, version, 0, Label.CLEAN, (), DETECTOR, (), True)


def subject(
    verdict: Verdict | None,
    *,
    name: str | None = None,
    version: str | None = None,
    scan: ScanState = ScanState.TARBALL,
    now: datetime = NOW,
    published: datetime | None = None,
    created: datetime | None = None,
    install_scripts: bool | None = None,
    shadows: str | None = None,
) -> Subject:
    """A Subject for `verdict` (name and version from the verdict unless given)."""
    n = name if name is not None else (verdict.name if verdict is not None else "left-pad")
    v = version if version is not None else (verdict.version if verdict is not None else "1.3.0")
    return Subject(n, v, verdict, now, scan, published, created, install_scripts, shadows)


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)
