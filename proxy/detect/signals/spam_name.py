"""spam-name: the name is search-engine bait, not a software name.

What it detects: names assembled from the vocabulary of SEO spam, the way spam pages are titled:
piracy-streaming lures (`watch-<film>-online-free-fullmovies-at-home`,
`ver-<pelicula>-completa-en-espanol`) and game-currency generators (`free-robux-codes`,
`updated-tricks-v-bucks-generator-free_2023-...`). Such packages exist to put a link-laden README
on a registry page; their name is the evidence, so the signal works on name-only facts.

The name is split into words; words are matched against three small vocabularies (lures such as
free/generator/unlimited, game currencies, streaming/piracy words). A name needs a word only
spam uses (robux, fullmovies, 123movies, pelicula, ...) plus another spam word, or four distinct
spam words, to fire strongly; three is a weak finding.

Known false positives: real tools for media streaming or game development whose names stack
several of these words (`video-stream-online-hd-player`); they rarely use the lure words.
"""

from __future__ import annotations

import functools
import re

from proxy.detect.facts import Subject
from proxy.detect.model import Confidence, Finding, Role, Severity, SignalSpec

SPEC = SignalSpec("spam-name", "SEO spam name", Severity.HIGH, Confidence.HIGH, role=Role.NAME)

# Words that essentially only spam names use.
DISTINCTIVE = frozenset({
    "robux", "vbucks", "vbuck", "fullmovie", "fullmovies", "123movies", "123movie", "123mioves",
    "putlocker", "fmovies", "gomovies", "soap2day", "pelicula", "peliculas", "cuevana",
    "cuevana3", "pelisplus", "repelis", "gratis", "descargar", "completa", "freefire",
    "giftcard", "giftcards", "hackear", "moviesonline", "fullhd",
})  # fmt: skip
LURE = frozenset({
    "free", "frees", "generator", "generators", "hack", "hacks", "cheat", "cheats", "unlimited",
    "codes", "legit", "working", "updated", "tricks", "trick", "glitch", "giveaway", "verify",
    "verification", "human", "survey", "instant", "2020", "2021", "2022", "2023", "2024", "2025",
    "2k23", "2k24", "get", "claim", "gift", "card", "redeem", "spins", "coins", "gems",
    "diamonds", "followers", "likes", "money",
})  # fmt: skip
GAME = frozenset({
    "roblox", "fortnite", "bucks", "pubg", "freefire", "minecraft", "tiktok", "instagram",
    "psn", "xbox", "steam", "coinmaster", "8ball", "monopoly", "brawl", "clash",
})  # fmt: skip
PIRACY = frozenset({
    "watch", "watching", "movie", "movies", "film", "films", "stream", "streaming", "streams",
    "streamings", "online", "hd", "4k", "1080p", "720p", "full", "home", "homes", "ver",
    "espanol", "latino", "subtitles", "sub", "dub", "dubbed", "english", "episode", "season",
    "torrent", "download", "live", "vs", "hdtv", "hq", "where", "casa", "en-casa",
})  # fmt: skip
# Spam names glue junk onto words to dodge duplicate-name checks (`at-homees4`, `fullmoviesed7`),
# so these longer words also match as a word's prefix.
_PREFIXES = tuple(sorted(w for w in DISTINCTIVE | PIRACY if len(w) >= 4 and w.isalpha()))
_WORD = re.compile(r"[a-z0-9]+")
_SPLIT = re.compile(r"[a-z]+|[0-9]+")
_ALL = DISTINCTIVE | LURE | GAME | PIRACY
STRONG_WORDS = 4  # distinct spam words that fire strongly without a distinctive one
WEAK_WORDS = 3


@functools.lru_cache(maxsize=4096)  # a function of the name: once per package
def spam_words(name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(distinctive words, other spam words) found in `name`, in order, without repeats."""
    bare = name.lower().rsplit("/", 1)[-1]
    bare = bare.replace("v-bucks", "vbucks").replace("v-buck", "vbuck")
    words: list[str] = []
    for w in _WORD.findall(bare):
        words.append(w)
        words.extend(_SPLIT.findall(w))  # `2023online` -> 2023, online
    distinctive: list[str] = []
    other: list[str] = []
    for w in dict.fromkeys(words):
        word = w if w in _ALL else next((p for p in _PREFIXES if w.startswith(p)), w)
        if word in DISTINCTIVE:
            distinctive.append(word)
        elif word in _ALL:
            other.append(word)
    return tuple(dict.fromkeys(distinctive)), tuple(
        w for w in dict.fromkeys(other) if w not in distinctive
    )


def check(s: Subject) -> Finding | None:
    distinctive, other = spam_words(s.name)
    total = len(distinctive) + len(other)
    evidence = {"spam_words": [*distinctive, *other]}
    if (distinctive and total >= 2) or total >= STRONG_WORDS:
        return SPEC.finding(
            f"the name is built from SEO-spam words ({', '.join(distinctive + other)})", evidence
        )
    if total >= WEAK_WORDS:
        return SPEC.finding(
            f"the name stacks words common in SEO spam ({', '.join(distinctive + other)})",
            evidence,
            severity=Severity.MEDIUM,
            confidence=Confidence.LOW,
        )
    return None
