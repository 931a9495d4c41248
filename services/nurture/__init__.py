"""Nurture: reacts to lead changes with sequences, emails and audiences."""
