"""The stage adapter: per-item exceptions become status rows; contracts are checked."""

from __future__ import annotations

import time

import pytest

from curation.base import (Filter, Reason, Stage, StageConfigError, check_contracts, reject,
                           run_stage_batch)


class Boom(Stage):
    name = "boom"
    version = "3"
    params = {"bad": "x"}

    def process(self, row):
        if row["v"] == self.bad:
            raise ValueError("cannot handle x")
        return {**row, "seen": True}


class FanOut(Stage):
    name = "fan"
    produces = ("k",)

    def process(self, row):
        return [{**row, "k": i} for i in range(row["n"])]


class Slow(Stage):
    name = "slow"
    timeout_s = 0.2

    def process(self, row):
        time.sleep(2)
        return row


class Even(Filter):
    name = "even"

    def measure(self, row):
        return {"parity": row["v"] % 2}

    def keep(self, row):
        return (row["parity"] == 0, Reason.TOO_SHORT, f"{row['v']} is odd")


def test_one_bad_item_becomes_one_reject_row_and_the_others_survive():
    rows = [{"v": "a", "status": "ok"}, {"v": "x", "status": "ok"}, {"v": "b", "status": "ok"}]
    out = run_stage_batch(Boom(), rows)
    by = {r["v"]: r for r in out}
    assert by["a"]["seen"] and by["b"]["seen"]
    bad = by["x"]
    assert bad["status"] == "filtered" and bad["reason"] == "exception"
    assert "cannot handle x" in bad["error_detail"] and bad["failed_stage"] == "boom"
    assert all(r["stage_versions"]["boom"] == "3" for r in out)


def test_timeout_is_a_transient_failure():
    out = run_stage_batch(Slow(), [{"status": "ok"}])
    assert out[0]["status"] == "failed" and out[0]["reason"] == "timeout"


class Counting(Stage):
    name = "counting"
    timeout_s = 0.3

    def __init__(self, **kw):
        super().__init__(**kw)
        self.calls = 0

    def process(self, row):
        self.calls += 1
        if row.get("hang"):
            time.sleep(5)
        return row


def test_an_item_meets_its_timeout_once():
    """A single-item batch that times out is not run again: the issue's FIFO waited 2 x 600 s."""
    stage = Counting()
    t0 = time.perf_counter()
    out = run_stage_batch(stage, [{"status": "ok", "hang": True}])
    assert time.perf_counter() - t0 < 1.0 and stage.calls == 1
    assert out[0]["reason"] == "timeout"
    # in a batch, the others are kept: each row then runs alone once with its own timeout
    stage = Counting()
    out = run_stage_batch(stage, [{"status": "ok", "v": 1}, {"status": "ok", "hang": True}, {"status": "ok", "v": 2}])
    assert sorted(r.get("reason") or "ok" for r in out) == ["ok", "ok", "timeout"]


def test_rejected_rows_pass_through_untouched_and_fan_out_multiplies():
    rejected = reject({"n": 5, "status": "ok"}, Reason.NO_AUDIO, "none")
    out = run_stage_batch(FanOut(), [rejected, {"n": 3, "status": "ok"}])
    assert len(out) == 4
    assert out[0] is rejected or out[0] == rejected
    assert [r["k"] for r in out[1:]] == [0, 1, 2]


def test_filter_keeps_measurements_on_rejected_rows():
    out = run_stage_batch(Even(), [{"v": 1, "status": "ok"}, {"v": 2, "status": "ok"}])
    odd = next(r for r in out if r["v"] == 1)
    assert odd["status"] == "filtered" and odd["reason"] == "too_short" and odd["parity"] == 1
    assert next(r for r in out if r["v"] == 2)["status"] == "ok"


def test_unknown_parameter_and_broken_contract_are_config_errors():
    with pytest.raises(StageConfigError, match="no parameter"):
        Boom(nope=1)
    with pytest.raises(StageConfigError, match="requires column"):
        class NeedsK(Stage):
            name = "needs_k"
            requires = ("k",)
        check_contracts([NeedsK(), FanOut()], ["n"])
    check_contracts([FanOut()], ["n"])


def test_reason_codes_are_an_enumeration_with_transient_kinds():
    assert Reason("timeout").transient and Reason("out_of_memory").transient
    assert not Reason("decode_error").transient


def test_media_error_inside_a_stage_is_a_decode_error():
    from curation.media import MediaError

    class Decodes(Stage):
        name = "decodes"

        def process(self, row):
            raise MediaError("x.mp4: cannot decode frames 0..9")

    (out,) = run_stage_batch(Decodes(), [{"status": "ok"}])
    assert out["status"] == "filtered" and out["reason"] == "decode_error" and "x.mp4" in out["error_detail"]


class Looping(Stage):
    name = "looping"
    timeout_s = 0.3

    def process(self, row):
        end = time.perf_counter() + 5
        while time.perf_counter() < end:  # a per-frame loop: back in Python every 10 ms
            time.sleep(0.01)
        return row


def test_timeout_also_holds_outside_the_main_thread():
    """Ray Data runs actor-pool stages in a worker thread, where SIGALRM cannot be used."""
    import threading

    result = {}

    def run():
        t0 = time.perf_counter()
        out = run_stage_batch(Looping(), [{"status": "ok"}])
        result.update(seconds=time.perf_counter() - t0, reason=out[0]["reason"])
        result["after"] = run_stage_batch(Counting(), [{"status": "ok"}])[0]["status"]  # no stray timeout later
        time.sleep(0.5)

    th = threading.Thread(target=run)
    th.start()
    th.join(10)
    assert result["reason"] == "timeout" and result["seconds"] < 1.5
    assert result["after"] == "ok"
