"""Everything Faust and everything that touches the outside world."""

import os

# numpy computes float64 log and exp with its own AVX-512 kernels where the CPU has them
# and with the C library's elsewhere; the two differ in the last bit, and the purchase
# model's fit (L-BFGS-B with finite differences) turns that bit into a different fit, so
# the same history would give other P(alive) figures on another CPU. Every process that
# runs the engine imports this package before numpy: the AVX-512 kernels stay off.
os.environ.setdefault("NPY_DISABLE_CPU_FEATURES", "X86_V4 AVX512_ICL AVX512_SPR")
