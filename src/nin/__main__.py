"""`python -m nin` (what torchrun launches) is the same as the `nin` command."""

from nin.cli import main

raise SystemExit(main())
