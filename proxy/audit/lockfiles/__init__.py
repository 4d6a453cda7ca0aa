"""One reader per lockfile format; `proxy.audit.lockfile` picks the reader and is the public API.

    npm.py           package-lock.json / npm-shrinkwrap.json, lockfileVersion 1, 2, 3
    pnpm.py          pnpm-lock.yaml, lockfileVersion 6.x and 9.x
    yarn_classic.py  yarn.lock of yarn 1 (its own syntax, parsed here)
    yarn_berry.py    yarn.lock of yarn 2+ (YAML with __metadata)
    documents.py     JSON and YAML loading that keeps each entry's line; `Invalid`
    fields.py        typed field access that raises `Invalid` with the key path
    specs.py         `name@range`, `npm:` aliases, where a package comes from (`Source`)
    manifest.py      the package.json beside the lockfile (and yarn 1's workspaces')
    graph.py         the dependency graph the readers build, and the walk that turns it into
                     `LockedPackage`s: shortest paths, dev/optional flags, de-duplication, order

Readers are pure: text (and a parsed manifest) in, `(format version, Graph)` out.
"""
