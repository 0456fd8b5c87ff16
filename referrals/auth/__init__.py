"""Accounts, organisations, roles, sign-in and server-side sessions."""
