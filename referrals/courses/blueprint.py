"""The courses blueprint; its routes live in views.py and register_files.py."""

from flask import Blueprint

bp = Blueprint("courses", __name__)
