"""The `shoptune` command line: one group per stage, assembled in `shoptune.main`."""
