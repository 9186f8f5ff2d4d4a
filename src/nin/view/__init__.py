"""`nin view`: a local page to see class maps over photos."""
