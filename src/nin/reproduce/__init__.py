"""`nin reproduce`: the paper's experiments (src/nin/experiments/), run and tabulated beside the paper's numbers."""
