"""Admin pages: organisations, users and the audit log."""
