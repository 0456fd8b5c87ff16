"""KPI maths, returns as records, CSV and PDF builders, and the commissioner dashboard."""
