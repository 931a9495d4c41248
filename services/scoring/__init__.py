"""Scoring: consumes tracked events, keeps each lead's score and stage, emits lead changes."""
