"""Run a measurement in a fresh Python child and read back its one ``RESULT {json}`` line.

The perf scripts time each run in its own interpreter (imports, model loads and memory start
from zero, as in a real ``anytalker curate``); stdin is /dev/null so a child never stops on a
terminal."""

from __future__ import annotations

import json
import subprocess
import sys


def run_result_child(code: str, args: list[str], env: dict, what: str, cwd: str | None = None) -> dict:
    """``python -c code *args`` -> the JSON after its ``RESULT `` line; exits naming ``what``
    (and the child's last stderr) when the child fails or prints no result."""
    res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=cwd,
                         stdin=subprocess.DEVNULL)
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if res.returncode != 0 or line is None:
        raise SystemExit(f"{what} failed:\n{res.stderr[-3000:]}")
    return json.loads(line[len("RESULT "):])
