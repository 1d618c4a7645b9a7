"""The ``zse`` command line: ``zse denoise``, ``zse fit``, ``zse demo``, ``zse relion`` and
``zse info``.

``options`` builds the parser (model flags generated from the models' parameter tables),
``commands`` turns arguments into a typed :class:`~zse.cli.request.Request`, ``run`` does the
per-input work from the request, ``errors`` maps failures to exit codes.
"""

from __future__ import annotations

import sys

from .errors import Terminated, UsageError, on_sigterm, report
from .inputs import parse_crop
from .options import DEMO_MAX_ITER, build_parser, parse_patch_size

__all__ = ["main", "build_parser", "parse_crop", "parse_patch_size", "UsageError", "DEMO_MAX_ITER"]


def main(argv=None) -> int:
    """Run the command line; returns the exit code.

    0: success; 2: an error of the input, options, files or memory (``zse: error: ...``);
    1: an internal error (a bug: the message asks to report it); 130/143: interrupted/terminated.
    """
    import signal

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["relion"]:  # RELION's own option syntax (--o, --in_mics, --j): its parser
        from . import relion

        return relion.run(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        previous = signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:  # not the main thread: leave signals alone
        previous = None
    try:
        from .commands import COMMANDS

        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("zse: interrupted; no partial outputs were left", file=sys.stderr)
        return 130
    except Terminated:
        print("zse: terminated; no partial outputs were left", file=sys.stderr)
        return 143
    except Exception as error:  # noqa: BLE001 - reported as a user error (2) or a bug (1)
        return report(None, error)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
