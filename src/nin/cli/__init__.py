"""`nin`: the command line. A thin layer over the library; all checks end in NinError (exit 2)."""

from __future__ import annotations

import argparse
import io
import os
import sys

from nin.errors import NinError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (plus exit code 2), not a usage dump."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    from nin.cli import images, training

    parser = _Parser(prog="nin", description="Network In Network (Lin, Chen & Yan, 2013): train, evaluate, inspect.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    training.add_parsers(sub)
    images.add_parsers(sub)
    return parser


class _QuietWhenReaderLeaves:
    """Standard output that goes quiet when its reader leaves (`nin eval RUN | head -1`) instead of raising
    BrokenPipeError in the middle of a command: the command still finishes its work (the JSON, the run)."""

    def __init__(self, stream):
        self._stream = stream

    def _discard(self) -> None:
        # What is still buffered, and all that follows, goes to /dev/null; flushing at exit then succeeds.
        os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._discard()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._discard()

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def main(argv: list[str] | None = None) -> int:
    if type(sys.stdout) is io.TextIOWrapper:   # the real standard output, not a capture or a wrapper already
        sys.stdout = _QuietWhenReaderLeaves(sys.stdout)
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:
        print(f"nin {args.command}: error: unrecognized arguments: {' '.join(unknown)} "
              f"(see 'nin {args.command} --help')", file=sys.stderr)
        return 2
    try:
        return args.run(args)
    except NinError as e:
        print(f"nin {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"nin {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
