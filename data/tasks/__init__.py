"""One generator per task (extract, recommend, faq, chat, refusal), sharing `TaskContext`."""
