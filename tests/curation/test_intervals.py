"""Interval helpers of curation/intervals.py that curation/audio.py relies on."""

from __future__ import annotations

from curation.intervals import bridge_within_turns


def test_bridge_within_turns_fills_pauses_inside_a_turn_only():
    turns = [(0.0, 1.0, "A"), (1.3, 2.0, "A"),  # pause inside A's turn: filled
             (2.2, 3.0, "B"),  # gap at a change of speaker: kept
             (3.5, 4.0, "A"), (4.2, 5.0, "A"), (4.5, 4.6, "B"),  # A's pause 4.0-4.2 is free of B
             (6.0, 6.5, "B"), (8.0, 8.5, "B")]  # longer than the bridge: kept
    out = bridge_within_turns(turns, 1.0)
    assert out == [(0.0, 2.0, "A"), (2.2, 3.0, "B"), (3.5, 5.0, "A"), (4.5, 4.6, "B"), (6.0, 6.5, "B"),
                   (8.0, 8.5, "B")]
    # A's 2.0-3.5 pause holds B's turn: never bridged, whatever the length
    assert (0.0, 5.0, "A") not in bridge_within_turns(turns, 2.0)
    assert bridge_within_turns(turns, 0.0) == sorted(turns)
