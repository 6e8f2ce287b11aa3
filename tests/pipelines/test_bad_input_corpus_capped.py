"""The whole bad-input corpus (about 45 bad, odd and good inputs plus counted skips) through the
CLI under a 3 GB address-space cap: a row or a counted skip for every input, no traceback, no
abort, no item beyond its timeout, every good clip accepted (issue 11). The default suite runs
the issue-11 part alone (``test_inputs_accounted.py``)."""

from __future__ import annotations

import time

import pytest

from tests.badinputs import build_audio_cases, build_corpus, build_issue11_cases, build_more_video_cases
from tests.pipelines.test_inputs_accounted import check_accounting, curate_capped


@pytest.mark.slow
def test_full_corpus_under_a_3gb_memory_cap(tmp_path, ffmpeg):
    root = tmp_path / "in"
    expected = build_corpus(root)
    expected.update(build_more_video_cases(root, include_8k=True))
    expected.update({name: "" for name in build_audio_cases(root)})
    issue11, skipped = build_issue11_cases(root / "issue11", tmp_path / "outside")
    expected.update({f"issue11/{k}": v for k, v in issue11.items()})
    assert len(expected) >= 40
    good = sorted(k for k, v in expected.items() if not v)
    t0 = time.time()
    # audio required so that no_audio.mp4 keeps its reason (video_only takes silent sources)
    res = curate_capped(root, tmp_path / "run", "--set", "probe.require_audio=true", timeout_s=1800)
    seconds = time.time() - t0
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Traceback" not in res.stderr and "bad_alloc" not in res.stderr
    check_accounting(tmp_path / "run", expected, skipped)
    peak_mb = int(res.stderr.strip().splitlines()[-1].split()[-1])
    print(f"{len(expected)} inputs ({len(good)} good) + {sum(skipped.values())} counted skips in {seconds:.0f}s "
          f"under a 3 GB address-space cap; peak RSS of the run {peak_mb} MB")
