"""Nurture: email templates."""
