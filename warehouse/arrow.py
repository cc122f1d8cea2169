"""Arrow arrays from numpy arrays and Python strings, built from their buffers.

pyarrow's own constructors (`pa.array`, `pa.scalar`) look at every value they are given for pandas
types, and the first look imports pandas: ~0.2 s of CPU, a large share of a short job (a small
mixture, one whose caches are warm), for a library the job never uses. These build the same
arrays from buffers, which never looks for pandas.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

_NUMPY_TYPES = {
    pa.int8(): np.int8,
    pa.int16(): np.int16,
    pa.int32(): np.int32,
    pa.int64(): np.int64,
    pa.uint8(): np.uint8,
    pa.uint16(): np.uint16,
    pa.uint32(): np.uint32,
    pa.uint64(): np.uint64,
    pa.float32(): np.float32,
    pa.float64(): np.float64,
}
_MAX_STRING_BYTES = 2**31 - 1  # `string` arrays have 32-bit offsets
_INT64 = pa.int64()


def numeric_array(values: np.ndarray | Sequence[int | float], type: pa.DataType = _INT64) -> pa.Array:
    """A null-free numeric array of `type` holding `values` (converted as numpy converts them)."""
    if type not in _NUMPY_TYPES:
        raise TypeError(f"numeric_array builds {sorted(map(str, _NUMPY_TYPES))}, not {type}")
    data = np.ascontiguousarray(values, dtype=_NUMPY_TYPES[type])
    if data.ndim != 1:
        raise ValueError(f"numeric_array takes one dimension, not {data.ndim}")
    return pa.Array.from_buffers(type, len(data), [None, pa.py_buffer(data)])


def string_array(values: Sequence[str | None]) -> pa.StringArray:
    """A `string` array of `values`, None as null."""
    encoded = [b"" if value is None else value.encode("utf-8") for value in values]
    lengths = np.fromiter(map(len, encoded), np.int64, len(encoded))
    offsets = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] > _MAX_STRING_BYTES:
        raise ValueError(f"{offsets[-1]:,} bytes of text do not fit one string array (at most {_MAX_STRING_BYTES:,})")
    missing = np.fromiter((value is None for value in values), bool, len(encoded))
    nulls = int(missing.sum())
    validity = pa.py_buffer(np.packbits(~missing, bitorder="little")) if nulls else None
    return pa.StringArray.from_buffers(
        len(encoded), pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(b"".join(encoded)), validity, nulls
    )


def repeated_string(value: str, count: int) -> pa.StringArray:
    """`value` `count` times."""
    encoded = value.encode("utf-8")
    if len(encoded) * count > _MAX_STRING_BYTES:
        raise ValueError(f"{count:,} copies of {len(encoded):,} bytes do not fit one string array")
    offsets = np.arange(count + 1, dtype=np.int64) * len(encoded)
    return pa.StringArray.from_buffers(count, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(encoded * count))


def utf8_buffer(texts: pa.StringArray) -> tuple[pa.Buffer | None, np.ndarray]:
    """A null-free string array's UTF-8 data buffer and where each of its strings starts in it: a
    read-only int32 view of len(texts) + 1 offsets (a slice's own, not rebased to 0)."""
    offsets = np.frombuffer(texts.buffers()[1], np.int32, len(texts) + 1, 4 * texts.offset)
    return texts.buffers()[2], offsets


def numpy_values(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The values of a numeric or boolean array as numpy: a read-only view of a numeric array's
    buffer, a copy for booleans (stored as bits) and several chunks. A null's slot holds whatever
    its buffer holds: callers read the validity (`pc.is_null`) where nulls can occur."""
    dtype = _numpy_dtype(values.type)
    if isinstance(values, pa.ChunkedArray):
        if values.num_chunks == 1:
            return numpy_values(values.chunk(0))
        return np.concatenate([numpy_values(chunk) for chunk in values.chunks]) if values.num_chunks else np.empty(0, dtype)
    if len(values) == 0:
        return np.empty(0, dtype)
    buffer = values.buffers()[1]
    if pa.types.is_boolean(values.type):
        bits = np.frombuffer(buffer, np.uint8)
        return np.unpackbits(bits, count=values.offset + len(values), bitorder="little")[values.offset :].astype(bool)
    return np.frombuffer(buffer, dtype, len(values), values.offset * dtype.itemsize)


def _numpy_dtype(type: pa.DataType) -> np.dtype:
    if pa.types.is_boolean(type):
        return np.dtype(bool)
    if type not in _NUMPY_TYPES:
        raise TypeError(f"numpy_values reads {sorted(map(str, _NUMPY_TYPES))} or bool, not {type}")
    return np.dtype(_NUMPY_TYPES[type])
