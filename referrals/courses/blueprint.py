"""The courses blueprint; its routes live in views.py, register_files.py and offline_views.py."""

from flask import Blueprint

bp = Blueprint("courses", __name__)
