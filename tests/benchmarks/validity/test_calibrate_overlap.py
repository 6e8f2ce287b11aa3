"""Fold assignment of the overlap detector's cross-validation (benchmarks.validity.calibrate_overlap)."""

from __future__ import annotations

from benchmarks.validity.calibrate_overlap import assign_folds, source_keys
from curation.overlap.train import excluding

import numpy as np


def test_source_keys_tell_interact_1_from_interact_11_and_find_talking_clips():
    other = {"PC-AVS_Input_00002", "styletalk_andrew_clip_1"}
    assert source_keys("conv_interact_11_s0_nb", other) == {"interact_11"}
    assert source_keys("three_interact_1l_interact_12r_interact_13l", other) == {"interact_1", "interact_12", "interact_13"}
    assert source_keys("xconv_PC-AVS_Input_00002__styletalk_andrew_clip_1", other) == other


def test_recordings_that_meet_in_one_file_share_a_fold_and_folds_are_balanced():
    files = [{"a"}, {"a"}, {"b"}, {"b", "c"}, {"c"}, {"d"}, {"e"}, {"f"}, set()]
    fold, fold_keys = assign_folds(files, 3)
    assert fold[0] == fold[1] and fold[2] == fold[3] == fold[4]
    assert {"b", "c"} <= fold_keys[fold[3]]
    assert max(np.bincount(fold)) - min(np.bincount(fold)) <= 1
    # a fold model never trains on a mixture that uses one of its fold's recordings
    keys = np.array(["a|x", "b|d", "e|f"])
    held = fold_keys[fold[2]]
    assert not any(set(k.split("|")) & held for k in keys[excluding(keys, held)])
