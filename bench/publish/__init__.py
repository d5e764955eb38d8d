"""Sending results elsewhere: benchmark-tracker JSON formats and MLflow."""
