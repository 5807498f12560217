"""shoptune.serve: vLLM serving and the storefront Q&A service (issue 6)."""
