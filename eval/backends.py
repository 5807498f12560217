"""Where predictions come from: the model in-process (transformers, batched, left padding) or any
OpenAI-compatible endpoint (shoptune's vLLM server, concurrent requests). Greedy by default.

Both send exactly the record's conversation minus its final answer, rendered by the served
model's own chat template, so a score measures the model, not a prompt difference.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shoptune.core.errors import BadInputError, EnvironmentProblem
from shoptune.shop.decoding import extraction_request, reply_request

if TYPE_CHECKING:
    from shoptune.config import ShoptuneConfig

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Prediction:
    id: str
    output: str
    seconds: float
    completion_tokens: int


def prompt_messages(record: dict[str, Any]) -> list[dict[str, str]]:
    return record["messages"][:-1]


class TransformersBackend:
    name = "transformers"

    def __init__(
        self,
        model_dir: Path,
        *,
        adapter_dir: Path | None,
        dtype: str,
        batch_size: int,
        max_new_tokens: int,
        temperature: float,
    ) -> None:
        from shoptune.models.loading import load_causal_lm, load_tokenizer

        self.tokenizer = load_tokenizer(adapter_dir or model_dir)
        model = load_causal_lm(model_dir, dtype=dtype)  # type: ignore[arg-type]
        if adapter_dir is not None:
            from peft import PeftModel

            from shoptune.models.local_dir import require_adapter_dir

            model = PeftModel.from_pretrained(model, str(require_adapter_dir(adapter_dir))).eval()
        self.model = model
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature

    def sampling_settings(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "max_new_tokens": self.max_new_tokens}

    def generate(self, records: Sequence[dict[str, Any]], progress: Progress = lambda _: None) -> list[Prediction]:
        return generate_in_process(
            self.model,
            self.tokenizer,
            records,
            batch_size=self.batch_size,
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            progress=progress,
        )


def generate_in_process(
    model: Any,
    tokenizer: Any,
    records: Sequence[dict[str, Any]],
    *,
    batch_size: int,
    max_new_tokens: int,
    temperature: float = 0.0,
    progress: Progress = lambda _: None,
) -> list[Prediction]:
    """Batched generation with left padding (also used mid-training for generation metrics)."""
    padding_side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        return _generate_batches(model, tokenizer, records, batch_size, max_new_tokens, temperature, progress)
    finally:
        tokenizer.padding_side = padding_side  # the caller's tokenizer (e.g. the trainer's) is left as it was


def _generate_batches(
    model: Any,
    tokenizer: Any,
    records: Sequence[dict[str, Any]],
    batch_size: int,
    max_new_tokens: int,
    temperature: float,
    progress: Progress,
) -> list[Prediction]:
    from shoptune.models.generation import new_tokens

    prompts = [
        tokenizer.apply_chat_template(prompt_messages(r), tokenize=False, add_generation_prompt=True) for r in records
    ]
    order = sorted(range(len(records)), key=lambda i: len(prompts[i]), reverse=True)  # similar lengths batch
    results: dict[int, Prediction] = {}
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        encoded = tokenizer(
            [prompts[i] for i in batch], return_tensors="pt", padding=True, add_special_tokens=False
        ).to(model.device)
        started = time.perf_counter()
        generated = new_tokens(model, tokenizer, encoded, max_new_tokens=max_new_tokens, temperature=temperature)
        seconds = (time.perf_counter() - started) / len(batch)
        for row, index in enumerate(batch):
            ids = [t for t in generated[row].tolist() if t != tokenizer.pad_token_id]
            text = tokenizer.decode(ids, skip_special_tokens=True)
            results[index] = Prediction(records[index]["id"], text, seconds, len(ids))
        progress(len(batch))
    return [results[i] for i in range(len(records))]


class EndpointBackend:
    name = "openai-endpoint"

    def __init__(
        self,
        base_url: str,
        model_name: str,
        *,
        api_key: str,
        concurrency: int,
        reply: dict[str, Any],
        extraction_max_tokens: int,
        structured_output: bool,
        timeout_s: float = 300.0,
        client: Any | None = None,
        extraction_model_name: str | None = None,
    ) -> None:
        """`client` replaces the OpenAI client built from `base_url` (a test's fake);
        `extraction_model_name` answers the extraction records where it is not `model_name`."""
        from openai import OpenAI

        self.client = client or OpenAI(base_url=base_url, api_key=api_key or "EMPTY", timeout=timeout_s, max_retries=2)
        self.model_name = model_name
        self.extraction_model_name = extraction_model_name or model_name
        self.concurrency = concurrency
        self.reply = reply
        """Sampling arguments of a reply: the storefront's (`serve.decoding.reply_request`)."""
        self.extraction_max_tokens = extraction_max_tokens
        self.structured_output = structured_output

    @classmethod
    def as_served(
        cls,
        config: ShoptuneConfig,
        base_url: str,
        model_name: str,
        *,
        structured: bool,
        api_key: str = "",
        extraction_model_name: str | None = None,
    ) -> EndpointBackend:
        """A backend that asks `base_url` as the storefront does: the config's reply sampling
        (`serve`) and the evaluation's concurrency (`eval`)."""
        return cls(
            base_url,
            model_name,
            api_key=api_key,
            concurrency=config.eval.concurrency,
            reply=reply_request(config.serve),
            extraction_max_tokens=config.serve.extraction_max_tokens,
            structured_output=structured,
            extraction_model_name=extraction_model_name,
        )

    def _ask(self, record: dict[str, Any], **changes: Any) -> Any:
        """The endpoint's completion of `record`'s prompt, asked as `sampling` says with `changes`."""
        import openai

        try:
            return self.client.chat.completions.create(
                model=self.extraction_model_name if record["task"] == "extract" else self.model_name,
                messages=prompt_messages(record),
                **{**self.sampling(record), **changes},
            )
        except openai.APIConnectionError as exc:
            raise EnvironmentProblem(f"cannot reach the endpoint {self.client.base_url}: {exc}") from exc
        except openai.BadRequestError as exc:
            raise BadInputError(f"the endpoint rejected record {record['id']}: {exc.message}") from exc

    def _one(self, record: dict[str, Any]) -> Prediction:
        started = time.perf_counter()
        reply = self._ask(record)
        seconds = time.perf_counter() - started
        usage = reply.usage.completion_tokens if reply.usage else 0
        return Prediction(record["id"], reply.choices[0].message.content or "", seconds, usage)

    def samples(self, record: dict[str, Any], count: int, temperature: float, seed: int) -> list[str]:
        """`count` answers to `record`, sampled at `temperature` from `seed` and otherwise asked as the
        storefront asks (guided extraction, the reply settings): the model's own answers, served."""
        reply = self._ask(record, n=count, temperature=temperature, seed=seed)
        return [choice.message.content or "" for choice in reply.choices]

    def sampling_settings(self) -> dict[str, Any]:
        """What the report records of how answers were asked for."""
        return {
            "temperature": self.reply.get("temperature", 0.0),
            "max_new_tokens": self.reply.get("max_tokens"),
            "reply": self.reply,
            "extraction": extraction_request("<schema>", self.extraction_max_tokens, structured=False),
        }

    def sampling(self, record: dict[str, Any]) -> dict[str, Any]:
        """An extraction is requested exactly as the storefront requests it (guided or not), a
        reply with the sampling arguments this backend was given."""
        if record["task"] == "extract":
            return extraction_request(record["schema"], self.extraction_max_tokens, structured=self.structured_output)
        return self.reply

    def generate(self, records: Sequence[dict[str, Any]], progress: Progress = lambda _: None) -> list[Prediction]:
        def run(record: dict[str, Any]) -> Prediction:
            prediction = self._one(record)
            progress(1)
            return prediction

        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(run, records))
