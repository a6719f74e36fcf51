"""`cli_main`, the wrapper of every command: one line for a user's error, one line and 130 for Ctrl-C."""

import gc
import sys

import pytest

from slowfast.errors import INTERRUPTED_EXIT_CODE, UserError, cli_main


class HalfBuilt:
    """As torch's data-loader iterator when Ctrl-C lands while it starts its workers: its clean-up fails."""

    def __init__(self, cycle: bool):
        if cycle:
            self.me = self  # freed by the garbage collector, not when the interrupted frames go
        raise KeyboardInterrupt

    def __del__(self):
        self.shutdown()  # AttributeError: __init__ never got that far


@pytest.mark.parametrize("cycle", [False, True])
def test_ctrl_c_prints_only_its_one_line_even_when_a_half_built_object_fails_to_clean_up(monkeypatch, run_cli, cycle):
    printed = []  # what Python would print as "Exception ignored in ..."
    recorder = printed.append
    monkeypatch.setattr(sys, "unraisablehook", recorder)

    @cli_main("interrupted: rerun the same command")
    def main(argv=None):
        HalfBuilt(cycle)

    code, err = run_cli(main, [])
    gc.collect()  # anything the command left to the garbage collector would fail now
    assert (code, err) == (INTERRUPTED_EXIT_CODE, "interrupted: rerun the same command")
    assert printed == []
    assert sys.unraisablehook is recorder  # restored for the rest of the process


def test_a_user_error_is_one_line_with_its_exit_status(run_cli):
    class BadFlag(UserError):
        exit_code = 2

    @cli_main()
    def main(argv=None):
        raise BadFlag("--flag x: not a number\n  (given on the command line)")

    assert run_cli(main, []) == (2, "error: --flag x: not a number (given on the command line)")
