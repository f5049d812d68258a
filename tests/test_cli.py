import subprocess
import sys

from rewardsmith.cli import main


def test_help_lists_commands(capsys):
    assert main([]) == 2
    out = capsys.readouterr().out
    assert "COMMAND" in out


def test_entry_point_runs_as_module():
    import importlib.metadata

    import rewardsmith

    r = subprocess.run([sys.executable, "-m", "rewardsmith", "--version"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # what a bug report needs: our version and the two libraries' that decide the numbers
    assert r.stdout.startswith(f"rewardsmith {rewardsmith.__version__} (")
    for name in ("torch", "transformers"):
        assert f"{name} {importlib.metadata.version(name)}" in r.stdout


def test_cli_docs_are_current(tmp_path):
    """docs/cli/*.md are generated from --help; a changed option must come with `make docs`."""
    from pathlib import Path

    from rewardsmith.cli import docs

    out = Path(__file__).resolve().parents[1] / "docs" / "cli"
    assert docs.main([str(out), "--check"]) == 0, "run `make docs` and commit docs/cli"
    # and the checker itself catches drift
    docs.main([str(tmp_path)])
    (tmp_path / "index.md").write_text("stale")
    assert docs.main([str(tmp_path), "--check"]) == 1
