"""shoptune.eval: the evaluation harness, reports and CI gates."""
