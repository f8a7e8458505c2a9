"""task_rng(seed) is `np.random.default_rng(seed)`, state for state and draw for draw."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from tirgym.envs import seeding
from tirgym.envs.seeding import task_rng

SEEDS = [0, 1, 2, 7, 1023, 1024, 1025, 123_456_789, 2**31 - 1, 2**31, 2**32 - 1]


@pytest.mark.parametrize("seed", SEEDS)
def test_same_generator_as_default_rng(seed):
    a, b = task_rng(seed), np.random.default_rng(seed)
    assert a.bit_generator.state == b.bit_generator.state
    assert a.integers(0, 10**9, 20).tolist() == b.integers(0, 10**9, 20).tolist()
    assert a.random() == b.random()


def test_a_whole_block_matches_seedsequence():
    seeds = np.arange(5 * seeding.BLOCK, 6 * seeding.BLOCK, dtype=np.uint32)
    words = seeding.pcg64_words(seeds)
    for s in (0, 1, 500, seeding.BLOCK - 1):
        seed = int(seeds[s])
        expected = np.random.SeedSequence(seed).generate_state(4, np.uint64)
        assert words[s].tolist() == expected.tolist()


@pytest.mark.parametrize("seed", [-1, 2**32, 2**70, np.int64(5)])
def test_other_seeds_take_default_rng(seed):
    if seed == -1:
        with pytest.raises(ValueError):
            task_rng(seed)
        return
    assert task_rng(seed).random() == np.random.default_rng(seed).random()


def test_spawn_entropy_copy_and_pickle_behave_as_default_rng():
    a, b = task_rng(5), np.random.default_rng(5)
    assert a.bit_generator.seed_seq.entropy == b.bit_generator.seed_seq.entropy == 5
    assert a.spawn(2)[1].random() == b.spawn(2)[1].random()
    a.random(), b.random()
    assert pickle.loads(pickle.dumps(a)).random() == copy.deepcopy(b).random()
