"""Runs xatlas in a separate process: ``python xatlas_worker.py IN.npz OUT.npz TEXTURE_SIZE``.

xatlas crashes (segfaults) on some inputs, e.g. a perfectly regular icosphere, which would take
the whole Python process with it. Run as a script by path, so it imports only numpy and xatlas.
IN.npz holds ``vertices`` [V,3] float32 and ``faces`` [F,3] uint32; OUT.npz receives ``vmapping``
[V'], ``indices`` [F,3] and ``uvs`` [V',2] in [0,1].
"""

import sys

import numpy as np
import xatlas


def parametrize(vertices: np.ndarray, faces: np.ndarray, texture_size: int) -> tuple[np.ndarray, ...]:
    atlas = xatlas.Atlas()
    atlas.add_mesh(vertices, faces)
    pack = xatlas.PackOptions()
    pack.resolution = texture_size
    pack.padding = 2  # texels between charts, so filtering does not mix neighbouring charts
    atlas.generate(xatlas.ChartOptions(), pack)
    return atlas[0]


if __name__ == "__main__":
    source, target, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with np.load(source) as data:
        vmapping, indices, uvs = parametrize(data["vertices"], data["faces"], size)
    np.savez(target, vmapping=vmapping, indices=indices, uvs=uvs)
