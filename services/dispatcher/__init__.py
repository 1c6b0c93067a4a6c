"""Dispatcher: routes each referral to its platform's adapter and turns answers into events."""
