"""Arrow arrays built from buffers equal pyarrow's own, and building them never imports pandas."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from warehouse.arrow import numeric_array, numpy_values, repeated_string, string_array


def test_built_arrays_equal_pyarrow_s():
    values = ["", "a", None, "ünïcødé ✓", "x" * 300, None]
    built = string_array(values)
    assert built.equals(pa.array(values, pa.string())) and built.null_count == 2
    assert string_array([]).equals(pa.array([], pa.string()))
    assert repeated_string("ab", 3).equals(pa.array(["ab"] * 3, pa.string()))
    assert repeated_string("", 2).equals(pa.array(["", ""], pa.string()))
    for type_ in (pa.int32(), pa.int64(), pa.uint64(), pa.float64()):
        assert numeric_array([3, 1, 2], type_).equals(pa.array([3, 1, 2], type_))
    with pytest.raises(TypeError, match="not string"):
        numeric_array([1], pa.string())


def test_numpy_values_read_slices_chunks_and_booleans():
    numbers = pa.array(np.arange(10, dtype=np.int64))
    assert numpy_values(numbers.slice(3, 4)).tolist() == [3, 4, 5, 6]
    assert numpy_values(pa.chunked_array([numbers.slice(0, 2), numbers.slice(8, 2)])).tolist() == [0, 1, 8, 9]
    flags = pa.array([True, False, True, True, False, False, True, False, True, True])
    assert numpy_values(flags.slice(5, 5)).tolist() == [False, True, False, True, True]
    assert numpy_values(pa.array([], pa.int32())).dtype == np.int32


def test_building_and_reading_arrays_leaves_pandas_unimported():
    code = """
import sys
import numpy as np
from warehouse.arrow import numeric_array, numpy_values, repeated_string, string_array
a = string_array(["a", None]); b = numeric_array(np.arange(3)); c = repeated_string("x", 2)
numpy_values(b); numpy_values(a.is_null())
assert "pandas" not in sys.modules, "pandas was imported"
import pyarrow as pa
pa.array([1])  # pyarrow's own constructor does import it: the check above can fail
assert "pandas" in sys.modules
"""
    subprocess.run([sys.executable, "-c", code], check=True)
