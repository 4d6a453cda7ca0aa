"""The packages Floodgate hosts: the organization's internal scopes and names, published with
npm, pnpm, yarn or bun, inspected like everything it proxies, and served beside the public ones.

    document.py  the write side of the registry protocol as pure functions over a document
    access.py    who may read and who may change each scope (pure, from settings)
    search.py    npm search over them, merged with the upstream's page (pure)
    store.py     documents, tarballs and the audit log, in SQLite or the shared database
    registry.py  the read source the pipeline uses, and the one place writes go through
"""
