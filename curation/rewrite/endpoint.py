"""Client for an OpenAI-compatible chat endpoint: a vLLM server fleet or any compatible server.

A bounded number of requests is in flight at once; each has a timeout and is retried with
exponential backoff on connection errors, timeouts, 429 and 5xx. Other HTTP errors are final. The
API key is read from the environment variable the config names, at request time, and is never
stored: not in the engine's provenance name, not in records, not in logs. Credentials in base_url
(userinfo, which httpx sends as Basic auth, or a query parameter) are sent and never stored either.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit, urlunsplit

import httpx

from curation.rewrite.engines import (
    ENGINE_ERROR,
    MALFORMED,
    TIMEOUT,
    EngineLoadError,
    GenerationRequest,
    GenerationResult,
)
from schemas.rewrite import EngineConfig
from warehouse.secrets import without_secrets

_RETRY_STATUS = {408, 429, 500, 502, 503, 504}


def engine_name(base_url: str) -> str:
    """How records name this engine: the server's public URL, never its credentials."""
    return f"openai:{without_secrets(base_url).rstrip('/')}"


def chat_url(base_url: str) -> str:
    """The chat endpoint below base_url, its query kept (some gateways take their key there)."""
    parts = urlsplit(base_url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/chat/completions"))


class EndpointEngine:
    def __init__(self, cfg: EngineConfig, sleep=time.sleep):
        self.cfg = cfg
        self.url = chat_url(cfg.base_url)
        self.name = engine_name(cfg.base_url)
        self.model_name = cfg.served_model or cfg.model
        self.model_hash = None  # a remote server does not tell us its weights
        if cfg.api_key_env and not os.environ.get(cfg.api_key_env):
            raise EngineLoadError(f"engine.api_key_env names {cfg.api_key_env}, which is not set in the environment")
        self._sleep = sleep
        self._client = httpx.Client(timeout=cfg.timeout_s, limits=httpx.Limits(max_connections=cfg.concurrency))
        self._pool = ThreadPoolExecutor(max_workers=cfg.concurrency, thread_name_prefix="endpoint")

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.cfg.api_key_env:
            headers["Authorization"] = f"Bearer {os.environ[self.cfg.api_key_env]}"
        return headers

    def _body(self, request: GenerationRequest) -> dict:
        body = {
            "model": self.model_name,
            "messages": request.messages,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "seed": request.seed,
        }
        if request.repetition_penalty != 1.0:  # a vLLM extension of the OpenAI API
            body["repetition_penalty"] = request.repetition_penalty
        return body

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        return list(self._pool.map(self._generate_one, requests))

    def _generate_one(self, request: GenerationRequest) -> GenerationResult:
        failure = (ENGINE_ERROR, "no attempt made")
        for attempt in range(self.cfg.max_retries + 1):
            if attempt:
                self._sleep(self.cfg.backoff_s * 2 ** (attempt - 1))
            outcome = self._attempt(request)
            if isinstance(outcome, GenerationResult):
                return outcome
            retry, failure = outcome
            if not retry:
                break
        reason, detail = failure
        return GenerationResult(key=request.key, text=None, error=reason, detail=f"{detail} (after {attempt + 1} attempts)")

    def _attempt(self, request: GenerationRequest) -> GenerationResult | tuple[bool, tuple[str, str]]:
        try:
            response = self._client.post(self.url, json=self._body(request), headers=self._headers())
        except httpx.TimeoutException as err:
            return True, (TIMEOUT, f"no answer within {self.cfg.timeout_s}s ({type(err).__name__})")
        except httpx.TransportError as err:
            return True, (ENGINE_ERROR, f"connection failed: {type(err).__name__}: {err}")
        if response.status_code != 200:
            retry = response.status_code in _RETRY_STATUS
            return retry, (ENGINE_ERROR, f"HTTP {response.status_code}: {response.text[:300]}")
        try:
            data = response.json()
            choice = data["choices"][0]
            text = choice["message"]["content"] or ""  # null content is an empty output, for the gates to judge
            if not isinstance(text, str):
                raise TypeError(f"content is {type(text).__name__}")
            usage = data.get("usage") or {}
            return GenerationResult(
                key=request.key,
                text=text,
                finish_reason=choice.get("finish_reason"),
                tokens_in=int(usage.get("prompt_tokens") or 0),
                tokens_out=int(usage.get("completion_tokens") or 0),
            )
        except (ValueError, KeyError, IndexError, TypeError) as err:
            return True, (MALFORMED, f"{type(err).__name__}: {err}; body starts {response.text[:200]!r}")

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._client.close()
