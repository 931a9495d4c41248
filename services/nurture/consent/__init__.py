"""Nurture: consent and subscriptions."""
