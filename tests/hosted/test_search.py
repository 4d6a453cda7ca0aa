"""The search over hosted packages and the merge with the upstream's page (pure), in tables
over real-shaped documents (as `apply_publish` stores them)."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.errors import BadRequest
from proxy.hosted.search import (
    DEFAULT_SIZE,
    EXACT_NAME,
    IN_DESCRIPTION,
    KEYWORD,
    MAX_SIZE,
    NAME_PREFIX,
    Hit,
    SearchQuery,
    merge,
    rank,
    relevance,
    search_object,
    summary,
    upstream_objects,
    upstream_window,
)


def doc(
    name: str,
    description: str = "",
    keywords: Any = (),
    latest: str = "1.0.0",
    **top: Any,
) -> dict[str, Any]:
    manifest: dict[str, Any] = {"name": name, "version": latest, "description": description}
    if keywords:
        manifest["keywords"] = list(keywords) if not isinstance(keywords, str) else keywords
    return {
        "_id": name,
        "name": name,
        "dist-tags": {"latest": latest},
        "versions": {latest: manifest},
        "time": {"created": "2026-01-01T00:00:00.000Z", latest: "2026-02-03T04:05:06.000Z"},
        **({"description": description} if description else {}),
        **top,
    }


@pytest.mark.parametrize(
    ("params", "words", "keywords", "not_keywords", "scope", "size", "start"),
    [
        ({"text": "Utils"}, ("utils",), (), (), None, DEFAULT_SIZE, 0),
        (
            {"text": "array  utils", "size": "5", "from": "10"},
            ("array", "utils"),
            (),
            (),
            None,
            5,
            10,
        ),
        ({"text": "keywords:a,-b,c x"}, ("x",), ("a", "c"), ("b",), None, DEFAULT_SIZE, 0),
        ({"text": "scope:@acme utils"}, ("utils",), (), (), "acme", DEFAULT_SIZE, 0),
        (
            {"text": "author:bob not:unstable is:insecure boost-exact:false y"},
            ("y",),
            (),
            (),
            None,
            DEFAULT_SIZE,
            0,
        ),
        ({"text": "x", "size": "100000"}, ("x",), (), (), None, MAX_SIZE, 0),
        ({"text": "x", "size": "0"}, ("x",), (), (), None, DEFAULT_SIZE, 0),
        ({}, (), (), (), None, DEFAULT_SIZE, 0),
    ],
)
def test_query_parsing(
    params: dict[str, str],
    words: tuple[str, ...],
    keywords: tuple[str, ...],
    not_keywords: tuple[str, ...],
    scope: str | None,
    size: int,
    start: int,
) -> None:
    q = SearchQuery.of(params)
    assert (q.words, q.keywords, q.not_keywords, q.scope, q.size, q.start) == (
        words,
        keywords,
        not_keywords,
        scope,
        size,
        start,
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"text": "x", "size": "many"}, "size='many' is not a whole number"),
        ({"text": "x", "from": "-1"}, "from=-1 must not be negative"),
        ({"text": "x", "from": "99999"}, "from=99999 is over"),
    ],
)
def test_bad_query_parameters_say_what_is_wrong(params: dict[str, str], message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        SearchQuery.of(params)


UTILS = doc("@acme/utils", "Array helpers for Acme", ["arrays", "Collections"])
HTTP = doc("@acme/http", "An HTTP client with retries", ["network"])
CLI = doc("acme-cli", "Command line for the Acme platform", "cli, tools")


@pytest.mark.parametrize(
    ("name", "d", "text", "expected"),
    [
        ("@acme/utils", UTILS, "utils", EXACT_NAME),  # the bare name
        ("@acme/utils", UTILS, "@acme/utils", EXACT_NAME),
        ("@acme/utils", UTILS, "ut", NAME_PREFIX),
        ("@acme/utils", UTILS, "arrays", KEYWORD),
        ("@acme/utils", UTILS, "collections", KEYWORD),  # keywords are matched case-insensitively
        ("@acme/utils", UTILS, "helpers", IN_DESCRIPTION),
        ("@acme/utils", UTILS, "utils helpers", (EXACT_NAME + IN_DESCRIPTION) / 2),
        ("@acme/utils", UTILS, "utils missing", 0.0),  # every word must be found
        ("@acme/utils", UTILS, "network", 0.0),
        ("@acme/utils", UTILS, "keywords:arrays", KEYWORD),
        ("@acme/utils", UTILS, "keywords:network", 0.0),
        ("@acme/utils", UTILS, "keywords:-arrays utils", 0.0),
        ("@acme/utils", UTILS, "scope:other utils", 0.0),
        ("@acme/utils", UTILS, "scope:acme utils", EXACT_NAME),
        ("acme-cli", CLI, "tools", KEYWORD),  # keywords given as a string, as some send them
        ("acme-cli", CLI, "scope:acme", 0.0),  # unscoped
        ("@acme/utils", UTILS, "", 0.0),
        ("@acme/gone", {**doc("@acme/gone", "utils"), "versions": {}}, "utils", 0.0),
        ("@acme/odd", {"name": "@acme/odd", "versions": "x"}, "odd", 0.0),  # malformed: skipped
    ],
)
def test_relevance(name: str, d: dict[str, Any], text: str, expected: float) -> None:
    assert relevance(name, d, SearchQuery.of({"text": text})) == pytest.approx(expected)


def test_rank_orders_by_relevance_then_name() -> None:
    docs = [
        ("acme-cli", CLI),
        ("@acme/http", HTTP),
        ("@acme/utils", UTILS),
        ("@acme/arrays", doc("@acme/arrays", "acme arrays")),
    ]
    hits = rank(docs, SearchQuery.of({"text": "acme"}))
    # A name starting with the word first; the scoped names contain it, equally: by name.
    assert [h.name for h in hits] == ["acme-cli", "@acme/arrays", "@acme/http", "@acme/utils"]
    hits = rank(docs, SearchQuery.of({"text": "arrays"}))
    assert [h.name for h in hits] == ["@acme/arrays", "@acme/utils"]


def test_search_object_has_npms_shape() -> None:
    d = doc(
        "@acme/utils",
        "Array helpers",
        ["arrays"],
        homepage="https://acme.invalid/utils",
        repository={"type": "git", "url": "git+https://git.acme.invalid/utils.git"},
        bugs={"url": "https://git.acme.invalid/utils/issues"},
        license="MIT",
        maintainers=[{"name": "root", "email": "root@acme.invalid"}, "junk"],
    )
    obj = search_object(Hit("@acme/utils", 0.75, d), "root")
    assert obj == {
        "package": {
            "name": "@acme/utils",
            "scope": "acme",
            "version": "1.0.0",
            "description": "Array helpers",
            "keywords": ["arrays"],
            "date": "2026-02-03T04:05:06.000Z",
            "links": {
                "homepage": "https://acme.invalid/utils",
                "repository": "git+https://git.acme.invalid/utils.git",
                "bugs": "https://git.acme.invalid/utils/issues",
            },
            "maintainers": [{"username": "root", "email": "root@acme.invalid"}],
            "license": "MIT",
            "publisher": {"username": "root", "email": ""},
        },
        "score": {
            "final": 0.75,
            "detail": {"quality": 0.75, "popularity": 0.0, "maintenance": 0.0},
        },
        "searchScore": 0.75,
    }
    bare = search_object(Hit("acme-cli", 0.5, doc("acme-cli")))
    assert bare["package"]["scope"] == "unscoped"
    assert bare["package"]["maintainers"] == []
    assert "publisher" not in bare["package"]


@pytest.mark.parametrize(
    ("size", "start", "hosted", "window"),
    [
        (20, 0, 0, (0, 20)),  # nothing hosted: the upstream's page as asked
        (20, 0, 3, (0, 17)),  # 3 hosted, the upstream fills the rest
        (2, 0, 3, (0, 1)),  # hosted fill the page: one asked, for the total
        (2, 2, 3, (0, 1)),  # one hosted left on this page, one upstream
        (2, 4, 3, (1, 2)),  # past the hosted: upstream offset shifted by them
        (5, 10, 3, (7, 5)),
    ],
)
def test_upstream_window(size: int, start: int, hosted: int, window: tuple[int, int]) -> None:
    q = SearchQuery.of({"text": "x", "size": str(size), "from": str(start)})
    assert upstream_window(q, hosted) == window


def obj(name: str) -> dict[str, Any]:
    return {"package": {"name": name}, "score": {}, "searchScore": 1}


@pytest.mark.parametrize(
    ("body", "names", "total"),
    [
        ({"objects": [obj("a"), obj("@acme/x"), obj("b")], "total": 10}, ["a", "b"], 9),
        ({"objects": [obj("a"), {"package": {}}, "junk", {"x": 1}], "total": 4}, ["a"], 4),
        ({"objects": [obj("a")]}, ["a"], 1),  # no total: what is there
        ({"objects": "nope", "total": -3}, [], 0),
        (["not", "an", "object"], [], 0),
        (None, [], 0),
    ],
)
def test_upstream_objects_are_checked_and_never_internal(
    body: Any, names: list[str], total: int
) -> None:
    kept, count = upstream_objects(body, lambda n: n.startswith("@acme/"))
    assert [o["package"]["name"] for o in kept] == names
    assert count == total


@pytest.mark.parametrize(
    ("size", "hosted", "upstream", "expected"),
    [
        (3, ["h1"], ["u1", "u2", "u3"], ["h1", "u1", "u2"]),
        (2, ["h1", "h2"], ["u1"], ["h1", "h2"]),  # the upstream's one result was for its total
        (3, [], ["u1"], ["u1"]),
    ],
)
def test_merge_puts_hosted_first_and_fills_the_page(
    size: int, hosted: list[str], upstream: list[str], expected: list[str]
) -> None:
    q = SearchQuery.of({"text": "x", "size": str(size)})
    page = merge([obj(n) for n in hosted], 7, [obj(n) for n in upstream], 40, q, "t")
    assert [o["package"]["name"] for o in page["objects"]] == expected
    assert page["total"] == 47
    assert page["time"] == "t"


@pytest.mark.parametrize(
    "d",
    [
        UTILS,
        HTTP,
        CLI,
        doc(
            "@acme/full",
            "Everything",
            ["all"],
            homepage="https://acme.invalid/",
            repository={"url": "git+https://git.acme.invalid/full.git"},
            license="MIT",
            maintainers=[{"name": "root", "email": "root@acme.invalid"}],
        ),
        {**doc("@acme/times"), "time": "not a mapping"},
    ],
)
def test_a_summary_matches_and_answers_as_its_document(d: dict[str, Any]) -> None:
    small = summary(d)
    assert small is not None
    name = d["name"]
    for text in ("acme", "all", "arrays", "network", "keywords:all", "scope:acme x", "cli"):
        q = SearchQuery.of({"text": text})
        assert relevance(name, small, q) == relevance(name, d, q)
    assert search_object(Hit(name, 0.5, small), "p") == search_object(Hit(name, 0.5, d), "p")


def test_an_unpublished_document_has_no_summary() -> None:
    assert summary({**doc("@acme/gone"), "versions": {}}) is None
