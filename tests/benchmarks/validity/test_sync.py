"""The sync validity check's out-of-fold operating point."""

from __future__ import annotations

import pytest

from benchmarks.validity.sync import _choose_threshold


def test_threshold_counts_the_offset_rule_and_accepts_at_most_the_allowed_share():
    # 20 mismatched speech windows: 10 rejected by the offset rule whatever their conf
    near = [(0, c / 10) for c in range(10)]  # confs 0.0 .. 0.9, |offset| 0
    far = [(9, 5.0)] * 10  # high conf, but |offset| 9 > 3
    t = _choose_threshold(near + far, max_off=3, max_accept_neg=0.10)
    accepted = [w for w in near + far if w[1] >= t and abs(w[0]) <= 3]
    assert len(accepted) == 2  # 10 % of 20
    assert t == pytest.approx(0.7, abs=1e-5)  # just above the 3rd highest: the lowest that keeps 2
    # when the offset rule alone rejects enough, any conf passes (threshold 0)
    assert _choose_threshold([(9, 1.0)] * 19 + [(0, 0.5)], max_off=3) == 0.0
    assert _choose_threshold([], max_off=3) != _choose_threshold([], max_off=3)  # NaN: nothing to choose on
