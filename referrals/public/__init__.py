"""Open to everyone: the course finder, self-referral and the Open Referral UK feed."""

from flask import Blueprint

# Routes: the course finder and self-referral (views.py), the Open Referral UK feed
# (openreferral.py) and providers' own profiles (profile_views.py), imported by the factory.
bp = Blueprint("public", __name__)
openreferral_bp = Blueprint("openreferral", __name__)
providers_bp = Blueprint("providers", __name__)
