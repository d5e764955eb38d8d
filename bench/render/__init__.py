"""Drawing answers: terminal tables, Markdown, CSV, HTML and figures. Renderers read records and
analyses, nothing else.
"""
