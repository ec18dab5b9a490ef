"""Which off-the-shelf OpenGL renderer to use: the batched moderngl one, or pyrender.

Both take ``OpenGLRenderer``'s arguments, return the same ``RenderOutput`` and draw the same pictures
(tests/render/test_moderngl.py compares them). "auto" picks moderngl where a headless EGL context can be
made (GPU machines; CPU machines with Mesa's EGL), otherwise pyrender (EGL or OSMesa).
"""

from __future__ import annotations

import warnings
from typing import Literal, Union

from unflat.render.moderngl_backend import ModernGLRenderer, moderngl_available
from unflat.render.opengl import OpenGLRenderer

RendererBackend = Literal["auto", "moderngl", "pyrender"]
GLRenderer = Union[ModernGLRenderer, OpenGLRenderer]

_WARNED = False


def resolve_backend(requested: RendererBackend = "auto") -> str:
    """"moderngl" or "pyrender" for a request; "auto" falls back to pyrender with one warning."""
    global _WARNED
    if requested not in ("auto", "moderngl", "pyrender"):
        raise ValueError(f"unknown renderer backend {requested!r}; expected auto, moderngl or pyrender")
    if requested != "auto":
        return requested
    reason = moderngl_available()
    if reason is None:
        return "moderngl"
    if not _WARNED:
        warnings.warn(f"moderngl renderer unavailable ({reason}); using pyrender, which draws one mesh at a time",
                      stacklevel=2)
        _WARNED = True
    return "pyrender"


def create_renderer(backend: RendererBackend, resolution: int, **kwargs) -> GLRenderer:
    """A renderer of the resolved backend with ``OpenGLRenderer``'s keyword arguments."""
    if resolve_backend(backend) == "moderngl":
        kwargs.pop("platform", None)
        return ModernGLRenderer(resolution, **kwargs)
    return OpenGLRenderer(resolution, **kwargs)
