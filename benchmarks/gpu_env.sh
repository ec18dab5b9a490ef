# Sourced on the GPU machine: unpack carried OpenGL/EGL libraries and wheels (once per machine, even when many
# jobs source this at the same time: a lock and a stamp), then set the environment.
(
  flock 9
  stamp=/tmp/site/.unflat-env-$(ls .gl .whl 2>/dev/null | md5sum | cut -c1-12)
  if [ ! -e "$stamp" ]; then
    ok=1
    if [ -d .gl ]; then for f in .gl/*.deb; do dpkg -x "$f" / || ok=0; done; ldconfig; fi
    if [ -d .whl ]; then
      python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl || ok=0
    fi
    [ "$ok" = 1 ] && mkdir -p /tmp/site && touch "$stamp"
  fi
) 9>/tmp/unflat-gpu-env.lock
[ -d .whl ] && export PYTHONPATH=/tmp/site
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYOPENGL_PLATFORM=egl PYTHONUNBUFFERED=1
export __EGL_VENDOR_LIBRARY_FILENAMES=${__EGL_VENDOR_LIBRARY_FILENAMES:-/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json}
# torch.compile's caches inside the repo's ignored runs/: a later call on the still-warm machine reuses compiled
# kernels and graphs instead of recompiling for minutes
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-$PWD/runs/inductor_cache}
