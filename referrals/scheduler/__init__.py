"""Scheduled jobs and the dedicated scheduler process (never inside the web app)."""
