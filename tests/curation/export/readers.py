"""A strict reader of MosaicML streaming MDS datasets, written from the format as streaming defines it
(mosaicml/streaming: streaming/base/format/mds/reader.py, encodings.py, base/format/base/writer.py),
because mosaicml-streaming itself cannot be installed beside this project's pins (STACK-NOTES).

It reads what streaming's StreamingDataset reads (index.json, per-shard offsets, per-sample column
sizes and encodings) and fails on anything streaming's MDSWriter would not have written: other
versions, compression, hashes, a shard whose byte count, sample count or embedded config differs
from its index entry, or offsets that do not tile the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SHAPE_DTYPES = {0: "<u1", 1: "<u2", 2: "<u4", 3: "<u8"}
VALUE_DTYPES = {"uint8", "int8", "uint16", "int16", "float16", "uint32", "int32", "float32", "uint64", "int64", "float64"}
SHARD_ONLY_KEYS = ("samples", "raw_data", "zip_data")


def decode(encoding: str, data: bytes):
    name, _, config = encoding.partition(":")
    if name == "str":
        return data.decode("utf-8")
    if name == "ndarray":
        return _decode_ndarray(config, data)
    raise AssertionError(f"encoding {encoding} is not one this reader knows")


def _decode_ndarray(config: str, data: bytes) -> np.ndarray:
    parts = config.split(":") if config else []
    assert parts and parts[0] in VALUE_DTYPES, f"ndarray encoding without a known fixed dtype: {config!r}"
    dtype = np.dtype(parts[0]).newbyteorder("<")
    if len(parts) == 2:
        shape = tuple(int(d) for d in parts[1].split(","))
        return np.frombuffer(data, dtype).reshape(shape)
    byte, index = data[0], 1
    ndim, shape_dtype = byte >> 2, np.dtype(SHAPE_DTYPES[byte & 3])
    shape = tuple(int(d) for d in np.frombuffer(data, shape_dtype, count=ndim, offset=index))
    index += ndim * shape_dtype.itemsize
    values = np.frombuffer(data, dtype, offset=index)
    assert values.size == int(np.prod(shape)), f"ndarray of shape {shape} holds {values.size} values"
    return values.reshape(shape)


def read_shard(folder: Path, shard: dict) -> list[dict]:
    assert shard["format"] == "mds" and shard["version"] == 2, shard
    assert shard["compression"] is None and shard["zip_data"] is None and shard["hashes"] == [], "compressed or hashed shard"
    data = (folder / shard["raw_data"]["basename"]).read_bytes()
    assert len(data) == shard["raw_data"]["bytes"], f"{shard['raw_data']['basename']}: size differs from index.json"
    count = int(np.frombuffer(data, "<u4", count=1)[0])
    assert count == shard["samples"], f"{shard['raw_data']['basename']}: {count} samples, index.json says {shard['samples']}"
    offsets = np.frombuffer(data, "<u4", count=count + 1, offset=4).astype(np.int64)
    config_start = 4 + 4 * (count + 1)
    config = json.loads(data[config_start : offsets[0]])
    assert config == {k: v for k, v in shard.items() if k not in SHARD_ONLY_KEYS}, "shard config differs from index.json"
    assert data[config_start : offsets[0]] == json.dumps(config, sort_keys=True).encode(), "config not dumped as MDSWriter does"
    assert offsets[-1] == len(data) and bool(np.all(np.diff(offsets) > 0)), "sample offsets do not tile the shard"
    return [_decode_sample(shard, data[offsets[i] : offsets[i + 1]]) for i in range(count)]


def _decode_sample(shard: dict, data: bytes) -> dict:
    names, encodings, sizes = shard["column_names"], shard["column_encodings"], shard["column_sizes"]
    assert names == sorted(names), "MDSWriter keeps columns sorted by name"
    variable = sum(size is None for size in sizes)
    header = np.frombuffer(data, "<u4", count=variable)
    lengths, index = iter(int(n) for n in header), 4 * variable
    sample = {}
    for name, encoding, size in zip(names, encodings, sizes):
        size = next(lengths) if size is None else size
        sample[name] = decode(encoding, data[index : index + size])
        index += size
    assert index == len(data), "sample has bytes beyond its columns"
    return sample


def read_mds(folder: str | Path) -> tuple[dict, list[dict]]:
    """index.json and every sample of an MDS dataset folder, in order."""
    folder = Path(folder)
    index = json.loads((folder / "index.json").read_text(encoding="utf-8"))
    assert index["version"] == 2, index["version"]
    samples = [sample for shard in index["shards"] for sample in read_shard(folder, shard)]
    return index, samples
