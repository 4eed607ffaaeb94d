"""Sums over rows whose bits do not depend on how the rows are spread over processes or threads.

    blocks = row_blocks(rows, offset, block_rows)     # this process's rows, cut at global blocks
    total = exact_sum(partials, n_blocks)             # partials (blocks, P) -> (P,) float64

Every sum over training rows (the loss, the gradient, the regulariser's edge magnitudes, the
test error) is formed in two stages:

1. a float partial per BLOCK of rows: global rows [j block_rows, (j+1) block_rows), numbered
   rank by rank, whatever process holds them. A block is evaluated as a batch of its own (forward
   and backward), so its partial is the same bits on any process and for any thread count (the
   kernels' own sums run in a fixed order);
2. the partials combined EXACTLY: each column j gets one scale from the largest partial of that
   column in ANY block, e_j = the exponent with |partial| < 2**e_j (a maximum, which MPI forms
   in any order); every partial is rounded once to a multiple of 2**(e_j - 62 + H) and held as
   an int64 (|value| < 2**(62 - H)); integers add exactly and associatively, so their sum
   (local, then Allreduce(SUM) over processes) is the same whatever the order; the total is
   turned back into a float64 once.

So one process and any number of ranks holding whole blocks give the same bits. Sums of one
number per row (a test error, a column of targets) need no blocks: every row is its own.

Bounds. H = bits(n_blocks) + 1 headroom bits keep the integer sum of n_blocks terms below 2**62,
so it cannot overflow; n_blocks <= MAX_BLOCKS (2**24; more raises a ValueError: use larger
blocks). Each partial is rounded to a multiple of 2**(e_j - 62 + H), so the total is within
n_blocks 2**(e_j - 63 + H) of the exact sum: with one block the round trip is exact
(53 <= 62 - H); with 1,000 blocks the error is below 2**-41 of the largest partial, about what
a float64 sum of 1,000 terms keeps. A non-finite partial makes the whole sum NaN (training
treats it as a non-finite loss).
"""
import numpy as np

# Rows per block. Each block is one evaluation of its own, so smaller blocks cost more launches
# and smaller parallel sweeps (bench/results/exact_sum.md); batches up to this size stay one block.
BLOCK_ROWS = 65536
MAX_BLOCKS = 2 ** 24
WORD_BITS = 62
ZERO_EXPONENT = -2000  # the exponent of a column that is zero in every block (below any float's)


def check_block_rows(block_rows):
    if isinstance(block_rows, bool) or not isinstance(block_rows, (int, np.integer)) or block_rows < 1:
        raise ValueError(f"block_rows must be an integer >= 1, got {block_rows!r}")
    return int(block_rows)


def n_blocks_of(n_rows, block_rows):
    """Blocks of block_rows global rows that n_rows rows make (at least one), checked."""
    n = max(1, -(-int(n_rows) // block_rows))
    if n > MAX_BLOCKS:
        raise ValueError(f"{n_rows} rows in blocks of {block_rows} make {n} blocks, more than the "
                         f"{MAX_BLOCKS} an exact sum holds: pass a larger block_rows")
    return n


def row_blocks(rows, block_rows):
    """[(lo, hi)]: the runs of positions in `rows` (sorted global row numbers of this
    process's rows, numbered rank by rank) that fall in one block of block_rows global rows."""
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        return []
    block = rows // block_rows
    cuts = np.flatnonzero(np.diff(block)) + 1
    edges = np.concatenate([[0], cuts, [rows.size]])
    return [(int(lo), int(hi)) for lo, hi in zip(edges[:-1], edges[1:])]


def headroom(n_blocks):
    return int(n_blocks).bit_length() + 1


def exponents(partials):
    """(columns' exponents e with |partial| < 2**e over this process's blocks (ZERO_EXPONENT
    where all are zero), 1 if any partial is not finite else 0). partials: (blocks, P) float64."""
    partials = np.asarray(partials, dtype=np.float64).reshape(-1, np.shape(partials)[-1])
    largest = np.abs(partials).max(axis=0) if partials.shape[0] else np.zeros(partials.shape[1])
    finite = bool(np.isfinite(largest).all())
    _, e = np.frexp(np.where(np.isfinite(largest), largest, 0.0))
    e = np.where(largest > 0, e, ZERO_EXPONENT).astype(np.int64)
    return e, int(not finite)


def to_fixed(partials, e, n_blocks):
    """This process's partials (blocks, P) at the columns' exponents e -> their int64 sum (P,)."""
    partials = np.asarray(partials, dtype=np.float64).reshape(-1, e.size)
    shift = (WORD_BITS - headroom(n_blocks) - e).astype(np.int32)
    return np.rint(np.ldexp(partials, shift)).astype(np.int64).sum(axis=0, dtype=np.int64)


def from_fixed(total, e, n_blocks):
    """The int64 sum of every block's fixed-point partials -> float64, rounded once."""
    shift = (WORD_BITS - headroom(n_blocks) - e).astype(np.int32)
    return np.ldexp(total.astype(np.float64), -shift)


def exact_sum(partials, n_blocks):
    """The exact sum over blocks (axis 0) of one process's partials -> (P,) float64 (NaN
    everywhere when a partial is not finite). n_blocks: the blocks of every process, at most."""
    partials = np.asarray(partials, dtype=np.float64)
    if partials.shape[0] == 1 and WORD_BITS - headroom(n_blocks) >= 53:
        # one block: the round trip below is exact, so skip it (the same bits, less time)
        finite = np.isfinite(partials[0]).all()
        return partials[0] if finite else np.full(partials.shape[-1], np.nan)
    e, nonfinite = exponents(partials)
    if nonfinite:
        return np.full(partials.shape[-1], np.nan)
    return from_fixed(to_fixed(partials, e, n_blocks), e, n_blocks)
