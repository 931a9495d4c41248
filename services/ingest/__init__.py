"""Ingest: the public collection edge (Segment-compatible tracking API)."""
