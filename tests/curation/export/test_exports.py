"""Trainer exports read back by the trainers' own readers: `datasets` (hf), megatron-core's
IndexedDataset (megatron), datatrove's DatatroveFileDataset / DatatroveFolderDataset (nanotron),
and a strict reader written from the MDS specification (mds; mosaicml-streaming cannot be
installed here). The fixture is a small real mixture: Wikipedia text in three sources, one repeated
for a second epoch, shuffled into two Parquet shards with a manifest in the documented layout."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from readers import read_mds

from curation.export import WRITERS, ExportError, export_mixture
from curation.export import mds as mds_format
from schemas.mixture import EXPORT_FORMATS, MANIFEST_SCHEMA_VERSION, MIXTURE_RECORD
from scorers.tokens import load_tokenizer
from warehouse.files import sha256_file, write_json_atomic

SOURCES = {"curated": ("documents", 0.5), "rephrased": ("synthetic", 0.3), "replay": ("replay", 0.2)}
BUNDLED = {"path": "smollm2-135m-instruct", "eos_token": "<|im_end|>"}


def build_mixture(folder: Path, texts: list[str], tokenizer_spec: dict, *, miscount: int | None = None) -> dict:
    """Write a mixture (2 shards + manifest.json) into `folder`; return the manifest path and the
    records in training order with the token ids the tokenizer gives them. `miscount`: the
    position of a record whose `tokens` column (and the manifest) is one too high."""
    tokenizer = load_tokenizer(tokenizer_spec["path"], eos_token=tokenizer_spec["eos_token"])
    names = list(SOURCES)
    records = [
        {
            "text": text,
            "source": names[i % 3],
            "source_kind": SOURCES[names[i % 3]][0],
            "epoch": 0,
            "record_id": f"{names[i % 3]}-{i}",
        }
        for i, text in enumerate(texts)
    ]
    records += [dict(r, epoch=1) for r in records[:6] if r["source"] == "curated"]  # a second pass over a repeated source
    random.Random(7).shuffle(records)
    ids = tokenizer.encode_batch([r["text"] for r in records])
    for position, (record, token_ids) in enumerate(zip(records, ids)):
        record.update(position=position, tokens=len(token_ids) + (position == miscount), mixture_id="fixture", ids=token_ids)
    split = len(records) // 2 + 1
    shards = []
    for index, rows in enumerate((records[:split], records[split:])):
        path = folder / "shards" / f"part-{index:05d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        columns = {name: [r.get(name) for r in rows] for name in MIXTURE_RECORD.names}
        pq.write_table(pa.table(columns, schema=MIXTURE_RECORD), path)
        shards.append(
            {
                "path": str(path.relative_to(folder)),
                "rows": len(rows),
                "bytes": path.stat().st_size,
                "tokens": sum(r["tokens"] for r in rows),
                "sha256": sha256_file(path),
            }
        )
    total = sum(r["tokens"] for r in records)
    sources = {}
    for name, (kind, weight) in SOURCES.items():
        mine = [r for r in records if r["source"] == name]
        tokens = sum(r["tokens"] for r in mine)
        sources[name] = {
            "kind": kind,
            "requested_share": weight,
            "realised_share": tokens / total,
            "requested_tokens": round(weight * total),
            "tokens": tokens,
            "records": len(mine),
            "unique_records": len({r["record_id"] for r in mine}),
            "available_tokens": tokens,
            "epochs": len(mine) / len({r["record_id"] for r in mine}),
            "decontaminated": {},
            "unselected_source_records": 0,
        }
    manifest = {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "mixture_id": "fixture",
        "spec": {},
        "spec_hash": "0" * 64,
        "code_version": "test",
        "tokenizer": {
            "name": tokenizer_spec["path"],
            "path": tokenizer_spec["path"],
            "sha256": tokenizer.sha256,
            "eos_token": tokenizer.eos_token,
            "eos_id": tokenizer.eos_id,
            "vocab_size": tokenizer.vocab_size,
        },
        "sources": sources,
        "shards": shards,
        "totals": {"tokens": total, "records": len(records), "shards": len(shards)},
        "lineage": {"runs": [], "rewrite_ids": [], "scorer_ids": [], "styles": [], "models": [], "eval_sets": []},
    }
    write_json_atomic(folder / "manifest.json", manifest)
    return {"path": folder / "manifest.json", "manifest": manifest, "records": records}


@pytest.fixture(scope="module")
def texts(wiki_docs, spanish_docs) -> list[str]:
    # Wikipedia leads (several paragraphs each) plus accented Spanish text, one with an emoji
    return [*wiki_docs[:27], *spanish_docs[:2], spanish_docs[2] + " 🎶"]


@pytest.fixture(scope="module")
def mixture(tmp_path_factory, texts) -> dict:
    return build_mixture(tmp_path_factory.mktemp("mixture"), texts, BUNDLED)


def by_source(records: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for record in records:
        grouped.setdefault(record["source"], []).append(record)
    return grouped


def manifest_tokens(mixture: dict) -> dict[str, int]:
    return {name: s["tokens"] for name, s in mixture["manifest"]["sources"].items()}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_every_format_has_a_writer():
    assert tuple(WRITERS) == EXPORT_FORMATS


def test_hf_export_loads_with_datasets_in_training_order(mixture, tmp_path):
    import datasets

    summary = export_mixture(mixture["path"], "hf", tmp_path / "out")
    folder = tmp_path / "out" / "hf"
    assert sorted(summary["formats"]["hf"]["files"]) == [
        "jsonl/train-00000-of-00002.jsonl",
        "jsonl/train-00001-of-00002.jsonl",
        "parquet/train-00000-of-00002.parquet",
        "parquet/train-00001-of-00002.parquet",
    ]
    expected = mixture["records"]
    for builder, pattern in (("parquet", "parquet/*.parquet"), ("json", "jsonl/*.jsonl")):
        files = [str(p) for p in sorted(folder.glob(pattern))]
        loaded = datasets.load_dataset(builder, data_files=files, split="train", cache_dir=str(tmp_path / f"cache-{builder}"))
        assert loaded["position"] == list(range(len(expected)))
        assert loaded["record_id"] == [r["record_id"] for r in expected]
        assert loaded["text"] == [r["text"] for r in expected]
        assert loaded["epoch"] == [r["epoch"] for r in expected]
        assert loaded["input_ids"] == [r["ids"] for r in expected]
        assert loaded["tokens"] == [len(r["ids"]) for r in expected]
        totals = {}
        for source, ids in zip(loaded["source"], loaded["input_ids"]):
            totals[source] = totals.get(source, 0) + len(ids)
        assert totals == manifest_tokens(mixture)
    assert summary["tokens_per_source"] == manifest_tokens(mixture)
    assert summary["formats"]["hf"]["tokens_per_s"] > 0


def test_megatron_export_reads_with_megatron_core(mixture, tmp_path):
    from megatron.core.datasets.indexed_dataset import IndexedDataset
    from megatron.core.datasets.utils import get_blend_from_list

    summary = export_mixture(mixture["path"], "megatron", tmp_path / "out")
    folder = (tmp_path / "out" / "megatron").resolve()
    for source, records in by_source(mixture["records"]).items():
        prefix = str(folder / f"{source}_text_document")
        assert IndexedDataset.exists(prefix)
        dataset = IndexedDataset(prefix)
        assert dataset.index.dtype == np.uint16  # vocabulary of 49152 < 65500
        assert len(dataset) == len(records)
        assert dataset.document_indices.tolist() == list(range(len(records) + 1))
        assert [dataset[i].tolist() for i in range(len(dataset))] == [r["ids"] for r in records]
        assert int(dataset.sequence_lengths.sum()) == mixture["manifest"]["sources"][source]["tokens"]

    shares = {name: s["realised_share"] for name, s in mixture["manifest"]["sources"].items()}
    expected_blend = ([str(folder / f"{name}_text_document") for name in SOURCES], [shares[name] for name in SOURCES])
    # --per-split-data-args-path, read as Megatron-LM's get_blend_and_blend_per_split does
    per_split = json.loads((folder / "blend.json").read_text())
    assert get_blend_from_list(per_split["train"]) == expected_blend
    assert get_blend_from_list(per_split["valid"]) is None and get_blend_from_list(per_split["test"]) is None
    # --data-args-path: the file's text split on whitespace
    assert get_blend_from_list((folder / "data_path.txt").read_text().split()) == expected_blend
    assert summary["formats"]["megatron"]["dtype"] == "uint16"


def test_megatron_files_are_what_megatron_cores_builder_writes(mixture, tmp_path):
    import torch
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    export_mixture(mixture["path"], "megatron", tmp_path / "out")
    for source, records in by_source(mixture["records"]).items():
        reference = tmp_path / "reference" / source
        reference.parent.mkdir(exist_ok=True)
        builder = IndexedDatasetBuilder(f"{reference}.bin", dtype=np.uint16)
        for record in records:
            builder.add_item(torch.tensor(record["ids"]))
            builder.end_document()
        builder.finalize(f"{reference}.idx")
        for suffix in (".bin", ".idx"):
            exported = tmp_path / "out" / "megatron" / f"{source}_text_document{suffix}"
            assert exported.read_bytes() == Path(f"{reference}{suffix}").read_bytes()


def test_mds_export_reads_as_streaming_defines_it(mixture, tmp_path):
    export_mixture(mixture["path"], "mds", tmp_path / "out")
    folder = (tmp_path / "out" / "mds").resolve()
    for source, records in by_source(mixture["records"]).items():
        index, samples = read_mds(folder / source)
        assert len(index["shards"]) == 1 and index["shards"][0]["size_limit"] == 1 << 26
        assert index["shards"][0]["column_encodings"] == ["str", "str", "str", "ndarray:int32"]
        assert [s["record_id"] for s in samples] == [r["record_id"] for r in records]
        assert [s["text"] for s in samples] == [r["text"] for r in records]
        assert [s["tokens"].tolist() for s in samples] == [r["ids"] for r in records]
        assert sum(s["tokens"].size for s in samples) == mixture["manifest"]["sources"][source]["tokens"]
        assert {s["source"] for s in samples} == {source}
    streams = json.loads((folder / "streams.json").read_text())["streams"]
    assert streams == {
        name: {"local": str(folder / name), "proportion": mixture["manifest"]["sources"][name]["realised_share"]}
        for name in SOURCES
    }


def mds_sample_bytes(record: dict) -> int:
    """A sample's size by the MDS spec: 4 uint32 column sizes, three UTF-8 strings, and the ids as a
    shape-free ndarray (1 header byte, the length in the smallest uint that holds it, int32 values)."""
    n = len(record["ids"])
    shape_bytes = 1 if n < 1 << 8 else 2 if n < 1 << 16 else 4
    strings = (record["record_id"], record["source"], record["text"])
    return 4 * 4 + sum(len(t.encode()) for t in strings) + 1 + shape_bytes + 4 * n


def mdswriter_shards(sizes: list[int], limit: int, config_bytes: int) -> list[int]:
    """Samples per shard under MDSWriter's rule: a shard costs 4 + 4 + its config, a sample its bytes
    + 4, and a sample that would take the shard past the limit starts a new one."""
    counts, used = [0], 8 + config_bytes
    for size in sizes:
        if limit < used + size + 4:
            counts.append(0)
            used = 8 + config_bytes
        counts[-1] += 1
        used += size + 4
    return counts


@pytest.mark.parametrize("slack", [0, -1])
def test_mds_shards_close_where_mdswriter_closes_them(mixture, tmp_path, monkeypatch, slack):
    records = by_source(mixture["records"])["curated"]
    sizes = [mds_sample_bytes(r) for r in records]
    config = {
        "column_encodings": ["str", "str", "str", "ndarray:int32"],
        "column_names": ["record_id", "source", "text", "tokens"],
        "column_sizes": [None] * 4,
        "compression": None,
        "format": "mds",
        "hashes": [],
        "size_limit": 10**4,  # the limits below have as many digits
        "version": 2,
    }
    config_bytes = len(json.dumps(config, sort_keys=True))
    # exactly three samples fill the first shard (slack 0); one byte less and only two fit
    limit = 8 + config_bytes + sum(size + 4 for size in sizes[:3]) + slack
    assert 10**4 <= limit < 10**5
    monkeypatch.setattr(mds_format, "SIZE_LIMIT", limit)
    export_mixture(mixture["path"], "mds", tmp_path / "out")
    index, samples = read_mds(tmp_path / "out" / "mds" / "curated")
    assert [s["tokens"].tolist() for s in samples] == [r["ids"] for r in records]
    counts = [shard["samples"] for shard in index["shards"]]
    assert counts == mdswriter_shards(sizes, limit, config_bytes)
    assert counts[0] == (3 if slack == 0 else 2) and len(counts) > 2
    assert all(shard["raw_data"]["bytes"] <= limit for shard in index["shards"])


def test_nanotron_export_reads_with_datatrove(mixture, tmp_path):
    from datatrove.utils.dataset import DatatroveFileDataset, DatatroveFolderDataset

    export_mixture(mixture["path"], "nanotron", tmp_path / "out")
    folder = tmp_path / "out" / "nanotron"
    for source, records in by_source(mixture["records"]).items():
        file = folder / source / f"000_{source}.ds"
        tokens = [t for r in records for t in r["ids"]]
        # one window holding every token: seq_len + 1 tokens per item
        dataset = DatatroveFileDataset(str(file), seq_len=len(tokens) - 1, token_size=2, return_positions=True)
        assert len(dataset) == 1
        item = dataset[0]
        assert item["input_ids"].tolist() == tokens
        # positions come from the .index file: they restart at each record
        assert item["positions"].tolist() == [p for r in records for p in range(len(r["ids"]))]
        folder_dataset = DatatroveFolderDataset(str(folder / source), seq_len=len(tokens) - 1, token_size=2)
        assert len(folder_dataset) == 1 and folder_dataset[0]["input_ids"].tolist() == tokens
        metadata = (folder / source / f"000_{source}.ds.metadata").read_text().splitlines()
        assert metadata[:2] == ["smollm2-135m-instruct|2", str(mixture["manifest"]["sources"][source]["tokens"])]


def test_nanotron_files_are_what_datatroves_tokenizer_writes(mixture, tmp_path):
    from datatrove.data import Document
    from datatrove.pipeline.tokens.tokenizer import DocumentTokenizer

    from scorers.tokens import load_tokenizer as load

    export_mixture(mixture["path"], "nanotron", tmp_path / "out")
    tokenizer_file = str(load(BUNDLED["path"]).path)
    for source, records in by_source(mixture["records"]).items():
        step = DocumentTokenizer(
            str(tmp_path / "reference"),
            tokenizer_name_or_path=tokenizer_file,
            eos_token=BUNDLED["eos_token"],
            save_filename=source,
            shuffle_documents=False,
        )
        step.run(iter(Document(text=r["text"], id=r["record_id"]) for r in records), rank=0)
        reference = tmp_path / "reference" / f"{source}_00000_unshuffled.ds"
        exported = tmp_path / "out" / "nanotron" / source / f"000_{source}.ds"
        for suffix in ("", ".index"):
            assert Path(f"{exported}{suffix}").read_bytes() == Path(f"{reference}{suffix}").read_bytes()


@pytest.fixture(scope="module")
def wide_vocab_mixture(tmp_path_factory, texts) -> dict:
    """A real word-level tokenizer of 70,000 ids whose words all sit above 65,535: token ids that a
    16-bit format would corrupt."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    folder = tmp_path_factory.mktemp("wide")
    pre = pre_tokenizers.Whitespace()
    words = sorted({w for text in texts for w, _ in pre.pre_tokenize_str(text)})
    vocab = {"[UNK]": 0, "<eos>": 1}
    vocab.update({f"filler{i}": i for i in range(2, 65_600)})
    vocab.update({w: 65_600 + i for i, w in enumerate(words)})
    vocab.update({f"tail{i}": i for i in range(len(vocab), 70_000)})
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre
    tokenizer.save(str(folder / "tokenizer.json"))
    return build_mixture(folder / "mixture", texts[:9], {"path": str(folder / "tokenizer.json"), "eos_token": "<eos>"})


