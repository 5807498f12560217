"""shoptune.serve: vLLM serving and the storefront Q&A service ."""
