"""Admin pages: organisations, users and the audit log."""

from flask import Blueprint

# The area's routes are added by its view modules, which the application factory imports.
bp = Blueprint("admin", __name__)
