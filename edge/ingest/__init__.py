"""Ingest: wire schemas, keys and auth, limits and normalization, and the extractors that read what an event says (cart, consent, channels, engagement)."""
