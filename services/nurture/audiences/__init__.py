"""Retargeting audiences: rule-based membership kept current from the stream, pushed to ad platforms."""
