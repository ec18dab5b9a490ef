"""Keep the object of a density grid before marching cubes: density inside the foreground, pieces near the object.

A generator trained on photos may put density where the background is: a sheet at the back or the bottom of the
tri-plane box, blobs in its corners. ``object_density`` clears it in two steps:

1. **Foreground**: density outside the ball of ``radius`` (objects live in the unit sphere) is set below the
   level.
2. **Connected to the object**: occupied voxels (density above the level) are grouped into components after a
   dilation by ``gap`` voxels (so a leg separated from its seat by a voxel stays with it); the object is every
   component whose bounding box contains the centre of the box (where the cameras look), or the largest one
   when none does. Other components are cleared.

A background sheet that touches the object (a floor it stands on) is part of its component and stays: clearing
it would need a notion of what a floor is.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def object_density(grid: Tensor, level: float, half: float, radius: float = 1.0, gap: int = 2) -> Tensor:
    """grid [R,R,R] density on ``grid_points(R, (-half, half))`` -> the same grid with non-object density below ``level``."""
    from scipy import ndimage  # noqa: PLC0415

    r = grid.shape[0]
    axis = torch.linspace(-half, half, r, device=grid.device)
    distance2 = axis[:, None, None] ** 2 + axis[None, :, None] ** 2 + axis[None, None, :] ** 2
    low = min(float(grid.min()), level - 1.0)
    out = torch.where(distance2 <= radius**2, grid, torch.full_like(grid, low)) if radius > 0 else grid.clone()
    occupied = (out > level).cpu().numpy()
    if not occupied.any():
        return out
    labels, count = ndimage.label(ndimage.binary_dilation(occupied, iterations=max(gap, 0)) if gap > 0 else occupied)
    centre = (r - 1) / 2
    boxes = ndimage.find_objects(labels)
    keep = [i + 1 for i, box in enumerate(boxes) if box is not None
            and all(s.start <= centre + 0.5 and s.stop - 1 >= centre - 0.5 for s in box)]
    if not keep:  # nothing surrounds the centre: the biggest piece is the object
        sizes = ndimage.sum(occupied, labels, index=np.arange(1, count + 1))
        keep = [int(np.argmax(sizes)) + 1]
    drop = occupied & ~np.isin(labels, keep)
    return torch.where(torch.from_numpy(drop).to(out.device), torch.full_like(out, low), out)
