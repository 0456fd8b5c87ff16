"""Providers, courses, sessions, enrolments and registers."""
