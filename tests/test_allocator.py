"""rewardsmith.allocator: when the console entry point re-runs itself under jemalloc, and when not."""

import pytest

from rewardsmith.allocator import _SWITCHED, ENV, find_jemalloc, plan
from rewardsmith.errors import RewardsmithError

LIB = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"


def test_a_long_running_command_switches_when_the_library_is_there():
    env = plan(["train", "--config", "x.yaml"], {"PATH": "/bin"}, "linux", LIB)
    assert env == {"PATH": "/bin", "LD_PRELOAD": LIB, _SWITCHED: LIB, "MALLOC_CONF": "background_thread:true"}
    # global options before the command, an LD_PRELOAD of something else (kept behind ours), and
    # the user's own jemalloc settings (kept as they are)
    env = plan(["-v", "serve", "m"], {"LD_PRELOAD": "/opt/libfoo.so", "MALLOC_CONF": "narenas:2"}, "linux", LIB)
    assert env["LD_PRELOAD"] == f"{LIB}:/opt/libfoo.so" and env["MALLOC_CONF"] == "narenas:2"


@pytest.mark.parametrize("argv, env, platform, library", [
    (["score", "m", "in.jsonl"], {}, "linux", LIB),                 # short commands stay as they are
    (["--version"], {}, "linux", LIB),
    (["train"], {ENV: "system"}, "linux", LIB),                       # the user said no
    (["train"], {_SWITCHED: LIB}, "linux", LIB),                      # already switched: never loops
    (["train"], {"LD_PRELOAD": "/usr/lib/libtcmalloc.so.4"}, "linux", LIB),  # the user's own allocator
    (["train"], {}, "linux", None),                                   # not installed: carry on
    (["train"], {}, "darwin", LIB),                                   # no LD_PRELOAD there
])
def test_carries_on_as_it_is(argv, env, platform, library):
    assert plan(argv, env, platform, library) is None


def test_asking_for_jemalloc_without_it_says_what_to_install():
    with pytest.raises(RewardsmithError, match="no libjemalloc was found: install it \\(apt install libjemalloc2"):
        plan(["train"], {ENV: "jemalloc"}, "linux", None)
    with pytest.raises(RewardsmithError, match="LD_PRELOAD is Linux's; this is darwin"):
        plan(["demo"], {ENV: "jemalloc"}, "darwin", LIB)
    with pytest.raises(RewardsmithError, match="REWARDSMITH_ALLOCATOR='tcmalloc': use auto"):
        plan(["train"], {ENV: "tcmalloc"}, "linux", LIB)


def test_the_active_conda_envs_library_comes_first(tmp_path):
    (tmp_path / "lib").mkdir()
    lib = tmp_path / "lib" / "libjemalloc.so.2"
    lib.write_bytes(b"")
    assert find_jemalloc({"CONDA_PREFIX": str(tmp_path)}) == str(lib)


def test_a_failed_switch_carries_on_with_a_warning(monkeypatch, capsys):
    import rewardsmith.allocator as allocator

    def refuse(*_):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(allocator, "find_jemalloc", lambda env=None: LIB)
    monkeypatch.setattr(allocator.os, "execve", refuse)
    monkeypatch.setattr(allocator.sys, "platform", "linux")
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.delenv(_SWITCHED, raising=False)
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    allocator.run_under_jemalloc(["train", "--config", "x.yaml"])  # returns: the command goes on
    assert "could not switch to jemalloc ([Errno 13] Permission denied)" in capsys.readouterr().err
