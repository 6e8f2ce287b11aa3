from __future__ import annotations

import pytest
import torch

from tests.conftest import SHARED, shared_file

# a configuration small enough for unit tests on a loaded 2-core machine
MICRO = {
    "video": {"height": 32, "width": 32, "num_frames": 9, "patch": 8, "crop_scale": 3.0},
    "model": {"dim": 64, "depth": 2, "heads": 4, "face_size": 16},
    "train": {"batch_size": 2, "lr": 2e-3, "warmup_steps": 0, "checkpoint_every": 1000, "num_workers": 0,
              "log_every": 1},
    "sample": {"steps": 2, "cfg": 2.0},
}


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def clip_run(tmp_path_factory):
    """A complete run directory over three shared single-person clips and interact_11."""
    from tests.model.shardkit import SINGLE, TWO_PERSON, make_run

    for rel in SINGLE + [TWO_PERSON[0]]:
        shared_file(rel)
    return make_run(tmp_path_factory.mktemp("clip_run"), SHARED, seconds=3.0, two_person=True)
