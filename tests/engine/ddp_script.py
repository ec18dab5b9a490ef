"""Run by test_engine.py through torchrun: trains the toy method on 2 gloo processes."""

import sys
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from toy_method import SPEC  # noqa: E402

from unflat.engine import distributed  # noqa: E402
from unflat.engine.trainer import Trainer  # noqa: E402

data, out = Path(sys.argv[1]), Path(sys.argv[2])
cfg = replace(SPEC.config("tiny"), data=data, out=out, max_steps=2, device="cpu")
trainer = Trainer(SPEC, cfg)
result = trainer.fit()
checksum = sum(float(p.double().sum()) for p in trainer.method.networks()["G"].parameters())
print(f"rank={distributed.rank()} world={distributed.world_size()} step={result.step} checksum={checksum:.12f}", flush=True)
distributed.shutdown()
