"""Numba CPU kernels of a KAN layer: span search, local B-spline basis, fused forward, fused
backward; and, on the same basis tapes, the regulariser's edge magnitudes; and the L-BFGS
direction. Every kernel here has a twin in reference.py, and tests hold the two together.

    basis.py        span search, the Cox–de Boor triangle without division, span_basis
    tape.py         BasisTape, and basis_tape, which fills one
    forward.py      layer_forward, layer_forward_tape (the formula is there)
    backward.py     layer_backward, layer_backward_tape
    magnitudes.py   edge_magnitude_sums, edge_magnitude_backward
    jets.py         layer_jet_forward, layer_jet_backward: outputs with their first and second
                    input derivatives, and the gradient through them (physics-informed training)
    lbfgs.py        lbfgs_direction
    parallel.py     threads: PARALLEL_WORK, max_threads, thread_limit, and two_forms, which gives
                    each kernel its serial and parallel forms and the launch between them
    cache.py        CACHE, whether Numba can cache the kernels on disk

The basis is never materialised as a (B, I, G+k) tensor. Per (sample, input) the kernels find
the span by a branch-free binary search and run the Cox–de Boor triangle (O(k^2) flops, unrolled
for k = 3) with the reciprocals of its knot differences looked up, not divided (`_knot_tables`,
once per launch). The result is a BasisTape entry; then each sample sweeps the O outputs, TERMS
terms at a time. The cost per (b, i, o) is about k+3 multiply-adds whatever the grid size G.

Two ways to run a layer:
    layer_forward, layer_backward             from x: the basis is computed where it is used
                                              (forward: one block of samples at a time)
    basis_tape, layer_forward_tape,           training: forward fills a BasisTape of x, which
    layer_backward_tape                       backward reads instead of recomputing the basis
Both run the same compiled sweeps on the same numbers, so they give the same bits.

Serial and parallel forms (parallel.py) give bit-identical results for any thread count:
    tapes, span_basis     a task owns a range of samples and writes only their entries (one task
                          per thread)
    forward               a task owns a block of samples b and writes only their rows
    backward              a task owns a group of inputs i and writes only their gradients; every
                          sum over b runs in sample order inside the task
No fast-math flag, not even FMA contraction: with contraction LLVM may fuse either product of
a*b + c*d, and it chose differently in the serial and the parallel caller of the same task function
(dx differed in the last bit). Without it every operation rounds as written, so the order of every
sum and product is fixed by this code whatever the compiler inlines where.
Kernels work in the dtype of coef (float32 or float64); constants are typed with
`dtype.type(...)` so that float32 kernels do no float64 arithmetic.

Python code passes the tape as the BasisTape NamedTuple; the compiled functions take its arrays
one by one, each named at the call (tape.window, ...), never splatted by position. Passed whole,
a NamedTuple costs Numba's dispatcher about 2 us more per call than its arrays (typing a tuple
has no fast path), which small models would pay at every launch.
"""
from .backward import (BACKWARD_BLOCK, layer_backward, layer_backward_parallel, layer_backward_serial,
                       layer_backward_tape, layer_backward_tape_parallel, layer_backward_tape_serial)
from .basis import span_basis, span_basis_parallel, span_basis_serial
from .cache import CACHE
from .forward import (FORWARD_CHUNK_TASKS, FORWARD_TASK_BYTES, layer_forward, layer_forward_parallel,
                      layer_forward_serial, layer_forward_tape, layer_forward_tape_parallel,
                      layer_forward_tape_serial)
from .jets import layer_jet_backward, layer_jet_forward
from .lbfgs import lbfgs_direction
from .magnitudes import edge_magnitude_backward, edge_magnitude_sums
from .parallel import PARALLEL_WORK, max_threads, thread_limit
from .tape import (TAPE_BLOCK, TERMS, BasisTape, basis_tape, basis_tape_parallel, basis_tape_serial, n_terms,
                   new_basis_tape)

__all__ = ["BACKWARD_BLOCK", "CACHE", "FORWARD_CHUNK_TASKS", "FORWARD_TASK_BYTES", "PARALLEL_WORK", "TAPE_BLOCK",
           "TERMS", "BasisTape", "basis_tape", "basis_tape_parallel", "basis_tape_serial", "edge_magnitude_backward",
           "edge_magnitude_sums", "layer_backward", "layer_backward_parallel", "layer_backward_serial",
           "layer_backward_tape", "layer_backward_tape_parallel", "layer_backward_tape_serial", "layer_forward",
           "layer_forward_parallel", "layer_forward_serial", "layer_forward_tape", "layer_forward_tape_parallel",
           "layer_forward_tape_serial", "layer_jet_backward", "layer_jet_forward", "lbfgs_direction", "max_threads", "n_terms", "new_basis_tape",
           "span_basis", "span_basis_parallel", "span_basis_serial", "thread_limit"]
