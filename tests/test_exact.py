"""Exact sums over rows (kanarray.training.exact): block partials combined so that the bits do not
depend on how the blocks are spread over processes, and the data layouts that make it hold."""
import math

import numpy as np
import pytest

from kanarray import KAN, create_dataset
from kanarray.training import exact
from kanarray.training.distributed import shard_bounds
from kanarray.training.objective import OneProcess, Objective


def spread_sum(groups, n_blocks):
    """What MPI ranks holding these groups of block partials compute: the maximum of their
    exponents, then the sum of their integer sums, in the order given."""
    e = np.max([exact.exponents(g)[0] for g in groups], axis=0)
    total = np.zeros(e.size, np.int64)
    for g in groups:
        total += exact.to_fixed(g, e, n_blocks)
    return exact.from_fixed(total, e, n_blocks)


def partials_with_cancellation(rng, n_blocks, P):
    """Block partials of mixed signs and magnitudes (1e-12 .. 1e6), columns that nearly cancel
    and columns that are zero in every block but one."""
    p = rng.standard_normal((n_blocks, P)) * 10.0 ** rng.uniform(-12, 6, size=(n_blocks, P))
    p[:, 0] = [1e6, -1e6 + 1e-3] + [1e-9] * (n_blocks - 2)
    p[1:, 1] = 0.0
    return p


def test_the_sum_does_not_depend_on_how_blocks_are_grouped_or_ordered():
    rng = np.random.default_rng(0)
    for n_blocks in (2, 7, 64):
        p = partials_with_cancellation(rng, n_blocks, 50)
        want = exact.exact_sum(p, n_blocks)
        for trial in range(5):
            order = rng.permutation(n_blocks)
            cuts = np.sort(rng.choice(np.arange(1, n_blocks), size=min(3, n_blocks - 1), replace=False))
            groups = np.split(p[order], cuts)
            assert spread_sum(groups, n_blocks).tobytes() == want.tobytes()
        # a plain float sum of more than two terms does depend on the order: why the exact sum
        assert n_blocks == 2 or any(p[rng.permutation(n_blocks)].sum(axis=0).tobytes() != p.sum(axis=0).tobytes()
                   for _ in range(20))


def test_one_block_comes_back_unchanged():
    rng = np.random.default_rng(1)
    p = rng.standard_normal((1, 100)) * 10.0 ** rng.uniform(-300, 300, size=(1, 100))
    p[0, :3] = [0.0, 5e-324, -1.7976931348623157e308]  # zero, the smallest subnormal, the largest
    for n_blocks in (1, 2, 255):  # headroom <= 9 bits: the fixed-point round trip is exact ...
        e = exact.exponents(p)[0]
        assert exact.from_fixed(exact.to_fixed(p, e, n_blocks), e, n_blocks).tobytes() == p[0].tobytes()
        assert exact.exact_sum(p, n_blocks).tobytes() == p[0].tobytes()  # ... which exact_sum skips
    f32 = rng.standard_normal((1, 20)).astype(np.float32)
    assert exact.exact_sum(f32, 1).astype(np.float32).tobytes() == f32[0].tobytes()


def test_the_sum_is_within_its_stated_bound_of_the_exact_value():
    """Each partial is kept to 62 - H bits of its column's largest partial, H = bits(n) + 1."""
    rng = np.random.default_rng(2)
    for n_blocks in (1, 3, 100, 1000):
        p = partials_with_cancellation(rng, n_blocks, 20) if n_blocks > 1 else rng.standard_normal((1, 20))
        got = exact.exact_sum(p, n_blocks)
        h = exact.headroom(n_blocks)
        for j in range(p.shape[1]):
            true = math.fsum(p[:, j])
            bound = n_blocks * 2.0 ** (math.frexp(np.abs(p[:, j]).max())[1] - 63 + h) + abs(true) * 2 ** -52
            assert abs(got[j] - true) <= bound


def test_a_non_finite_partial_makes_the_whole_sum_nan():
    p = np.ones((3, 4))
    p[1, 2] = np.inf
    assert np.isnan(exact.exact_sum(p, 3)).all()
    p[1, 2] = np.nan
    assert np.isnan(exact.exact_sum(p, 3)).all()


