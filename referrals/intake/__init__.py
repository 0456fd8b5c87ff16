"""Patients and referrals: intake, duplicate checks, triage, the lifecycle and letters back."""
