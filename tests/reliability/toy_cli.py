"""`unflat` with the engine's toy method registered and each step slowed down by UNFLAT_TEST_STEP_SLEEP
seconds (UNFLAT_TEST_STEP_SLEEP_AFTER_FIRST: from the second step on; UNFLAT_TEST_STEP_STUCK=1: steps after
the first never return, stuck in C code; UNFLAT_TEST_STEP_RAISE=1: every step raises RuntimeError, a bug for the
CLI's catch-all), so a test can kill a real `unflat train` process at random points of a run that lasts a few seconds.

usage: python toy_cli.py train toy --preset tiny --data DIR --out RUN ...   |   python toy_cli.py train --resume RUN
"""

from __future__ import annotations

import os
import sys
import time

from toy_method import ToyGAN  # noqa: F401  (registers "toy"; tests/engine is on PYTHONPATH)

from unflat import cli

_delay = float(os.environ.get("UNFLAT_TEST_STEP_SLEEP", "0"))
_original = ToyGAN.train_step


_stuck = os.environ.get("UNFLAT_TEST_STEP_STUCK") == "1"
_delay_after_first = float(os.environ.get("UNFLAT_TEST_STEP_SLEEP_AFTER_FIRST", "0"))
_raise = os.environ.get("UNFLAT_TEST_STEP_RAISE") == "1"


def _slow_step(self, batch, step):
    if _raise:
        raise RuntimeError("planted bug in the toy step")
    time.sleep(_delay)
    if step >= 1:
        time.sleep(_delay_after_first)
        if _stuck:  # a step stuck in C code (no Python bytecode runs, so no signal handler either)
            sum(range(10**14))
    return _original(self, batch, step)


ToyGAN.train_step = _slow_step

if __name__ == "__main__":
    raise SystemExit(cli.main(sys.argv[1:]))
