"""`python -m shoptune ...` (used by `accelerate launch -m shoptune train ...` for multi-process runs)."""

from shoptune.cli.main import main

main()
