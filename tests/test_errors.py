"""`cli_main`, the wrapper of every command: one line for a user's error, one line and 130 for Ctrl-C."""

import gc
import sys

import pytest

from slowfast.errors import INTERRUPTED_EXIT_CODE, Interrupted, UserError, cli_main


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


@pytest.mark.parametrize("cycle", [False, True])
def test_a_command_can_say_what_its_ctrl_c_kept_and_half_built_objects_stay_quiet(monkeypatch, run_cli, cycle):
    printed = []
    monkeypatch.setattr(sys, "unraisablehook", printed.append)

    @cli_main("interrupted (the default line)")
    def main(argv=None):
        try:
            HalfBuilt(cycle)
        except KeyboardInterrupt:
            raise Interrupted("interrupted: epochs 1-2 are kept; rerun to go on") from None

    code, err = run_cli(main, [])
    gc.collect()
    assert (code, err) == (INTERRUPTED_EXIT_CODE, "interrupted: epochs 1-2 are kept; rerun to go on")
    assert printed == []


def test_a_user_error_is_one_line_with_its_exit_status(run_cli):
    class BadFlag(UserError):
        exit_code = 2

    @cli_main()
    def main(argv=None):
        raise BadFlag("--flag x: not a number\n  (given on the command line)")

    assert run_cli(main, []) == (2, "error: --flag x: not a number (given on the command line)")
