"""`anytalker demo` on the real example media: the in-sync talking clips are accepted and the
mismatched negative it builds (a talking face with another speaker's audio) is rejected by the
sync judgment, with the default (offline) sync backend."""

from __future__ import annotations

import pandas as pd

from kernel.data import DEMO_MISMATCHED_PAIR, DEMO_MULTI_PERSON, DEMO_SINGLE_PERSON
from tests.conftest import shared_file


def test_demo_accepts_in_sync_clips_and_rejects_the_mismatched_negative(tmp_path, capsys):
    from anytalker.cli import main

    for rel in DEMO_SINGLE_PERSON + DEMO_MULTI_PERSON + DEMO_MISMATCHED_PAIR:
        shared_file(rel)  # skips with a message when the shared media is absent
    data = shared_file(DEMO_SINGLE_PERSON[0]).parents[1]
    out = tmp_path / "demo"
    assert main(["demo", "--data", str(data), "--output", str(out), "-q"]) == 0

    accepted = pd.read_parquet(out / "single_person" / "clips")
    rejects = pd.read_parquet(out / "single_person" / "rejects")
    accepted_sources = {p.split("/")[-1] for p in accepted["source_path"]}
    assert accepted_sources == {rel.split("/")[-1] for rel in DEMO_SINGLE_PERSON}
    negative = rejects[rejects["source_path"].str.contains(r"\+")]
    assert len(negative) >= 1 and set(negative["status"]) == {"filtered"}
    assert set(negative["reason"]) <= {"low_sync", "sync_offset"}
    assert not accepted["source_path"].str.contains(r"\+").any()  # no window of the negative kept

    two = pd.read_parquet(out / "multi_person" / "clips")
    assert len(two) == 1 and int(two["num_persons"].iloc[0]) == 2
