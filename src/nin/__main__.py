"""`python -m nin` (what torchrun launches) is the same as the `nin` command."""

import os
import sys

from nin.cli import main

code = main()
if int(os.environ.get("WORLD_SIZE", "1")) > 1:
    # Under torchrun, leave without finalizing the interpreter. torch 2.14's DDP keeps the gloo
    # process group's worker threads alive past destroy_process_group; one that drops the last
    # reference to a finished collective's tensors while the interpreter finalizes cannot take the
    # GIL and aborts the process (std::terminate, about 1 run in 20; seen in CI). Every file is
    # written, flushed and closed by now, so only the output streams need flushing.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
raise SystemExit(code)
