"""shoptune.data: build, check and inspect the training/evaluation corpus (data itself lives in datasets/)."""
