"""unflat: learn 3D from flat images."""

__version__ = "0.1.0"
