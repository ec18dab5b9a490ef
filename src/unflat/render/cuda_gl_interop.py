"""CUDA-OpenGL interop: copy CUDA tensors straight into OpenGL buffers, never through host memory.

The batched moderngl renderer draws meshes that were made on the GPU (iggan: marching cubes of a
whole batch, ~4M faces per step early in training). Without interop they travel GPU -> host (pageable
copies) -> the GL driver -> GPU again: on an H100 that was 100 of the 135 ms the OpenGL part took
(BENCHMARKS.md, "OpenGL draw = prepare 67, upload 34, draw 11"). With interop, each GL buffer is
registered with CUDA once, mapped, and filled by a device-to-device copy.

It calls the CUDA runtime PyTorch has already loaded (ctypes; no extra package). Works when the GL
context (NVIDIA's EGL) and the CUDA device are the same GPU; anything else raises ``InteropError``
and the renderer falls back to host copies. All calls must come from the thread whose GL context is
current (the renderer's GL thread).

Not done yet (next, with a measurement): the copy uses ``cudaMemcpy`` on the legacy default stream, so it
also waits for kernels the training thread queued after the meshes (the proxy's forward pass that overlaps
the draw); a non-blocking stream of its own (``cudaStreamCreateWithFlags`` + ``cudaMemcpyAsync``) would let
the copy start as soon as the meshes are ready.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from pathlib import Path

from torch import Tensor

_REGISTER_WRITE_DISCARD = 2  # cudaGraphicsRegisterFlagsWriteDiscard: CUDA overwrites the whole buffer
_MEMCPY_DEVICE_TO_DEVICE = 3  # cudaMemcpyDeviceToDevice


class InteropError(RuntimeError):
    """CUDA-GL interop cannot be used here (no CUDA runtime, GL on another GPU or a software renderer, ...)."""


def _loaded_cudart_path() -> str | None:
    """The CUDA runtime library this process has loaded (PyTorch's), from /proc/self/maps."""
    maps = Path("/proc/self/maps")
    if not maps.exists():
        return None
    for line in maps.read_text().splitlines():
        path = line.split()[-1] if line.split() else ""
        if "libcudart.so" in Path(path).name:
            return path
    return None


def _cudart() -> ctypes.CDLL:
    path = _loaded_cudart_path() or ctypes.util.find_library("cudart")
    if not path:
        raise InteropError("no CUDA runtime library loaded in this process")
    try:
        return ctypes.CDLL(path)
    except OSError as exc:
        raise InteropError(f"cannot load {path}: {exc}") from exc


class CudaGLInterop:
    """Copies CUDA tensors into GL buffer objects (by their GL names) on the GPU.

    device_index: the CUDA device of the tensors; it must be the GPU the GL context runs on.
    """

    def __init__(self, device_index: int) -> None:
        self.lib = _cudart()
        self._check(self.lib.cudaSetDevice(ctypes.c_int(device_index)), "cudaSetDevice")
        self._resources: dict[int, ctypes.c_void_p] = {}  # GL buffer name -> cudaGraphicsResource_t

    def _check(self, status: int, call: str) -> None:
        if status != 0:
            self.lib.cudaGetErrorString.restype = ctypes.c_char_p
            message = self.lib.cudaGetErrorString(ctypes.c_int(status)).decode(errors="replace")
            self.lib.cudaGetLastError()  # clear the sticky-free error so later CUDA calls are not blamed
            raise InteropError(f"{call} failed: {message} (cudaError {status})")

    def _resource(self, gl_buffer: int) -> ctypes.c_void_p:
        resource = self._resources.get(gl_buffer)
        if resource is None:
            resource = ctypes.c_void_p()
            self._check(self.lib.cudaGraphicsGLRegisterBuffer(ctypes.byref(resource), ctypes.c_uint(gl_buffer),
                                                              ctypes.c_uint(_REGISTER_WRITE_DISCARD)),
                        "cudaGraphicsGLRegisterBuffer")
            self._resources[gl_buffer] = resource
        return resource

    def copy(self, gl_buffer: int, tensor: Tensor) -> None:
        """Write ``tensor`` (contiguous, on the CUDA device, its producing work finished) to the start of
        GL buffer ``gl_buffer``; returns when the copy is done."""
        if not tensor.is_cuda or not tensor.is_contiguous():
            raise InteropError("interop copies need contiguous CUDA tensors")
        nbytes = tensor.numel() * tensor.element_size()
        if nbytes == 0:
            return
        resource = self._resource(gl_buffer)
        self._check(self.lib.cudaGraphicsMapResources(ctypes.c_int(1), ctypes.byref(resource), None),
                    "cudaGraphicsMapResources")
        try:
            pointer, size = ctypes.c_void_p(), ctypes.c_size_t()
            self._check(self.lib.cudaGraphicsResourceGetMappedPointer(ctypes.byref(pointer), ctypes.byref(size),
                                                                      resource), "cudaGraphicsResourceGetMappedPointer")
            if nbytes > size.value:
                raise InteropError(f"GL buffer {gl_buffer} holds {size.value} bytes, {nbytes} to copy")
            self._check(self.lib.cudaMemcpy(pointer, ctypes.c_void_p(tensor.data_ptr()), ctypes.c_size_t(nbytes),
                                            ctypes.c_int(_MEMCPY_DEVICE_TO_DEVICE)), "cudaMemcpy")
        finally:
            self._check(self.lib.cudaGraphicsUnmapResources(ctypes.c_int(1), ctypes.byref(resource), None),
                        "cudaGraphicsUnmapResources")

    def forget(self, gl_buffer: int) -> None:
        """Unregister a GL buffer before it is released (GL may reuse its name)."""
        resource = self._resources.pop(gl_buffer, None)
        if resource is not None:
            self.lib.cudaGraphicsUnregisterResource(resource)

    def close(self) -> None:
        for gl_buffer in list(self._resources):
            self.forget(gl_buffer)
