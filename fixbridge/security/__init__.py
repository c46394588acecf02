"""Secrets and access: salted slow password hashes, encrypted keystores, redaction.

Nothing in here ever logs, journals or returns a secret in an error message.
"""
