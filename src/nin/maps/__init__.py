"""Class confidence maps: the maths (confidence.py) and their pictures (figure.py)."""
