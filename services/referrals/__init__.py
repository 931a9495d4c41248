"""Referrals: customers' codes, and signups attributed to the customer who referred them."""
