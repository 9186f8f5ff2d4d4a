"""`python -m nin` (what torchrun launches) is the same as the `nin` command."""

import os
import sys

from nin.cli import main

code = main()
if int(os.environ.get("WORLD_SIZE", "1")) > 1:
    # Under torchrun, leave without finalizing the interpreter: DDP's gloo worker threads outlive
    # destroy_process_group, and one that frees a collective's tensors while the interpreter
    # finalizes aborts the process. Every file is closed by now; only the streams need flushing.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
raise SystemExit(code)
