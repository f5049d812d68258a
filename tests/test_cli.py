import subprocess
import sys

from rewardsmith.cli import main


def test_help_lists_commands(capsys):
    assert main([]) == 2
    out = capsys.readouterr().out
    assert "COMMAND" in out


def test_entry_point_runs_as_module():
    r = subprocess.run([sys.executable, "-m", "rewardsmith", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and "rewardsmith" in r.stdout
