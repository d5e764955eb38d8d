"""Rendering: every module here reads records and nothing else."""
