"""Errors the tool reports to its user as one line and exit status 2."""

from __future__ import annotations


class SetupError(Exception):
    """Bad input to the tool (a flag, a profile, a config, an unreachable target).

    The command line prints ``imgconf: error: <message>`` and exits 2; never a traceback.
    A broken *server under test* is not a SetupError: it is a finding in the report.
    """
