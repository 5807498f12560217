"""`shoptune demo`: the whole workbench, end to end, on one config (the embedded model by default)."""
