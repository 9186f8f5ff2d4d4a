"""`nin reproduce`: the paper's experiments (configs/), run and tabulated beside the paper's numbers."""
