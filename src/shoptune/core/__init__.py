"""Small helpers every stage shares: errors with exit codes, paths, atomic writes, hashes, provenance."""
