"""Copy the official EG3D code (NVlabs/eg3d, fetched into the git-ignored .eg3d/) to a scratch directory and make
it run on Python 3.12 / PyTorch 2.11 / NumPy 2, for the same-call speed comparison (benchmarks/eg3d_compare.sh).

EG3D's code is never committed here: only these small text substitutions are. Each one names what breaks and
why; each must match exactly as often as stated, so a different EG3D revision fails loudly instead of running
half-patched. Three substitutions are labelled [bench]: they change what the harness can switch or observe,
never the training computation (TF32 switch, snapshot exports outside the timed window, a loud plugin check).

  python benchmarks/eg3d_patch.py --src .eg3d/eg3d --dst runs/eg3d_compare/eg3d
"""

from __future__ import annotations

import argparse
import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Patch:
    file: str  # path inside EG3D's eg3d/ directory
    old: str
    new: str
    why: str
    count: int = 1  # exact number of occurrences of ``old``


PATCHES: tuple[Patch, ...] = (
    Patch(
        "dnnlib/util.py",
        "from distutils.util import strtobool\n",
        "def strtobool(value):  # patched: distutils is gone in Python 3.12\n"
        "    value = value.lower()\n"
        "    if value in ('y', 'yes', 't', 'true', 'on', '1'):\n"
        "        return 1\n"
        "    if value in ('n', 'no', 'f', 'false', 'off', '0'):\n"
        "        return 0\n"
        "    raise ValueError(f'invalid truth value {value!r}')\n",
        "distutils was removed from the standard library in Python 3.12 (PEP 632); it imports only through "
        "setuptools' shim when setuptools happens to be installed. EG3D only needs strtobool.",
    ),
    Patch(
        "torch_utils/custom_ops.py",
        "            torch.utils.cpp_extension.load(name=module_name, build_directory=cached_build_dir,",
        "            module = torch.utils.cpp_extension.load(name=module_name, build_directory=cached_build_dir,",
        "recent PyTorch loads a JIT extension from its file without putting it on sys.path, so EG3D's later "
        "importlib.import_module(name) fails ('No module named bias_act_plugin'): keep the module load() returns.",
    ),
    Patch(
        "torch_utils/custom_ops.py",
        "            torch.utils.cpp_extension.load(name=module_name, verbose=verbose_build, sources=sources, **build_kwargs)",
        "            module = torch.utils.cpp_extension.load(name=module_name, verbose=verbose_build, sources=sources, **build_kwargs)",
        "same as above, for sources spread over several directories.",
    ),
    Patch(
        "torch_utils/custom_ops.py",
        "        module = importlib.import_module(module_name)\n",
        "        sys.modules[module_name] = module  # patched: load() no longer makes it importable by name\n",
        "register the loaded module under its name instead of importing it by name.",
    ),
    Patch(
        "torch_utils/custom_ops.py",
        "import shutil\n",
        "import shutil\nimport sys\n",
        "sys is needed by the substitution above.",
    ),
    Patch(
        "torch_utils/misc.py",
        "        super().__init__(dataset)\n",
        "        super().__init__()  # patched: Sampler.__init__ no longer takes data_source\n",
        "PyTorch 2.11's torch.utils.data.Sampler has no __init__ of its own (the data_source argument was "
        "deprecated in 2.2 and removed), so InfiniteSampler's super().__init__(dataset) raises TypeError.",
    ),
    Patch(
        "torch_utils/ops/grid_sample_gradfix.py",
        "        op = torch._C._jit_get_operation('aten::grid_sampler_2d_backward')\n"
        "        grad_input, grad_grid = op(grad_output, input, grid, 0, 0, False)\n",
        "        grad_input, grad_grid = torch.ops.aten.grid_sampler_2d_backward(grad_output, input, grid, 0, 0, False, [True, True])  # patched\n",
        "torch._C._jit_get_operation now returns (op, overload names) and the op gained an output_mask argument "
        "(PyTorch >= 1.11); call the public aten op instead. Not reached in this benchmark: EG3D's training "
        "loop sets grid_sample_gradfix.enabled = False and the augmentation pipe is off (--aug=noaug).",
    ),
    Patch(
        "training/training_loop.py",
        "    torch.backends.cuda.matmul.allow_tf32 = False       # Improves numerical accuracy.\n"
        "    torch.backends.cudnn.allow_tf32 = False             # Improves numerical accuracy.\n",
        "    torch.backends.cuda.matmul.allow_tf32 = os.environ.get('EG3D_BENCH_TF32') == '1'  # [bench] default False\n"
        "    torch.backends.cudnn.allow_tf32 = os.environ.get('EG3D_BENCH_TF32') == '1'        # [bench] default False\n",
        "[bench] EG3D hard-codes TF32 off and has no flag; EG3D_BENCH_TF32=1 measures it with TF32 on as a "
        "labelled variant (unset = EG3D's own default).",
    ),
    Patch(
        "training/training_loop.py",
        "        if (rank == 0) and (image_snapshot_ticks is not None) and (done or cur_tick % image_snapshot_ticks == 0):\n",
        "        if (rank == 0) and (image_snapshot_ticks is not None) and (done or cur_tick % image_snapshot_ticks == 0) and os.environ.get('EG3D_BENCH_NO_SNAPSHOTS') != '1':  # [bench]\n",
        "[bench] tick 0 always renders a 32x32 sample grid and writes three 4096^2 PNGs (tens of seconds); that "
        "maintenance is outside EG3D's sec/kimg window anyway, and skipping it keeps the device call short.",
    ),
    Patch(
        "training/training_loop.py",
        "        if (network_snapshot_ticks is not None) and (done or cur_tick % network_snapshot_ticks == 0):\n",
        "        if (network_snapshot_ticks is not None) and (done or cur_tick % network_snapshot_ticks == 0) and os.environ.get('EG3D_BENCH_NO_SNAPSHOTS') != '1':  # [bench]\n",
        "[bench] likewise for the network pickle written at tick 0 (also outside the sec/kimg window).",
    ),
    Patch(
        "training/training_loop.py",
        "        misc.print_module_summary(D, [img, c])\n",
        "        misc.print_module_summary(D, [img, c])\n"
        "        from torch_utils.ops import bias_act as _bench_bias_act, upfirdn2d as _bench_upfirdn2d  # [bench]\n"
        "        for _bench_op in (_bench_bias_act, _bench_upfirdn2d):  # [bench] fail loudly if not the CUDA plugin\n"
        "            if not (_bench_op._init() and _bench_op._plugin is not None):\n"
        "                raise RuntimeError(f'EG3D custom CUDA op {_bench_op.__name__} did not load')\n"
        "            print(f'EG3D_BENCH plugin loaded: {_bench_op.__name__} -> {getattr(_bench_op._plugin, \"__file__\", _bench_op._plugin)}', flush=True)\n",
        "[bench] prove in the log that the fused CUDA ops (bias_act, upfirdn2d) are what the networks run: "
        "the summary pass above has just called them on the GPU.",
    ),
)


