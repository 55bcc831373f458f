import pytest

from mgr import cli
from mgr.errors import UserError, debug_enabled


@pytest.fixture
def failing_command(monkeypatch):
    def fail(argv):
        raise UserError("data root /nowhere does not exist: run `mgr synth --out /nowhere` first")

    monkeypatch.setitem(cli._EXTRA, "boom", fail)
    monkeypatch.setenv("MGR_DEBUG", "0")  # restored after the test, also when -v sets it


def test_user_error_is_one_line_on_stderr_with_status_2(failing_command, capsys):
    assert cli.main(["boom"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "mgr: error: data root /nowhere does not exist: run `mgr synth --out /nowhere` first\n"
    )


@pytest.mark.parametrize("how", ["env", "flag"])
def test_debug_keeps_the_traceback(failing_command, monkeypatch, how):
    argv = ["boom"]
    if how == "env":
        monkeypatch.setenv("MGR_DEBUG", "1")
    else:
        argv.append("-v")
    with pytest.raises(UserError, match="does not exist"):
        cli.main(argv)


def test_programming_errors_keep_their_traceback(monkeypatch):
    def bug(argv):
        raise KeyError("internal")

    monkeypatch.setitem(cli._EXTRA, "bug", bug)
    with pytest.raises(KeyError):
        cli.main(["bug"])


@pytest.mark.parametrize(("value", "expected"), [("", False), ("0", False), ("1", True)])
def test_debug_enabled_reads_mgr_debug(monkeypatch, value, expected):
    monkeypatch.setenv("MGR_DEBUG", value)
    assert debug_enabled() is expected
