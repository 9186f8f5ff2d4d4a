"""`nin reproduce`: the paper's experiments (src/nin/configs/), run and tabulated beside the paper's numbers."""
