"""Write the photos that scikit-image, scikit-learn and matplotlib ship (whichever are installed) as PNGs,
for `unflat reconstruct` on real photos without masks (unflat.data.sample_photos):

    PYTHONPATH=src python benchmarks/write_sample_photos.py data/photos
"""

from __future__ import annotations

import sys
from pathlib import Path

from unflat.data.sample_photos import write_sample_photos


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "data/photos")
    missing: dict[str, str] = {}
    for path in write_sample_photos(out, missing=missing):
        print(path)
    for source, why in missing.items():
        print(f"{source} photos skipped: {why}", file=sys.stderr)


if __name__ == "__main__":
    main()
