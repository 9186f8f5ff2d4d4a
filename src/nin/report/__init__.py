"""`nin report`: one self-contained HTML page per run (plots.py draws, page.py assembles)."""
