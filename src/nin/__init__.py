"""Network In Network (Lin, Chen & Yan, 2013) in PyTorch.

    import nin
    model, preprocess = nin.load_pretrained("nin-mnist")   # nin.list_pretrained() names them all
    nin.get_weights("nin-mnist").meta["categories"]        # its card: class names, errors, recipe, commit
    seen = nin.explain("nin-cifar10", "photo.jpg", top_k=3)  # class names, probabilities, maps over the photo
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # Imported on first use: `import nin` stays light, and nin.pretrained may import the rest of nin.
    if name in ("load_pretrained", "list_pretrained", "get_weights"):
        from nin import pretrained
        return getattr(pretrained, name)
    if name == "explain":
        from nin.maps.photo import explain
        return explain
    raise AttributeError(f"module 'nin' has no attribute {name!r}")
