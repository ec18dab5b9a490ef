"""Which off-the-shelf OpenGL renderer to use: moderngl (the default) or pyrender (optional extra).

Both take the same arguments, return the same ``RenderOutput`` and draw the same pictures
(tests/render/test_moderngl.py compares them when pyrender is installed). moderngl renders headless
through EGL: NVIDIA's driver on GPU machines, Mesa's llvmpipe on CPU machines. pyrender
(``pip install 'unflat[pyrender]'``) is the second implementation, for users who ask for it and as a
fallback where no EGL context can be made (it can also use OSMesa).
"""

from __future__ import annotations

import importlib.util
import warnings
from typing import TYPE_CHECKING, Literal, Union

from unflat.errors import UserError
from unflat.render.moderngl_backend import ModernGLRenderer, moderngl_available

if TYPE_CHECKING:
    from unflat.render.pyrender_backend import PyrenderRenderer

RendererBackend = Literal["auto", "moderngl", "pyrender"]
"""Off-the-shelf renderer: "moderngl" (batched, default), "pyrender" (extra ``unflat[pyrender]``),
"auto" (moderngl where an EGL context works, else pyrender when installed)."""
GLRenderer = Union[ModernGLRenderer, "PyrenderRenderer"]

_WARNED = False


def pyrender_installed() -> bool:
    """Whether the optional pyrender backend can be imported (without importing it: that binds OpenGL)."""
    return importlib.util.find_spec("pyrender") is not None


def resolve_backend(requested: RendererBackend = "auto") -> str:
    """"moderngl" or "pyrender" for a request, or a one-line ``UserError`` naming what to install."""
    global _WARNED
    if requested not in ("auto", "moderngl", "pyrender"):
        raise ValueError(f"unknown renderer backend {requested!r}; expected auto, moderngl or pyrender")
    if requested == "pyrender" and not pyrender_installed():
        raise UserError("the pyrender renderer is an optional extra: pip install 'unflat[pyrender]' "
                        "(or bash scripts/setup.sh pyrender), or use the default moderngl renderer")
    if requested != "auto":
        return requested
    reason = moderngl_available()
    if reason is None:
        return "moderngl"
    if not pyrender_installed():
        raise UserError(f"no OpenGL renderer works here: moderngl could not make a headless EGL context ({reason}); "
                        "install EGL (Debian/Ubuntu: apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri), "
                        "or the pyrender extra with OSMesa (bash scripts/setup.sh pyrender)")
    if not _WARNED:
        warnings.warn(f"moderngl renderer unavailable ({reason}); using pyrender, which draws one mesh at a time",
                      stacklevel=2)
        _WARNED = True
    return "pyrender"


def create_renderer(backend: RendererBackend, resolution: int, **kwargs) -> GLRenderer:
    """A renderer of the resolved backend with the renderers' shared keyword arguments (see
    ``ModernGLRenderer``); ``platform`` only reaches pyrender."""
    if resolve_backend(backend) == "moderngl":
        kwargs.pop("platform", None)
        return ModernGLRenderer(resolution, **kwargs)
    from unflat.render.pyrender_backend import PyrenderRenderer  # noqa: PLC0415  (binds PyOpenGL's platform)

    return PyrenderRenderer(resolution, **kwargs)
