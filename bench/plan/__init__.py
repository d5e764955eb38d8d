"""From options to jobs: suites, shards and time estimates."""
