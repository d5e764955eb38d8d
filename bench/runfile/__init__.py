"""Run files: the typed records, their codec and migration, the journal, atomic storage, bounded
reads, the schema, loading runs.
"""