def test_too_many_blocks_is_an_error_that_names_the_remedy():
    assert exact.n_blocks_of(10, 4) == 3 and exact.n_blocks_of(0, 4) == 1
    with pytest.raises(ValueError, match="larger block_rows"):
        exact.n_blocks_of(exact.MAX_BLOCKS * 2 + 1, 2)
    for bad in (0, -3, 2.5, True, "8"):
        with pytest.raises(ValueError, match="block_rows"):
            exact.check_block_rows(bad)


def test_rows_are_cut_where_a_new_global_block_starts():
    assert exact.row_blocks(np.arange(10, 22), 5) == [(0, 5), (5, 10), (10, 12)]
    assert exact.row_blocks([0, 3, 4, 9, 17, 18], 5) == [(0, 3), (3, 4), (4, 6)]
    assert exact.row_blocks([], 5) == []


def test_shards_are_runs_of_whole_blocks_that_cover_the_rows_in_rank_order():
    for n_rows, size, block in ((201, 4, 25), (1000, 3, 64), (50, 2, 25), (7, 7, 1)):
        bounds = [shard_bounds(n_rows, size, r, block) for r in range(size)]
        assert bounds[0][0] == 0 and bounds[-1][1] == n_rows
        for (lo, hi), (next_lo, _) in zip(bounds, bounds[1:] + [(n_rows, None)]):
            assert hi == next_lo and lo % block == 0 and hi > lo
    with pytest.raises(ValueError, match="fewer than the 3 ranks"):
        shard_bounds(50, 3, 0, 25)


class ShardAt(OneProcess):
    """One process that believes it holds rows from global row `offset` on."""

    def __init__(self, offset):
        self.offset = offset

    def rows(self, n_local):
        return n_local + self.offset, self.offset


def test_a_shard_that_does_not_start_at_a_block_boundary_is_refused():
    data = create_dataset(lambda x: x[:, :1], n_var=2, train_num=40, test_num=20, seed=0)
    model = KAN(width=[2, 1], grid=3, seed=0)
    with pytest.raises(ValueError, match="global row 30, not at a multiple of block_rows=16"):
        Objective(model, data, ranks=ShardAt(30), block_rows=16)
    Objective(model, data, ranks=ShardAt(32), block_rows=16)  # whole blocks: accepted


def test_set_scaling_and_fit_refuse_a_comm_that_is_not_a_communicator_and_change_nothing():
    data = create_dataset(lambda x: x[:, :1], n_var=2, train_num=40, test_num=20, seed=0)
    model = KAN(width=[2, 1], grid=3, seed=0)
    params = model.params.copy()
    for call in (lambda: model.set_scaling(data["train_input"], data["train_label"], comm="world"),
                 lambda: model.fit(data, steps=1, comm="world")):
        with pytest.raises(TypeError, match="comm must be an mpi4py communicator"):
            call()
    assert model.input_scaling is None and model.output_scaling is None
    assert model.params.tobytes() == params.tobytes()


def test_blocks_change_a_fit_by_rounding_only():
    """Training on blocks of 16 rows (each its own evaluation, summed exactly) follows training
    on one block to rounding: the blocks split the sums, not the mathematics."""
    data = create_dataset(lambda x: np.sin(np.pi * x[:, :1]) + x[:, 1:] ** 2, n_var=2,
                          train_num=100, test_num=40, seed=3)
    runs = []
    for block_rows in (16, 10_000):
        model = KAN(width=[2, 3, 1], grid=5, seed=0)
        res = model.fit(data, steps=3, lbfgs_iters=5, lamb=1e-3, block_rows=block_rows)
        runs.append((model.params.copy(), res))
    (p16, r16), (p1, r1) = runs
    assert p16.tobytes() != p1.tobytes()  # other sums, other rounding
    np.testing.assert_allclose(p16, p1, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(r16["train_loss"], r1["train_loss"], rtol=1e-9)
    np.testing.assert_allclose(r16["test_loss"], r1["test_loss"], rtol=1e-9)
    np.testing.assert_allclose(r16["reg"], r1["reg"], rtol=1e-9)
