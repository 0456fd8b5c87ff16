"""Accounts, organisations, roles, sign-in and server-side sessions."""

from flask import Blueprint

# The area's routes are added by its view modules, which the application factory imports.
bp = Blueprint("auth", __name__)
