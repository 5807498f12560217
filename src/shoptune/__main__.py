"""`python -m shoptune ...` (used by `accelerate launch -m shoptune train ...` for multi-process runs)."""

from shoptune.main import main

main()
