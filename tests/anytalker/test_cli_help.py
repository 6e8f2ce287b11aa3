"""Every subcommand documents every option and shows an example; docs/cli.md matches the parser;
one name per idea (old spellings parse, hidden, to the same value)."""

from __future__ import annotations

import argparse

import pytest

from anytalker import cli_doc
from anytalker.cli import build_parser, main

LEAVES = cli_doc.leaf_parsers()
# spellings replaced by the shared vocabulary: none of them may be shown in any --help
RETIRED = {"--out", "--metrics", "--no-progress", "--progress", "--data-root", "--audio-root",
           "--reference-root", "--no-per-sample"}


def test_every_command_is_covered():
    assert {"curate run", "curate status", "curate rejects", "curate describe", "curate report", "fetch", "demo",
            "metrics ls", "metrics run", "bench validate", "bench score", "bench leaderboard", "train",
            "generate"} <= set(LEAVES)


@pytest.mark.parametrize("cmd", sorted(LEAVES))
def test_help_lists_every_option_with_help_and_an_example(cmd):
    p = LEAVES[cmd]
    text = p.format_help()
    for a in p._actions:
        if isinstance(a, argparse._HelpAction) or a.help is argparse.SUPPRESS:
            continue
        assert a.help and a.help.strip(), f"{cmd}: {a.option_strings or a.dest} has no help text"
        for opt in a.option_strings:
            assert opt in text, f"{cmd}: {opt} missing from --help"
    assert "examples:\n  anytalker " in text or "examples:\n  torchrun " in text, f"{cmd}: no example in --help"
    for old in RETIRED:
        assert f"{old} " not in text and f"{old}\n" not in text, f"{cmd}: retired spelling {old} shown in --help"
    for flag in ("-q", "-v"):
        assert flag in text


def test_group_help_shows_examples():
    p = build_parser()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    for name in ("curate", "metrics", "bench"):
        assert "examples:" in sub.choices[name].format_help()
    assert "examples:" in p.format_help()


def test_docs_cli_md_matches_the_parser():
    text = cli_doc.DOC.read_text(encoding="utf-8")
    assert cli_doc.render_doc(text) == text, "docs/cli.md is stale: run `python -m anytalker.cli_doc --write`"


def test_shared_flags_mean_the_same_everywhere():
    """--output never a switch, --json always takes a PATH, --metric always repeatable."""
    for cmd, p in LEAVES.items():
        for a in cli_doc.visible_options(p):
            if "--output" in a.option_strings:
                assert a.nargs is None and not isinstance(a, argparse._StoreTrueAction), cmd
            if "--json" in a.option_strings:
                assert a.metavar == "PATH", cmd
            if "--metric" in a.option_strings:
                assert isinstance(a, argparse._AppendAction), cmd


@pytest.mark.parametrize("old,new", [
    (["metrics", "run", "--videos", "v", "--metrics", "sync_c,identity", "--out", "r.json"],
     ["metrics", "run", "--videos", "v", "--metric", "sync_c", "--metric", "identity", "--output", "r.json"]),
    (["bench", "score", "s", "--out", "r.json", "--audio-root", "a", "--reference-root", "f", "--no-per-sample",
      "--version", "v1"],
     ["bench", "score", "s", "--output", "r.json", "--audio-dir", "a", "--references", "f", "--no-items",
      "--bench-version", "v1"]),
    (["curate", "run", "single_person", "--input", "i", "--output", "o", "--data-root", "d"],
     ["curate", "run", "single_person", "--input", "i", "--output", "o", "--data", "d"]),
    (["train", "tiny", "--shards", "s", "--out", "o", "--no-progress"],
     ["train", "tiny", "--shards", "s", "--output", "o", "-q"]),
    (["curate", "report", "r", "--html", "x.html"], ["curate", "report", "r", "--output", "x.html"]),
])
def test_old_spellings_parse_to_the_new_values(old, new, capsys):
    p = build_parser()
    a, b = vars(p.parse_args(old)), vars(p.parse_args(new))
    a.pop("func"), b.pop("func")
    assert a == b
    assert "is deprecated" in capsys.readouterr().err


def test_missing_required_output_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["metrics", "run", "--metric", "sync_c", "--videos", "v"])
    assert e.value.code == 2 and "--output" in capsys.readouterr().err


def test_json_dash_prints_to_stdout(capsys):
    import json

    assert main(["metrics", "ls", "--json", "-"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"name", "version", "backends"} <= set(rows[0])
