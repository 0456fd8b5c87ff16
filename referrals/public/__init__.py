"""Open to everyone: the course finder, self-referral and the Open Referral UK feed."""
