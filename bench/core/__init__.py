"""The vocabulary every stage shares: configuration, a job's identity, errors, the machine,
statistics.
"""
