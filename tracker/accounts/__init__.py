"""Console accounts: users and their roles, one-time sign-in links, sessions (docs/console.md).

No passwords: a user signs in with a link emailed through the outbox. The store keeps only
hashes of the links' tokens and of the sessions' ids.
"""
