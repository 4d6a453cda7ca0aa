"""The code profile's helpers, as tables of real-shaped text."""

from __future__ import annotations

import pytest

from proxy.detect.code import (
    comments,
    declares_no_code,
    exports_nothing,
    filler_name,
    is_greeting,
    is_metadata,
    looks_like_prose,
    readme_prose,
    template_family,
    wrapped_packages,
)

LICENCE = (
    "/*\n * Copyright Joyent, Inc. and other Node contributors.\n"
    + (" * Permission is hereby granted, free of charge, to any person obtaining a copy of this\n")
    * 20
    + " */\n'use strict';\nvar R = typeof Reflect === 'object' ? Reflect : null;\n"
)
LOREM = (
    "The quick analysis of market data shows growth across every region and the team expects "
    "further gains as the quarter closes with strong numbers in the northern offices and a "
) * 6


@pytest.mark.parametrize(
    ("text", "prose"),
    [
        (LOREM, True),  # text in a .js file that is not code
        (LICENCE, False),  # a licence header above code: comments are prose, rightly
        ("function a(b){return b+1}module.exports=a;" * 40, False),  # minified
        ("const x = 1;\n", False),
    ],
)
def test_looks_like_prose(text: str, prose: bool) -> None:
    assert looks_like_prose(text) is prose


@pytest.mark.parametrize(
    ("path", "filler"),
    [
        ("package/lib/utils_controller.json", True),
        ("package/models/test_test.jsx", True),
        ("package/middleware/README_controller.jsx", True),
        ("package/lib/test_utils.js", True),  # the shape, though one file alone does not fire
        ("package/lib/parse_args.js", False),  # 'args' is no stock word
        ("package/lib/index.js", False),
        ("package/lodash/_baseGet.js", False),
    ],
)
def test_filler_name(path: str, filler: bool) -> None:
    assert filler_name(path) is filler


@pytest.mark.parametrize(
    ("text", "family"),
    [
        ("<p>Get started by editing <code>src/app/page.tsx</code></p>", "create-next-app"),
        ('export const metadata = { title: "Create Next App" };', "create-next-app"),
        ("<a className='App-link'>Learn React</a>", "create-react-app"),
        ("<button>count is {count}</button>", "vite"),
        ('<HelloWorld msg="Welcome to Your Vue.js App"/>', "vue-cli"),
        ("app.get('/', (req, res) => { res.send('Hello World!') })", "express-hello"),
        ('require("You can\'t withdraw yet");', "hardhat-sample"),
        ("module.exports = function getStarted() {}", None),
        ("// Hello, reader", None),
    ],
)
def test_template_family(text: str, family: str | None) -> None:
    assert template_family(text) == family


@pytest.mark.parametrize(
    ("text", "greeting"),
    [
        ("console.log('hello world');\n", True),
        ("'use strict';\n// entry\nconsole.log(`hi`)\n", True),
        ("!function(){\n    console.log(`2333333`)\n    }()", True),
        ("(() => { console.log('gm') })();", True),
        ("console.log(compute());", False),
        ("", False),
        ("module.exports = () => console.log('hi');", False),
    ],
)
def test_is_greeting(text: str, greeting: bool) -> None:
    assert is_greeting(text) is greeting


@pytest.mark.parametrize(
    ("text", "script"),
    [
        ("const express = require('express');\nexpress().listen(3000);\n", True),
        ("const sender = require('x');\nsender.sendTokens(['0x1'], [1]);\n", True),
        ("module.exports = { pad };", False),
        ("exports.pad = pad;", False),
        ("export default function pad() {}", False),
        ("Object.defineProperty(exports, '__esModule', { value: true });", False),
        ("if (!globalThis.fetch) globalThis.fetch = f;", False),  # a polyfill
        ("window.myLib = lib;", False),
        ("require('source-map-support').install();\nprocess.on('exit', f);", False),  # a hook
        ("", False),  # empty: a marker package, not a script
        ("'use strict';\n", False),
    ],
)
def test_exports_nothing(text: str, script: bool) -> None:
    assert exports_nothing(text) is script


@pytest.mark.parametrize(
    ("path", "metadata"),
    [
        ("README.md", True),
        ("LICENSE", True),
        ("LICENSE.APACHE2", True),
        ("CHANGELOG.md", True),
        ("package.json", True),
        ("tea.yaml", True),
        (".npmignore", True),
        ("index.js", False),
        ("db.json", False),
    ],
)
def test_is_metadata(path: str, metadata: bool) -> None:
    assert is_metadata(path) is metadata


def test_readme_prose_leaves_titles_and_badges_out() -> None:
    assert readme_prose("# uniset\n") == 0
    assert readme_prose("# tea-poly\n[![npm](https://x.invalid/b.svg)](https://x.invalid)\n") == 0
    assert readme_prose("# x\nnew project on tea\n") == len("new project on tea")
    assert readme_prose(None) == 0


@pytest.mark.parametrize(
    ("readme", "declared"),
    [
        ("# @swc/couter\n\nThis package does not contain any code. It is used solely to", True),
        ("This is a stub types definition. foo provides its own type definitions.", True),
        ("# marker\nThis module is intentionally empty.", True),
        ("Counts nothing. It exists only to count\ndownloads of our packages.", True),
        ("# hello\nA tiny package that prints hello.", False),
        ("# big-integer\nsimple big integer npm package", False),
        ("A placeholder package reserving the name.", False),  # a reservation is not a design
        (None, False),
        ("x" * 5000 + " does not contain any code", False),  # only the README's opening
    ],
)
def test_declares_no_code(readme: str | None, declared: bool) -> None:
    assert declares_no_code(readme) is declared


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("a = 1; // one\n/* two\n lines */ b = 2;", [" one", " two\n lines "]),
        ("/* unterminated", [" unterminated"]),
        ("x = a / b; y = c/d;", []),
        ("", []),
    ],
)
def test_comments(text: str, found: list[str]) -> None:
    assert comments(text) == found


BIG_INTEGER = """const BigNumber = require("bignumber.js");

function addBigIntegers(a, b) {
  return new BigNumber(a).plus(new BigNumber(b)).toString();
}

module.exports = { addBigIntegers };
"""


@pytest.mark.parametrize(
    ("text", "wrapped"),
    [
        (BIG_INTEGER, (1, ("bignumber.js",))),
        (
            "import chalk from 'chalk';\nexport const red = (s) => chalk.red(s);\n"
            "export const blue = s => chalk.blue(s);\n",
            (2, ("chalk",)),
        ),
        (BIG_INTEGER.replace("return", "const c = 1;\n  return"), None),  # more than a return
        (
            "const x = require('./local');\nfunction f(a) { return x(a); }\nmodule.exports = f;",
            None,
        ),
        ("const x = require('y');\nfunction f(a) { return a + 1; }\nmodule.exports = f;", None),
        ("module.exports = function (a) { return a; };", None),  # imports nothing
        (BIG_INTEGER + "\n" + "// padding\n" * 200, None),  # over the size bound
    ],
)
def test_wrapped_packages(text: str, wrapped: tuple[int, tuple[str, ...]] | None) -> None:
    assert wrapped_packages(text) == wrapped