def test_wide_vocabularies_get_32_bit_tokens(wide_vocab_mixture, tmp_path):
    from datatrove.utils.dataset import DatatroveFileDataset
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    mixture = wide_vocab_mixture
    assert max(max(r["ids"]) for r in mixture["records"]) > 65_535
    summary = export_mixture(mixture["path"], ["megatron", "nanotron", "mds"], tmp_path / "out")
    assert summary["formats"]["megatron"]["dtype"] == "int32" and summary["formats"]["nanotron"]["token_size"] == 4
    for source, records in by_source(mixture["records"]).items():
        dataset = IndexedDataset(str(tmp_path / "out" / "megatron" / f"{source}_text_document"))
        assert dataset.index.dtype == np.int32
        assert [dataset[i].tolist() for i in range(len(dataset))] == [r["ids"] for r in records]
        tokens = [t for r in records for t in r["ids"]]
        file = tmp_path / "out" / "nanotron" / source / f"000_{source}.ds"
        assert DatatroveFileDataset(str(file), seq_len=len(tokens) - 1, token_size=4)[0]["input_ids"].tolist() == tokens
        _, samples = read_mds(tmp_path / "out" / "mds" / source)
        assert [s["tokens"].tolist() for s in samples] == [r["ids"] for r in records]


def test_a_non_empty_target_needs_force(mixture, tmp_path):
    target = tmp_path / "out" / "hf"
    target.mkdir(parents=True)
    (target / "earlier.txt").write_text("from another export")
    with pytest.raises(ExportError, match=str(target)):
        export_mixture(mixture["path"], "hf", tmp_path / "out")
    assert (target / "earlier.txt").exists()
    export_mixture(mixture["path"], "hf", tmp_path / "out", force=True)
    assert not (target / "earlier.txt").exists()
    assert (target / "parquet" / "train-00000-of-00002.parquet").is_file()
    assert sorted(p.name for p in target.parent.iterdir()) == ["hf"]


