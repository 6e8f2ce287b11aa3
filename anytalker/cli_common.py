"""One flag vocabulary for every ``anytalker`` command (see docs/cli.md).

    --output PATH      what the command writes (file or folder)
    --json PATH        a machine-readable report ("-" = standard output)
    --metric NAME      repeated, one metric each
    --data DIR         the data root (example media, the folder source paths are relative to)
    -q / --quiet       no progress bars, only results and warnings
    -v / --verbose     debug logging, and third-party start-up output again

Spellings used before this vocabulary still parse for one release as hidden aliases: they are
left out of ``--help`` and print a one-line note naming the new spelling.
"""

from __future__ import annotations

import argparse
import sys
import textwrap

JSON_STDOUT = "-"

# The shared vocabulary: one meaning per flag in every command (docs/cli.md lists where).
VOCABULARY = {
    "--output": "what the command writes: a file or a folder, named in each command's help",
    "--json": "a machine-readable report written to PATH ('-' = standard output)",
    "--metric": "one metric; repeat the flag for several",
    "--data": "the data root: example media, and the folder source paths are relative to",
    "-q / --quiet": "no progress bars: only results, warnings and errors",
    "-v / --verbose": "debug logging, plus the start-up output of mediapipe/TFLite/absl and Ray",
}


class _DeprecatedStore(argparse.Action):
    """A hidden old spelling: stores like the new option and says which one to use."""

    def __init__(self, option_strings, dest, new: str = "", const=None, nargs=None, transform=None, **kw):
        self.new = new
        self.transform = transform
        super().__init__(option_strings, dest, nargs=nargs, const=const, **kw)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"anytalker: note: {option_string} is deprecated and will be removed; use {self.new}",
              file=sys.stderr)
        if self.nargs == 0:
            value = self.const
        elif self.transform is not None:
            value = self.transform(values, getattr(namespace, self.dest, None))
        else:
            value = values
        setattr(namespace, self.dest, value)


def old_spelling(p, flag: str, dest: str, new: str, *, switch: bool = False, const=None, transform=None,
                 type=None, group=None) -> None:
    """Register ``flag`` as a hidden alias of ``new`` (stores into ``dest``)."""
    target = group if group is not None else p
    if switch:
        target.add_argument(flag, dest=dest, action=_DeprecatedStore, nargs=0, const=const, new=new,
                            help=argparse.SUPPRESS)
    else:
        target.add_argument(flag, dest=dest, action=_DeprecatedStore, new=new, transform=transform, type=type,
                            help=argparse.SUPPRESS)


def add_verbosity(p) -> None:
    """``-q`` / ``-v`` on a subcommand (they also work before the command name)."""
    p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                   help="no progress bars: print only results, warnings and errors")
    p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                   help="debug logging, and show the start-up output of mediapipe/TFLite and Ray")


def add_output(p, help: str, *, required: bool = False, old: tuple[str, ...] = (), type=None, default=None,
               metavar: str = "PATH") -> None:
    """``--output`` (with hidden old spellings that satisfy ``required`` as well)."""
    if old:
        g = p.add_mutually_exclusive_group(required=required)
        g.add_argument("--output", dest="output", type=type, default=default, metavar=metavar, help=help)
        for flag in old:
            old_spelling(p, flag, "output", "--output", type=type, group=g)
    else:
        p.add_argument("--output", dest="output", type=type, default=default, required=required, metavar=metavar,
                       help=help)


def add_json(p, what: str, *, old_switch: bool = True) -> None:
    """``--json PATH`` ("-" for standard output). ``old_switch`` keeps the bare ``--json`` of
    earlier releases working: it means standard output."""
    p.add_argument("--json", dest="json", metavar="PATH", nargs="?" if old_switch else None,
                   const=JSON_STDOUT if old_switch else None, default=None,
                   help=f"write {what} as JSON to PATH ('-' = standard output)")


def add_data(p, help: str | None = None, *, old: tuple[str, ...] = ()) -> None:
    p.add_argument("--data", dest="data", default=None, metavar="DIR",
                   help=help or "data root (default: $ANYTALKER_DATA, ../shared/data, then the fetched example set)")
    for flag in old:
        old_spelling(p, flag, "data", "--data")


def add_metric(p, help: str, *, choices=None, required: bool = False, old_comma: str | None = None) -> None:
    """Repeated ``--metric NAME``; ``old_comma`` (e.g. ``--metrics``) takes the old ``a,b`` list."""

    def check(name: str) -> str:
        if choices is not None and name not in choices:
            raise argparse.ArgumentTypeError(f"unknown metric {name!r}; choose from {', '.join(choices)}")
        return name

    if old_comma:
        g = p.add_mutually_exclusive_group(required=required)
        g.add_argument("--metric", dest="metric", action="append", type=check, metavar="NAME", help=help)

        def split(values, prior):
            return (prior or []) + [check(m.strip()) for m in values.split(",") if m.strip()]

        old_spelling(p, old_comma, "metric", "--metric NAME (repeated)", transform=split, group=g)
    else:
        p.add_argument("--metric", dest="metric", action="append", type=check, required=required, metavar="NAME",
                       help=help)


def leaf(sub, name: str, help: str, examples: list[str], description: str | None = None, **kw):
    """A subcommand parser with ``-q``/``-v`` and an ``examples:`` epilog."""
    epilog = "examples:\n" + "\n".join(textwrap.indent(e, "  ") for e in examples)
    p = sub.add_parser(name, help=help, description=description or help, epilog=epilog,
                       formatter_class=argparse.RawDescriptionHelpFormatter, **kw)
    add_verbosity(p)
    return p


def group(sub, name: str, help: str, examples: list[str]):
    """A command group (``curate``, ``metrics``, ``bench``) whose subcommands are leaves."""
    epilog = "examples:\n" + "\n".join(textwrap.indent(e, "  ") for e in examples)
    p = sub.add_parser(name, help=help, description=help, epilog=epilog,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    return p


def write_json_report(path: str | None, doc, *, default=None) -> None:
    """Write ``doc`` to ``path`` ("-" = standard output)."""
    import json
    from pathlib import Path

    text = json.dumps(doc, indent=2, default=default)
    if path in (None, ""):
        return
    if path == JSON_STDOUT:
        print(text)
        return
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text + "\n", encoding="utf-8")


def progress_enabled(args) -> bool:
    return not getattr(args, "quiet", False)
