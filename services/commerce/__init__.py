"""Commerce: cart abandonment (issue 7).

Pure core: `events` maps shop and Segment e-commerce events to `CartEvent`s, `carts` folds them into a
`CartState`, `reminders` decides which reminder steps are due, `incentives` picks a tier and a code,
`service` decides which order closes which cart, what a reminder shows and where a recovery link leads.
Around it: `handlers` (the nurture consumer's cart batch), `reminder_loop` (the durable reminder rounds),
`repository`, `reminder_repository` and `shop_repository` (SQL), `api` and `schemas` (HTTP), `links`
(signed recovery links).
"""
