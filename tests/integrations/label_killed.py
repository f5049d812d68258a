"""`rewardsmith label ARGS...` in this process, with every Scorer call counted and a real SIGKILL.

    python label_killed.py COUNT_FILE KILL_AT CHUNK ARGS...

Each scoring call appends its number of responses to COUNT_FILE before it scores; call KILL_AT
(1-based; 0 = never) kills the process with SIGKILL instead, as an OOM killer or a pre-empted
node would. CHUNK replaces rewardsmith.label.CHUNK so a small input spans several calls.
"""

import os
import signal
import sys

import rewardsmith.label
from rewardsmith.cli import main
from rewardsmith.score import Scorer

count_file, kill_at, chunk, argv = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
rewardsmith.label.CHUNK = chunk
score = Scorer.score
calls = 0


def counted(self, items):
    global calls
    calls += 1
    if calls == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    with open(count_file, "a") as f:
        f.write(f"{len(items)}\n")
    return score(self, items)


Scorer.score = counted
sys.exit(main(argv))
