"""Running jobs: the run's lifecycle, the local and Ray executors, the worker and its training
loop, the backends.
"""
