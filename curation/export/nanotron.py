"""nanotron export: datatrove tokenized files, one per source, written with datatrove's own TokenizedFile.

    nanotron/<source>/000_<source>.ds            token ids, records in mixture order, no padding
    nanotron/<source>/000_<source>.ds.index      uint64 end (in tokens) of each record
    nanotron/<source>/000_<source>.ds.metadata   "<tokenizer>|<token bytes>", token count, human count

The names are those datatrove's DocumentTokenizerMerger gives its output. Tokens take 2 bytes
(uint16) when the vocabulary fits in 65536 ids, else 4 (uint32), the rule of datatrove's
PipelineStepWithTokenizer.token_size. nanotron reads a folder with datatrove's DatatroveFolderDataset
(`token_size` must match). The records are not shuffled here: the mixture is already in training order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from curation.export.records import Progress, TokenizedRecords


def token_size(vocab_size: int) -> int:
    return 4 if vocab_size > np.iinfo(np.uint16).max + 1 else 2


def file_name(source: str) -> str:
    return f"000_{source}.ds"


def write(manifest: dict, tokenizer, out_dir: Path, progress: Progress | None = None, *, final_dir: Path | None = None) -> dict:
    from datatrove.pipeline.tokens.tokenizer import TokenizedFile

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    size = token_size(tokenizer.vocab_size)
    dtype = np.dtype("<u4" if size == 4 else "<u2")
    records = TokenizedRecords(manifest, tokenizer, progress, columns=["source"])
    files: dict[str, TokenizedFile] = {}
    try:
        for batch in records:
            for source, ids in zip(batch.rows.column("source").to_pylist(), batch.ids):
                if source not in files:
                    (out_dir / source).mkdir(exist_ok=True)
                    files[source] = TokenizedFile(
                        str(out_dir / source),
                        file_name(source),
                        save_index=True,
                        tokenizer_name_or_path=manifest["tokenizer"].get("name") or tokenizer.name,
                        save_final_metadata=True,
                        token_size=size,
                    )
                files[source].write_bytes(np.asarray(ids, dtype=dtype).tobytes())
    finally:
        for file in files.values():
            file.close()
    return {"tokens_per_source": records.finish(), "token_size": size}
