"""Wellbeing instruments and scoring."""
