"""Bounces: delivery status notifications read, matched to their outbox row by its VERP address, and recorded.

`reading` parses and classifies a bounce (pure), `policy` says when bounces suspend an address,
`recording` stores the outcome, `listener` takes bounces over SMTP (docs/bounces.md).
"""