def apply_patches(root: Path, patches: tuple[Patch, ...] = PATCHES) -> list[str]:
    """Apply ``patches`` in place under ``root`` (EG3D's eg3d/ directory); returns one line per patch.

    Raises ValueError naming the file when a substitution does not match exactly ``count`` times.
    """
    done = []
    for patch in patches:
        path = root / patch.file
        text = path.read_text()
        found = text.count(patch.old)
        if found != patch.count:
            raise ValueError(f"{path}: expected {patch.count} match(es) of the text to patch, found {found} "
                             f"(a different EG3D revision?): {patch.old.strip()[:80]!r}")
        path.write_text(text.replace(patch.old, patch.new))
        done.append(f"{patch.file}: {patch.why}")
    return done


def patched_copy(src: Path, dst: Path) -> list[str]:
    """Fresh copy of ``src`` (EG3D's eg3d/ directory) at ``dst`` with PATCHES applied."""
    if not (src / "train.py").is_file():
        raise FileNotFoundError(f"{src}: not EG3D's eg3d/ directory (no train.py); fetch NVlabs/eg3d into .eg3d/")
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return apply_patches(dst)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", type=Path, default=Path(".eg3d/eg3d"))
    parser.add_argument("--dst", type=Path, default=Path("runs/eg3d_compare/eg3d"))
    args = parser.parse_args()
    for line in patched_copy(args.src, args.dst):
        print("patched", line)
    print(f"EG3D patched copy: {args.dst}")


if __name__ == "__main__":
    main()
