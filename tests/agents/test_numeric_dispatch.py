"""The engine's processes keep numpy's AVX-512 float64 kernels off (agents/__init__.py),
so a history gives the same model fits, to the last bit, on every x86 CPU. The feature
names are numpy's own: a numpy that renamed them would warn at import and silently
ignore the setting, which this test turns into a failure."""

from __future__ import annotations

import os
import subprocess
import sys


def test_the_engine_disables_numpys_avx512_kernels_with_names_numpy_knows() -> None:
    env = {k: v for k, v in os.environ.items() if k != "NPY_DISABLE_CPU_FEATURES"}
    probe = (
        "import agents, os, numpy\n"
        "from numpy._core._multiarray_umath import __cpu_features__ as found\n"
        "names = os.environ['NPY_DISABLE_CPU_FEATURES'].split()\n"
        "assert names and not any(found.get(n) for n in names), names\n"
        "print(' '.join(names))\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error::ImportWarning", "-c", probe],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "X86_V4" in done.stdout.split()
