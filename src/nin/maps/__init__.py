"""Class confidence maps: the maths (confidence.py), boxes from them (locate.py), their pictures (figure.py)."""
