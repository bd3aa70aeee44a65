"""Serve a trained agent over HTTP behind its glass box (shield, breakers, sizing, audit trail).

    python serve.py keygen --store svc --name desk-a --scopes decide          # prints the key once, last line
    python serve.py keygen --store svc --name ops --scopes decide,admin
    python serve.py runs/<run> --store svc --host 127.0.0.1 --port 8000      # POST /api/v1/decision, ...
    python serve.py runs/<run> --store svc --ray-address auto                # sleep jobs on the Ray cluster here
    python serve.py paper runs/<run> --url http://127.0.0.1:8000 --key KEY --scenario regime --episodes 5 --seed 1000

Requests carry ``Authorization: Bearer <key>``; the routes, bodies and answers are documented in
agents/app/service/app.py and agents/app/service/schemas.py.

parse → resolve → build → serve, each step one call into ``agents.app.service.serving``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agents.app.cli import OneLineParser
from agents.app.service.keys import make_key
from agents.app.service.schemas import MAX_BODY_BYTES

ENGINES = ("onnx", "torch")  # agents.app.service.engine.ENGINES (that module loads torch; keygen does not need it)

_BAD_BREAKER_ARG = "Expected --breaker NAME=VALUE (VALUE in YAML syntax, null disables), got {!r}"


def parse_keygen_args(argv: list[str]) -> argparse.Namespace:
    """``serve.py keygen``: a new API key (and its account) in the store."""
    p = OneLineParser(prog="serve.py keygen", description="Create an API key; it is printed once, on the last line.")
    p.add_argument("--store", type=Path, required=True, help="the service's store folder (created if missing)")
    p.add_argument("--name", required=True, help="the key's name, also its account's (letters, digits, _ . -)")
    p.add_argument("--scopes", default="decide", help="comma list of decide, admin (default: %(default)s)")
    return p.parse_args(argv)


def parse_paper_args(argv: list[str]) -> argparse.Namespace:
    """``serve.py paper``: paper-trade the run's env against a running service (agents.app.service.paper)."""
    p = OneLineParser(prog="serve.py paper",
                      description="Drive a running service from the run's simulated market, as evaluate.py does.")
    p.add_argument("run", type=Path, help="the run the service serves (its config.yaml gives the env)")
    p.add_argument("--url", default="http://127.0.0.1:8000", help="the service (default: %(default)s)")
    p.add_argument("--key", required=True, help="an API key with scopes decide,admin (each episode resets its account)")
    p.add_argument("--scenario", default="regime", help="ou, gbm, regime, flash_crash, high_vol or squeeze "
                                                         "(default: %(default)s)")
    p.add_argument("--episodes", type=int, default=3, help="episodes (default: %(default)s)")
    p.add_argument("--seed", type=int, default=1000, help="first episode seed, as evaluate.py's (default: %(default)s)")
    return p.parse_args(argv)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = OneLineParser(prog="serve.py", description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="run folder (with config.yaml and model.zip) or a model.zip inside one")
    p.add_argument("--store", type=Path, required=True, help="store folder: keys, accounts, halts, audit trails")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    p.add_argument("--engine", default="onnx", choices=ENGINES,
                   help="onnx: ONNX Runtime on the exported graph; torch: the SB3 policy (default: %(default)s)")
    p.add_argument("--breaker", action="append", default=[], metavar="NAME=VALUE",
                   help="wrappers.BreakerConfig field over the run's, e.g. --breaker max_drawdown=0.05 (null disables)")
    p.add_argument("--rate-limit", type=float, default=100.0,
                   help="sustained requests per second per key (default: %(default)s)")
    p.add_argument("--burst", type=float, default=200.0, help="requests a key may send at once (default: %(default)s)")
    p.add_argument("--max-body-bytes", type=int, default=MAX_BODY_BYTES,
                   help="largest request body (default: %(default)s)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="load model.zip with SB3's own loader, which runs code the file carries (trusted files only)")
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="run sleep jobs as Ray tasks: HOST:PORT or ray://HOST:PORT of a cluster, auto (the one on "
                        "this machine) or local (a private 1-CPU Ray); default: a worker process per job")
    p.add_argument("--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug"),
                   help="uvicorn's log level (default: %(default)s)")
    args = p.parse_args(argv)
    if not 0 < args.port < 65536:
        p.error(f"--port must be in 1..65535, got {args.port}")
    if not args.rate_limit > 0:
        p.error(f"--rate-limit must be > 0, got {args.rate_limit}")
    if not args.burst >= 1:
        p.error(f"--burst must be >= 1, got {args.burst}")
    if args.max_body_bytes < 1024:
        p.error(f"--max-body-bytes must be >= 1024, got {args.max_body_bytes}")
    from agents.app.config import ConfigError, parse_override  # loads torch and SB3: the server's path only

    breakers = []
    for text in args.breaker:
        try:
            keys, value = parse_override(text)
        except ConfigError:
            p.error(_BAD_BREAKER_ARG.format(text))
        breakers.append((".".join(keys), value))
    args.breaker = breakers
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["keygen"]:
        args = parse_keygen_args(argv[1:])
        try:
            key = make_key(args.store, args.name, args.scopes)
        except ValueError as err:
            print(f"serve.py keygen: error: {err}", file=sys.stderr)
            return 2
        print(f"key for {args.name!r} (scopes {args.scopes}); it is shown once, store it now:")
        print(key)
        return 0
    if argv[:1] == ["paper"]:
        args = parse_paper_args(argv[1:])
        import httpx

        from agents.app.service.paper import PaperError, run_paper, summary

        try:
            episodes = run_paper(args.url, args.key, args.run, args.scenario, args.episodes, args.seed)
        except (FileNotFoundError, ValueError, TypeError, PaperError, httpx.TransportError) as err:
            print(f"serve.py paper: error: {err}", file=sys.stderr)
            return 2
        print(summary(episodes, args.scenario))
        return 0
    args = parse_args(argv)
    from agents.app.service.serving import USAGE_ERRORS, build_service, resolve_service, run_server

    try:
        spec = resolve_service(args)
        service = build_service(spec)
    except USAGE_ERRORS as err:  # bad input: one line, exit status 2, nothing listening
        print(f"serve.py: error: {err}", file=sys.stderr)
        return 2
    print(f"serving {spec.version} ({spec.engine}) on http://{spec.host}:{spec.port}/api/v1", flush=True)
    run_server(spec, service)
    return 0


if __name__ == "__main__":
    sys.exit(main())
