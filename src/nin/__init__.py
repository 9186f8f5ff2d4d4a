"""Network In Network (Lin, Chen & Yan, 2013) in PyTorch."""

__version__ = "0.1.0"
