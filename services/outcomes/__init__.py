"""Outcomes: keeps each referral's state and the append-only audit trail, and serves auditors."""
