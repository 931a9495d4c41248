"""Nurture: email sends and delivery."""
