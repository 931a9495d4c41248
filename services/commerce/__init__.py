"""Commerce: cart abandonment (issue 7) — the pure core of carts, reminders and incentives.

`events` maps shop and Segment e-commerce events to `CartEvent`s, `carts` folds them into a
`CartState`, `reminders` decides which reminder steps are due, and `incentives` picks a tier and a code.
No I/O here; the consumer and the sequences integration build on these functions.
"""
