"""A shard error raised in a Dask worker reaches the driver pickled: it must survive the trip with
its message, path and reason (before, unpickling it raised a TypeError that hid the real error)."""

from __future__ import annotations

import pickle

from warehouse.shards import ShardError


def test_a_shard_error_survives_pickling_whole():
    error = ShardError("/data/in/3.parquet", "not a readable Parquet file (magic bytes not found)")
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is ShardError
    assert str(again) == "/data/in/3.parquet: not a readable Parquet file (magic bytes not found)"
    assert (again.path, again.reason) == (error.path, error.reason)
