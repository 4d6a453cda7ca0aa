"""The ceiling: a bare Starlette app on uvicorn returning fixed bytes from memory.

Run by `proxy_bench.py` beside Floodgate: `python bench/bare_app.py DIR PORT` serves every
file in DIR at `/<file name>`, gzipped variants (`*.gz`) with Content-Encoding: gzip.
"""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def make_app(directory: Path) -> Starlette:
    blobs = {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}

    async def serve(request: Request) -> Response:
        name = request.path_params["name"]
        if name.endswith(".gz"):
            return Response(
                blobs[name], media_type="application/json", headers={"content-encoding": "gzip"}
            )
        return Response(blobs[name], media_type="application/octet-stream")

    return Starlette(routes=[Route("/{name}", serve)])


if __name__ == "__main__":
    uvicorn.run(
        make_app(Path(sys.argv[1])),
        host="127.0.0.1",
        port=int(sys.argv[2]),
        log_level="warning",
        access_log=False,
    )
