"""Patients and referrals: intake, duplicate checks, triage, the lifecycle and letters back."""

from flask import Blueprint

# The area's routes are added by its view modules, which the application factory imports.
bp = Blueprint("intake", __name__)
