"""Providers, courses, sessions, enrolments and registers."""

from flask import Blueprint

# Routes: views.py, register_files.py and offline_views.py, imported by the application factory.
bp = Blueprint("courses", __name__)
