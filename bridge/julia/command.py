"""``python -m bridge.julia setup | status | check ENGINE``: the command that sets up the Julia engines
(:mod:`.setup`) and says what is set up (:mod:`.record`).

What cannot be done (no Julia in range, an engine not set up, a failed instantiation or check) is one
line per engine, ``bridge.julia: error: <why and the fix>``, and exit 1; bad input exits 2."""
from __future__ import annotations

import subprocess

from ..cli import EXIT_FAILED, EXIT_OK, Parser, exit_codes_epilog, fail
from ..errors import UsageError
from .boundary import PACKAGES
from .record import load_record, unavailable_reason
from .setup import check, setup_engine

COMMAND = "bridge.julia"


def main(argv: list[str] | None = None) -> int:
    p = Parser(COMMAND, description="Set up the Julia engines (flux, knet): find Julia, make, instantiate and "
                                    "precompile each engine's environment, and record it.",
               epilog=exit_codes_epilog("an engine could not be set up or checked (one line each says why)",
                                        signals=False))
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("setup", help="find Julia for each engine, make, instantiate and precompile its environment")
    s.add_argument("--engines", default="flux,knet", help="which Julia engines (default: flux,knet)")
    s.add_argument("--flux-julia", metavar="PATH", help="Julia >= 1.10.3, < 1.12 executable for flux")
    s.add_argument("--knet-julia", metavar="PATH", help="Julia 1.9 executable for knet")
    s.add_argument("--install", action="store_true",
                   help="download missing Julia versions (juliaup, else juliacall's installer)")
    s.add_argument("--cuda", action="store_true",
                   help="add CUDA.jl and cuDNN to flux's environment, for --device cuda (knet always has CUDA)")
    sub.add_parser("status", help="show what is set up")
    c = sub.add_parser("check", help="load one engine's package, verify the zero-copy hand-off, time a first epoch")
    c.add_argument("engine", choices=sorted(PACKAGES))
    args = p.parse_args(argv)
    if args.command == "check":
        reason = unavailable_reason(args.engine)
        if reason:
            return fail(COMMAND, reason)
        try:
            print(check(args.engine))
        except (RuntimeError, subprocess.SubprocessError, OSError) as e:
            return fail(COMMAND, e)
        return EXIT_OK
    if args.command == "status":
        for engine in PACKAGES:
            print(f"{engine}: {unavailable_reason(engine) or load_record()[engine]}")
        return EXIT_OK
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in engines if e not in PACKAGES] or ([] if engines else [args.engines])
    if unknown:
        return fail(COMMAND, UsageError(f"engine {unknown[0]!r} is not a Julia engine; accepted: "
                                        f"{', '.join(PACKAGES)}"))
    failed = False
    for engine in engines:
        try:
            print(setup_engine(engine, getattr(args, f"{engine}_julia"), args.install, args.cuda))
        except (RuntimeError, subprocess.SubprocessError, OSError) as e:
            failed = True
            fail(COMMAND, e)
    return EXIT_FAILED if failed else EXIT_OK
