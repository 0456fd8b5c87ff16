"""KPI maths, returns as records, CSV and PDF builders, and the commissioner dashboard."""

from flask import Blueprint

# The area's routes are added by its view modules, which the application factory imports.
bp = Blueprint("reports", __name__)
