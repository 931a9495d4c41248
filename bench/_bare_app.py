"""The bare-endpoint baseline of bench/ingest.py: FastAPI under uvicorn, no work behind the routes.

Same server stack as `funnelstream ingest`, started the same way: one worker runs
funnelstream.runtime.run_http (uvicorn's Server on uvloop, as `funnelstream ingest` runs it),
several run uvicorn.run with workers=N (uvicorn's own loop choice).
Each tracking route reads the body and answers {"success": true}.

    .venv/bin/python bench/_bare_app.py --port 8001 [--workers 1]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request

from funnelstream.cli import run
from funnelstream.runtime import run_http

app = FastAPI(title="bare endpoint")


@app.post("/v1/track")
async def track(request: Request) -> dict[str, bool]:
    await request.body()
    return {"success": True}


@app.post("/v1/batch")
async def batch(request: Request) -> dict[str, bool]:
    await request.body()
    return {"success": True}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if args.workers == 1:  # as `funnelstream ingest` does
        run(run_http(app, args.host, args.port))
        return
    uvicorn.run(
        "_bare_app:app",
        app_dir=str(Path(__file__).parent),
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
