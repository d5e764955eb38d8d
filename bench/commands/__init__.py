"""One module per CLI command: each parses its options, calls the API and renders."""
