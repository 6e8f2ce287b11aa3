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

from kernel import __version__
from kernel.errors import UserError
from curation import quiet

# command group modules, in help order
_GROUPS = ["cli_curate", "cli_fetch", "cli_demo", "cli_metrics", "cli_bench", "cli_model"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="anytalker", description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  anytalker demo\n  anytalker curate run single_person --input VIDEOS/ --output runs/r1\n"
               "  anytalker COMMAND --help\n\nflags shared by all commands: docs/cli.md")
    p.add_argument("--version", action="version", version=f"anytalker {__version__}",
                   help="print the toolkit version and exit")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars: print only results, warnings and errors")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="debug logging, and show the start-up output of mediapipe/TFLite and Ray")
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
    # before any command imports mediapipe / Ray: they read their log settings at load time,
    # and Ray workers inherit them from this process's environment
    prior = os.environ.get(quiet.VERBOSE_ENV)
    if args.verbose:
        quiet.set_verbose(True)
    try:
        return _run(parser, args)
    finally:  # main() called in-process (tests, notebooks): -v lasts for this command only
        if prior is None:
            os.environ.pop(quiet.VERBOSE_ENV, None)
        else:
            os.environ[quiet.VERBOSE_ENV] = prior


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    args.verbose = quiet.verbose()  # ANYTALKER_VERBOSE=1 in the environment counts as -v
    quiet.apply_env()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else (logging.WARNING if args.quiet else logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    quiet.quiet_python_loggers()
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    # No command reads standard input. A terminal there lets a child (ffmpeg, a Ray worker) that
    # touches it stop the whole job when it runs in the background (SIGTTOU), so: /dev/null.
    from pipelines.rayutil import detach_stdin

    detach_stdin()
    with quiet.filtered_process_stderr():
        try:
            return int(args.func(args) or 0)
        except UserError as e:
            print(f"anytalker: error: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("anytalker: interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:  # `anytalker ... | head`: the reader left, nothing to report
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0


if __name__ == "__main__":
    sys.exit(main())
