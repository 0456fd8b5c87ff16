"""Home pages, navigation, health check and the site's static pages."""

from flask import Blueprint

# The area's routes are added by its view modules, which the application factory imports.
bp = Blueprint("main", __name__)
