"""How much of a conversation goes back to the model: the newest whole exchanges that fit the
history token budget, counted with the served model's chat template when its tokenizer is known."""

from __future__ import annotations

from typing import Any

Message = dict[str, str]


class HistoryWindow:
    def __init__(self, budget_tokens: int, tokenizer: Any | None = None) -> None:
        self.budget_tokens, self.tokenizer = budget_tokens, tokenizer

    def trim(self, system: Message, history: list[Message], user: Message) -> list[Message]:
        """Drop the oldest exchanges until the conversation fits the history token budget."""
        kept = list(history)
        while kept and self.tokens([system, *kept, user]) > self.budget_tokens:
            kept = kept[2:]
        return kept

    def tokens(self, messages: list[Message]) -> int:
        """The prompt's length in tokens (about two characters a token without a tokenizer)."""
        if self.tokenizer is None:
            return sum(len(m["content"]) for m in messages) // 2
        return len(self.tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)["input_ids"])
