"""A fake OpenAI-compatible client for millisecond tests of the code that calls a model.

It answers `chat.completions.create` with real `openai` response objects (or raises the real
`openai` errors), built from a function of the request, and records every request. It sits beside
the real vLLM tests (tests/test_vllm_stack.py, tests/test_reliability_serve.py), never instead.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import httpx
import openai
from openai.types.chat import ChatCompletion

Answer = Callable[[dict[str, Any]], "str | Exception"]
REQUEST = httpx.Request("POST", "http://fake-vllm/v1/chat/completions")


class FakeOpenAI:
    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[dict[str, Any]] = []
        self.base_url = "http://fake-vllm/v1"
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self._create))

    def _create(self, **request: Any) -> ChatCompletion:
        self.requests.append(request)
        answer = self.answer(request)
        if isinstance(answer, Exception):
            raise answer
        return ChatCompletion.model_validate(
            {
                "id": f"fake-{len(self.requests)}",
                "object": "chat.completion",
                "created": 0,
                "model": request["model"],
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": answer}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": len(answer.split()), "total_tokens": 10},
            }
        )


def status_error(cls: type[openai.APIStatusError], status: int, message: str = "fake") -> openai.APIStatusError:
    """A real openai status error (BadRequestError, InternalServerError, ...) as the client raises it."""
    return cls(message, response=httpx.Response(status, request=REQUEST), body=None)


def timeout_error() -> openai.APITimeoutError:
    return openai.APITimeoutError(request=REQUEST)


def connection_error() -> openai.APIConnectionError:
    return openai.APIConnectionError(request=REQUEST)
