"""`anytalker` command line: one entry point, one module per command group.

Each ``anytalker/cli_*.py`` module exposes ``register(subparsers)``; a command function returns
an exit code. ``UserError`` is printed as one readable line (file + what to do), not a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

# mediapipe / TFLite print C++ log lines on every model load; keep the terminal for our output
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from anytalker import __version__
from anytalker.errors import UserError

# command group modules, in help order
_GROUPS = ["cli_curate", "cli_fetch", "cli_demo", "cli_metrics", "cli_bench", "cli_model"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="anytalker", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"anytalker {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name in _GROUPS:
        try:
            mod = importlib.import_module(f"anytalker.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"anytalker.{name}":
                continue  # group not installed in this build
            raise
        mod.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        for noisy in ("pyscenedetect", "ray", "ray.data", "absl"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    # No command reads standard input. A terminal there lets a child (ffmpeg, a Ray worker) that
    # touches it stop the whole job when it runs in the background (SIGTTOU), so: /dev/null.
    from pipelines.rayutil import detach_stdin

    detach_stdin()
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"anytalker: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("anytalker: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
