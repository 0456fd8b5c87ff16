"""In-app messages to a user or to everyone in an organisation."""

from flask import Blueprint

# The area's routes are added by its view modules, which the application factory imports.
bp = Blueprint("notifications", __name__)
