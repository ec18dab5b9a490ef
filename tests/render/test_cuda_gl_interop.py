"""CUDA-GL interop's contract with the renderer: where it cannot work it raises InteropError, and the
renderer then puts the same data into its GL buffers through host memory (once, with a warning)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unflat.render import cuda_gl_interop
from unflat.render.cuda_gl_interop import CudaGLInterop, InteropError
from unflat.render.moderngl_backend import DrawTimings, ModernGLRenderer, _GLState, moderngl_available


def test_no_cuda_runtime_is_an_interop_error(monkeypatch):
    monkeypatch.setattr(cuda_gl_interop, "_loaded_cudart_path", lambda: None)
    monkeypatch.setattr(cuda_gl_interop.ctypes.util, "find_library", lambda name: None)
    with pytest.raises(InteropError, match="no CUDA runtime"):
        CudaGLInterop(0)


def test_cpu_tensors_are_refused():
    interop = CudaGLInterop.__new__(CudaGLInterop)  # no runtime needed: the check comes first
    with pytest.raises(InteropError, match="CUDA tensors"):
        interop.copy(1, torch.zeros(3))


@pytest.mark.skipif(moderngl_available() is not None, reason=f"no headless moderngl: {moderngl_available()}")
def test_upload_falls_back_to_host_memory_with_the_same_bytes(monkeypatch):
    def unavailable(device_index):
        raise InteropError("test: GL and CUDA on different GPUs")

    monkeypatch.setattr("unflat.render.moderngl_backend.CudaGLInterop", unavailable)
    owner = ModernGLRenderer(8)
    state = _GLState(owner)
    try:
        data = torch.arange(12, dtype=torch.float32).reshape(4, 3)
        timings = DrawTimings()
        with pytest.warns(UserWarning, match="host memory"):
            buf = state.upload("position", data, np.float32, timings)
        assert np.array_equal(np.frombuffer(buf.read(data.numel() * 4), np.float32).reshape(4, 3), data.numpy())
        assert timings.path == "host copies" and owner._interop_usable is False
        again = state.upload("position", data * 2, np.float32, timings)  # no second attempt, no warning
        assert np.array_equal(np.frombuffer(again.read(48), np.float32), (data * 2).numpy().ravel())
    finally:
        state.release()
        owner.close()