def test_a_tokenizer_other_than_the_manifests_is_refused(mixture, tmp_path):
    manifest = json.loads(mixture["path"].read_text())
    manifest["tokenizer"]["sha256"] = "f" * 64
    other = mixture["path"].with_name("manifest-other-tokenizer.json")
    write_json_atomic(other, manifest)
    with pytest.raises(ExportError, match="sha256"):
        export_mixture(other, "megatron", tmp_path / "out")
    assert not (tmp_path / "out" / "megatron").exists()


def test_a_record_whose_count_differs_is_named(tmp_path, texts):
    mixture = build_mixture(tmp_path / "mixture", texts[:9], BUNDLED, miscount=4)
    record_id = mixture["records"][4]["record_id"]
    for fmt in EXPORT_FORMATS:
        with pytest.raises(ExportError, match=f"record {record_id} "):
            export_mixture(mixture["path"], fmt, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_a_source_whose_total_differs_from_the_manifest_is_named(mixture, tmp_path):
    manifest = json.loads(mixture["path"].read_text())
    manifest["sources"]["rephrased"]["tokens"] += 1
    other = mixture["path"].with_name("manifest-other-total.json")
    write_json_atomic(other, manifest)
    with pytest.raises(ExportError, match="source rephrased"):
        export_mixture(other, "nanotron", tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_a_killed_export_leaves_nothing_and_a_rerun_is_byte_identical(mixture, tmp_path, fmt):
    out = tmp_path / "out"
    export_mixture(mixture["path"], fmt, out)
    uninterrupted = snapshot(out / fmt)
    shutil.rmtree(out / fmt)

    def killed(name, done, total):
        assert name == fmt and 0 < done < total  # midway: after the first shard, before the last
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export_mixture(mixture["path"], fmt, out, progress=killed)
    assert list(out.iterdir()) == []

    # what a hard kill leaves behind (a staging folder) is cleared by the next export
    leftover = out / f".{fmt}.tmp-0badc0de"
    leftover.mkdir()
    (leftover / "partial.bin").write_bytes(b"\0" * 10)
    seen = []
    summary = export_mixture(mixture["path"], fmt, out, progress=lambda *args: seen.append(args))
    assert sorted(p.name for p in out.iterdir()) == [fmt]
    assert snapshot(out / fmt) == uninterrupted
    assert sorted(summary["formats"][fmt]["files"]) == sorted(uninterrupted)
    assert seen[-1] == (fmt, mixture["manifest"]["totals"]["tokens"], mixture["manifest"]["totals"]["tokens"])
