"""absl flag parsing for CLIs that take a run config (``--config=FILE|NAME`` and ``--config.x=v``
overrides): bsgap.train and bsgap.advise.

A misspelled field, a missing config file or a value of the wrong type exits 2 with one line
instead of a traceback or absl's FATAL (exit 1); a budget (or milestone) field given on the
command line replaces the config file's (bsgap.run_config.give_command_line_precedence).
"""
from __future__ import annotations

import sys

from absl import flags
from ml_collections import config_flags

from bsgap.config_files import ConfigFileError, resolve_config_argv


def parse_config_flags(argv, config_flag, prog: str) -> list:
    """absl's flag parsing (the config file and its overrides included) for ``prog``; returns the
    remaining arguments."""
    from bsgap.run_config import give_command_line_precedence

    try:
        argv = resolve_config_argv(argv)
        sys.argv[:] = argv   # ml_collections finds the --config.x overrides in sys.argv
        rest = flags.FLAGS(argv)
        config = config_flag.value  # applies the --config.x overrides now
        overridden = set(config_flags.get_override_values(flags.FLAGS[config_flag.name]))
        for note in give_command_line_precedence(config, overridden):
            print(f"{prog}: {note}", file=sys.stderr)
        return rest
    except (ConfigFileError, flags.Error, AttributeError, KeyError, TypeError, ValueError, OSError,
            SyntaxError) as err:
        message = err.args[0] if err.args and isinstance(err.args[0], str) else str(err)
        if isinstance(err, AttributeError) and message[:1] == message[-1:] == "'":
            message = message[1:-1]   # ml_collections quotes its "did you mean" message
        message = " ".join(message.replace("\\'", "'").replace("\\n", " ").split())
        print(f"{prog}: error: {message}", file=sys.stderr)
        sys.exit(2)
