"""Render records through a model's own chat template and mark the tokens that carry loss.

Loss goes on exactly what the assistant says: every assistant turn's content plus the
end-of-turn token (`<|im_end|>` for ChatML models) that teaches the model to stop. The spans are
found by rendering the conversation incrementally with the template itself, so they hold for
any template whose rendering of a prefix (with the generation prompt) is a prefix of the whole.
Training, `data show`, `data stats` and `data check --model` all use this one implementation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shoptune.core.errors import BadInputError
from shoptune.shop.structured import in_the_one_form


class RenderError(BadInputError):
    """A record the chat template cannot render into trainable spans."""


@dataclass(frozen=True)
class RenderedRecord:
    text: str
    """The full conversation as the chat template renders it."""
    loss_spans: tuple[tuple[int, int], ...]
    """Character spans of assistant content plus its end-of-turn token."""
    input_ids: tuple[int, ...]
    loss_mask: tuple[int, ...]
    """1 where the token carries loss."""

    @property
    def trainable_tokens(self) -> int:
        return sum(self.loss_mask)


def render_text(tokenizer: Any, messages: list[dict[str, str]], *, add_generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def loss_spans(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered text and the character span of each assistant turn (content + EOS token)."""
    end_of_turn = tokenizer.eos_token
    full = render_text(tokenizer, messages)
    spans = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = render_text(tokenizer, messages[:index], add_generation_prompt=True)
        if not full.startswith(prompt):
            raise RenderError(
                f"the chat template renders messages[:{index}] with a generation prompt differently from "
                "the start of the full conversation; cannot locate the assistant turn"
            )
        start = len(prompt)
        if not full.startswith(message["content"], start):
            raise RenderError(f"messages[{index}]: the chat template changes the assistant content when rendering")
        end = start + len(message["content"])
        if not end_of_turn or not full.startswith(end_of_turn, end):
            raise RenderError(
                f"messages[{index}]: the chat template does not end the assistant turn with the EOS token "
                f"{end_of_turn!r}; a model trained on it would never learn to stop"
            )
        spans.append((start, end + len(end_of_turn)))
    return full, spans


def render_record(tokenizer: Any, messages: list[dict[str, str]]) -> RenderedRecord:
    """Tokenise a conversation as training will and mark its loss-bearing tokens."""
    text, spans = loss_spans(tokenizer, messages)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    mask = []
    for token_start, token_end in encoded["offset_mapping"]:
        inside = [s for s in spans if s[0] <= token_start < s[1]]
        if inside and token_end > inside[0][1]:
            raise RenderError(f"a token spans the end of an assistant turn (chars {token_start}-{token_end})")
        if not inside and any(token_start < s[0] < token_end for s in spans):
            raise RenderError(f"a token spans the start of an assistant turn (chars {token_start}-{token_end})")
        mask.append(1 if inside else 0)
    return RenderedRecord(text, tuple(spans), tuple(encoded["input_ids"]), tuple(mask))


def marked_text(rendered: RenderedRecord, start_mark: str = "«", end_mark: str = "»") -> str:
    """The rendered text with each loss-bearing span wrapped in markers (for `data show`)."""
    pieces, cursor = [], 0
    for start, end in rendered.loss_spans:
        pieces += [rendered.text[cursor:start], start_mark, rendered.text[start:end], end_mark]
        cursor = end
    pieces.append(rendered.text[cursor:])
    return "".join(pieces)


@dataclass(frozen=True)
class RenderedPair:
    """A preference record as preference training takes it: the prompt, both answers (chosen, then
    rejected; an extraction answer in the one form) and each rendered after the prompt."""

    prompt: list[dict[str, str]]
    answers: tuple[dict[str, str], dict[str, str]]
    rendered: tuple[RenderedRecord, RenderedRecord]

    @property
    def longest(self) -> int:
        """Tokens of the conversation with the longer answer."""
        return max(len(r.input_ids) for r in self.rendered)


def render_pair(tokenizer: Any, record: dict[str, Any]) -> RenderedPair:
    """Render `record`'s chosen answer (its last message) and its `rejected` one as training will;
    RenderError where either does not render."""

    def as_answer(content: str) -> dict[str, str]:
        messages = [*record["messages"][:-1], {"role": "assistant", "content": content}]
        return in_the_one_form({**record, "messages": messages})["messages"][-1]

    prompt = [{"role": m["role"], "content": m["content"]} for m in record["messages"][:-1]]
    answers = (as_answer(record["messages"][-1]["content"]), as_answer(record["rejected"]))
    rendered = (render_record(tokenizer, [*prompt, answers[0]]), render_record(tokenizer, [*prompt, answers[1]]))
    return RenderedPair(prompt, answers, rendered)
