"""Sending and judging: the transport, the runner, the checks, results and verdicts."""
