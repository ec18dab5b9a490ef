"""`unflat` with the engine's toy method registered and each step slowed down by UNFLAT_TEST_STEP_SLEEP
seconds, so a test can kill a real `unflat train` process at random points of a run that lasts a few seconds.

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


def _slow_step(self, batch, step):
    time.sleep(_delay)
    return _original(self, batch, step)


ToyGAN.train_step = _slow_step

if __name__ == "__main__":
    raise SystemExit(cli.main(sys.argv[1:]))
