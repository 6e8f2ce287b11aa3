"""``curation.fields.encode``: the list short-cut gives what element-by-element encoding gives."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from curation.fields import EncodeError, encode


def test_float_and_int_lists_encode_like_their_elements():
    floats = [0.5, float("nan"), 3, np.float32(0.25), float("inf"), None, -0.0]
    got = encode(floats, pa.list_(pa.float64()), "sig")
    assert got == [0.5, None, 3.0, 0.25, None, None, -0.0]
    assert [type(x) for x in got] == [float, type(None), float, float, type(None), type(None), float]
    assert encode(np.array([1.5, np.nan]), pa.list_(pa.float32())) == [1.5, None]
    assert encode([1, 2.0, np.int64(3), None], pa.list_(pa.int64())) == [1, 2, 3, None]
    nested = encode([[1.0, math.nan], [2]], pa.list_(pa.list_(pa.float64())))
    assert nested == [[1.0, None], [2.0]]


@pytest.mark.parametrize("value, type_, message", [
    ([1.0, "x"], pa.list_(pa.float64()), r"sig\[1\]: expected a number"),
    ([1.0, True], pa.list_(pa.float64()), r"sig\[1\]: expected a number"),
    ([1, True], pa.list_(pa.int64()), r"sig\[1\]: expected an integer"),
    ([1, 2.5], pa.list_(pa.int64()), r"sig\[1\]: expected an integer, got 2.5"),
])
def test_list_errors_name_the_element(value, type_, message):
    with pytest.raises(EncodeError, match=message):
        encode(value, type_, "sig")
