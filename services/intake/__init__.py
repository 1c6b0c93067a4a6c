"""Intake: accepts referrals, validates, canonicalises, de-duplicates, emits referral events."""
