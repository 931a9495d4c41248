"""Nurture: nurture sequences and scheduler."""
