"""`npm search` over the packages Floodgate hosts, and one page of results merged with the
upstream's (pure: the registry reads the documents, the service asks the upstream).

Matching follows the registry's search closely enough for people looking for their own
packages: the text is split into words, and every word must occur in the package's name, its
description or one of its keywords (case-insensitive). Qualifiers `keywords:a,b` (any of them,
`-a` excludes) and `scope:acme` filter; the registry's other qualifiers (`author:`,
`maintainer:`, `is:`, `not:`, `boost-exact:`) are passed on to the upstream and ignored here.
A word that is the whole name ranks first, then a name starting with it, a name containing it,
a keyword, the description.

Merging: the hosted matches come first, then the upstream's, as one list that `from` and
`size` page through: the upstream is asked for the part of the page the hosted matches do not
fill (`upstream_window`), and `total` counts both. The upstream's results never include an
internal name (Floodgate never serves the public package of that name, so it must not be
offered either).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from proxy.errors import BadRequest
from proxy.hosted.document import COPIED_FIELDS

DEFAULT_SIZE = 20  # the registry's default page
MAX_SIZE = 250  # the registry's largest page
MAX_FROM = 5000  # deeper pages are refused, as the registry does
MAX_TEXT = 256  # characters of search text considered
QUALIFIERS = ("keywords:", "scope:", "author:", "maintainer:", "is:", "not:", "boost-exact:")

# Relevance of one word, by where it is found (the highest applies).
EXACT_NAME = 1.0
NAME_PREFIX = 0.8
IN_NAME = 0.6
KEYWORD = 0.5
IN_KEYWORD = 0.4
IN_DESCRIPTION = 0.3


def _int(params: Mapping[str, str], key: str, default: int) -> int:
    raw = params.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"search parameter {key}={raw!r} is not a whole number") from None
    if value < 0:
        raise BadRequest(f"search parameter {key}={value} must not be negative")
    return value


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """What `GET /-/v1/search` asks, parsed (pure)."""

    text: str
    words: tuple[str, ...]  # lower-case words to find
    keywords: tuple[str, ...] = ()  # `keywords:` qualifier: any of these
    not_keywords: tuple[str, ...] = ()  # `keywords:-x`: none of these
    scope: str | None = None  # `scope:acme`, without the @
    size: int = DEFAULT_SIZE
    start: int = 0  # the `from` parameter

    @classmethod
    def of(cls, params: Mapping[str, str]) -> SearchQuery:
        text = params.get("text", "")[:MAX_TEXT]
        size = _int(params, "size", DEFAULT_SIZE)
        start = _int(params, "from", 0)
        if start > MAX_FROM:
            raise BadRequest(f"search parameter from={start} is over {MAX_FROM}")
        words: list[str] = []
        keywords: list[str] = []
        not_keywords: list[str] = []
        scope = None
        for token in text.lower().split():
            if token.startswith("keywords:"):
                for k in token.removeprefix("keywords:").split(","):
                    if k.startswith("-") and k[1:]:
                        not_keywords.append(k[1:])
                    elif k:
                        keywords.append(k)
            elif token.startswith("scope:"):
                scope = token.removeprefix("scope:").lstrip("@") or None
            elif token.startswith(QUALIFIERS):
                continue
            else:
                words.append(token)
        return cls(
            text,
            tuple(words),
            tuple(keywords),
            tuple(not_keywords),
            scope,
            min(size, MAX_SIZE) if size > 0 else DEFAULT_SIZE,
            start,
        )

    @property
    def empty(self) -> bool:
        return not (self.words or self.keywords or self.not_keywords or self.scope)


@dataclass(frozen=True, slots=True)
class Hit:
    """A hosted package that matches, and how well (0..1]."""

    name: str
    relevance: float
    doc: Mapping[str, Any]


def _latest(doc: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
    versions = doc.get("versions")
    tags = doc.get("dist-tags")
    if not isinstance(versions, dict) or not versions:
        return None
    latest = tags.get("latest") if isinstance(tags, dict) else None
    if not isinstance(latest, str) or not isinstance(versions.get(latest), dict):
        return None
    manifest: Mapping[str, Any] = versions[latest]
    return latest, manifest


def _field(doc: Mapping[str, Any], manifest: Mapping[str, Any], key: str) -> Any:
    value = doc.get(key)
    return value if value is not None else manifest.get(key)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _keywords(value: Any) -> list[str]:
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    if not isinstance(value, list):
        return []
    return [k for k in value if isinstance(k, str) and k]


def _word_relevance(word: str, name: str, bare: str, keywords: Sequence[str], desc: str) -> float:
    if word in (name, bare):
        return EXACT_NAME
    if name.startswith(word) or bare.startswith(word):
        return NAME_PREFIX
    if word in name:
        return IN_NAME
    if word in keywords:
        return KEYWORD
    if any(word in k for k in keywords):
        return IN_KEYWORD
    if word in desc:
        return IN_DESCRIPTION
    return 0.0


def relevance(name: str, doc: Mapping[str, Any], query: SearchQuery) -> float:
    """How well a hosted document matches (0: not at all; an unpublished one never does)."""
    latest = _latest(doc)
    if latest is None or query.empty:
        return 0.0
    _, manifest = latest
    lname = name.lower()
    scope, _, bare = lname.partition("/") if lname.startswith("@") else ("", "", lname)
    if query.scope is not None and scope != f"@{query.scope}":
        return 0.0
    keywords = [k.lower() for k in _keywords(_field(doc, manifest, "keywords"))]
    if query.keywords and not any(k in keywords for k in query.keywords):
        return 0.0
    if any(k in keywords for k in query.not_keywords):
        return 0.0
    if not query.words:
        return KEYWORD  # found by qualifiers alone
    desc = _text(_field(doc, manifest, "description")).lower()
    scores = [_word_relevance(w, lname, bare, keywords, desc) for w in query.words]
    if min(scores) == 0.0:
        return 0.0
    if " ".join(query.words) in (lname, bare):
        return EXACT_NAME
    return sum(scores) / len(scores)


# The top-level fields a publish copies from `latest`, and the maintainers npm's output lists.
SUMMARY_FIELDS = (*COPIED_FIELDS, "maintainers")


def summary(doc: Mapping[str, Any]) -> dict[str, Any] | None:
    """What matching and a search result read of a document (its `latest` version and the
    top-level fields), small enough to keep per package; None when nothing is published.
    `relevance` and `search_object` answer the same for it as for the whole document."""
    latest = _latest(doc)
    if latest is None:
        return None
    version, manifest = latest
    times = doc.get("time")
    out: dict[str, Any] = {
        "name": doc.get("name"),
        "dist-tags": {"latest": version},
        "versions": {version: {k: manifest[k] for k in SUMMARY_FIELDS if k in manifest}},
        "time": {k: times[k] for k in (version, "modified") if k in times}
        if isinstance(times, dict)
        else {},
    }
    for key in SUMMARY_FIELDS:
        if key in doc:
            out[key] = doc[key]
    return out


def rank(docs: Iterable[tuple[str, Mapping[str, Any]]], query: SearchQuery) -> list[Hit]:
    """The documents that match, best first (ties by name)."""
    hits = [Hit(name, r, doc) for name, doc in docs if (r := relevance(name, doc, query)) > 0]
    hits.sort(key=lambda h: (-h.relevance, h.name))
    return hits


def _links(doc: Mapping[str, Any], manifest: Mapping[str, Any]) -> dict[str, str]:
    links: dict[str, str] = {}
    homepage = _field(doc, manifest, "homepage")
    if isinstance(homepage, str) and homepage:
        links["homepage"] = homepage
    for key in ("repository", "bugs"):
        value = _field(doc, manifest, key)
        found = value.get("url") if isinstance(value, dict) else value
        if isinstance(found, str) and found:
            links[key] = found
    return links


def _people(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list):
        return []
    out = []
    for person in value:
        if isinstance(person, dict) and isinstance(person.get("name"), str):
            out.append({"username": person["name"], "email": _text(person.get("email"))})
        elif isinstance(person, dict) and isinstance(person.get("username"), str):
            out.append({"username": person["username"], "email": _text(person.get("email"))})
    return out


def search_object(hit: Hit, publisher: str | None = None) -> dict[str, Any]:
    """A hit in the registry's search result shape (`objects[]`). `maintainers` is always a
    list: npm's search output reads it unconditionally. The score is the text relevance alone
    (Floodgate has no popularity or maintenance figures for its own packages: 0)."""
    latest = _latest(hit.doc)
    assert latest is not None  # a hit has a latest version
    version, manifest = latest
    times = hit.doc.get("time")
    date = ""
    if isinstance(times, dict):
        date = _text(times.get(version)) or _text(times.get("modified"))
    package: dict[str, Any] = {
        "name": hit.name,
        "scope": hit.name[1:].partition("/")[0] if hit.name.startswith("@") else "unscoped",
        "version": version,
        "description": _text(_field(hit.doc, manifest, "description")),
        "keywords": _keywords(_field(hit.doc, manifest, "keywords")),
        "date": date,
        "links": _links(hit.doc, manifest),
        "maintainers": _people(_field(hit.doc, manifest, "maintainers")),
    }
    license_ = _field(hit.doc, manifest, "license")
    if isinstance(license_, str):
        package["license"] = license_
    if publisher:
        package["publisher"] = {"username": publisher, "email": ""}
    score = round(hit.relevance, 4)
    return {
        "package": package,
        "score": {
            "final": score,
            "detail": {"quality": score, "popularity": 0.0, "maintenance": 0.0},
        },
        "searchScore": score,
    }


def hosted_page(hits: Sequence[Hit], query: SearchQuery) -> Sequence[Hit]:
    """The hits on the requested page."""
    return hits[query.start : query.start + query.size]


def upstream_window(query: SearchQuery, hosted_total: int) -> tuple[int, int]:
    """(`from`, `size`) to ask the upstream for: the rest of the page after the hosted hits.
    When the hosted hits fill the page, one result is asked for, for the upstream's total."""
    shown = max(0, min(query.size, hosted_total - query.start))
    start = max(0, query.start - hosted_total)
    return start, max(1, query.size - shown)


def upstream_objects(body: Any, is_internal: Callable[[str], bool]) -> tuple[list[Any], int]:
    """The upstream's well-formed results without internal names, and its total."""
    if not isinstance(body, dict):
        return [], 0
    objects = body.get("objects")
    kept = []
    dropped = 0
    for obj in objects if isinstance(objects, list) else []:
        package = obj.get("package") if isinstance(obj, dict) else None
        name = package.get("name") if isinstance(package, dict) else None
        if not isinstance(name, str):
            continue
        if is_internal(name):
            dropped += 1
            continue
        kept.append(obj)
    total = body.get("total")
    count = total if isinstance(total, int) and total >= 0 else len(kept)
    return kept, max(0, count - dropped)


def merge(
    hosted: Sequence[dict[str, Any]],
    hosted_total: int,
    upstream: Sequence[Any],
    upstream_total: int,
    query: SearchQuery,
    time: str,
) -> dict[str, Any]:
    """One page: the hosted objects of the page, then as many upstream ones as fit."""
    room = max(0, query.size - len(hosted))
    return {
        "objects": [*hosted, *upstream[:room]],
        "total": hosted_total + upstream_total,
        "time": time,
    }
