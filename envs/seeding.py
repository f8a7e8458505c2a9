"""task_rng(seed): the generator `np.random.default_rng(seed)` gives, built in a quarter of
the time.

Every reset draws its task from a fresh seeded generator, and `default_rng` spends ~10 us
on it, mostly in SeedSequence's hashing of the seed into PCG64's starting words: as much as
a whole reset of a small game. That hashing is a fixed sequence of 32-bit multiply, xor and
shift steps, so here it runs vectorised over a block of consecutive seeds at once (seeds
come in runs: eval and training count them up) and the four words per seed are kept;
PCG64 then starts from a seed sequence that hands it those words. The stream is
bit-for-bit that of `default_rng(seed)`; seeds outside [0, 2**32) take `default_rng` itself.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from numpy.random import PCG64, Generator, SeedSequence
from numpy.random.bit_generator import ISpawnableSeedSequence

BLOCK_BITS = 10
BLOCK = 1 << BLOCK_BITS
MAX_BLOCKS = 64
"""At most 64 blocks of 1,024 seeds (2 MiB of words) are kept."""

_U = np.uint32
INIT_A, MULT_A = _U(0x43B0D7E5), _U(0x931E8875)
INIT_B, MULT_B = _U(0x8B51F9DD), _U(0x58F38DED)
MIX_MULT_L, MIX_MULT_R = _U(0xCA01F9DD), _U(0x4973F715)
XSHIFT = _U(16)
POOL = 4

_blocks: OrderedDict[int, np.ndarray] = OrderedDict()


def _hash_constants(start, mult, n: int) -> list[tuple[np.uint32, np.uint32]]:
    """(xor, multiplier) of each successive hashmix step: the constant is xored in, then
    multiplied by MULT, then the value is multiplied by the new constant."""
    out, h = [], int(start)
    for _ in range(n):
        nxt = (h * int(mult)) & 0xFFFFFFFF
        out.append((_U(h), _U(nxt)))
        h = nxt
    return out


_MIX_STEPS = _hash_constants(INIT_A, MULT_A, POOL + POOL * (POOL - 1))
_STATE_STEPS = _hash_constants(INIT_B, MULT_B, 8)


def _hashmix(value: np.ndarray, step: tuple[np.uint32, np.uint32]) -> np.ndarray:
    value = (value ^ step[0]) * step[1]
    return value ^ (value >> XSHIFT)


def _mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    result = MIX_MULT_L * x - MIX_MULT_R * y
    return result ^ (result >> XSHIFT)


def pcg64_words(seeds: np.ndarray) -> np.ndarray:
    """SeedSequence(s).generate_state(4, np.uint64) for each one-word seed s, as rows."""
    with np.errstate(over="ignore"):
        steps = iter(_MIX_STEPS)
        zero = np.zeros_like(seeds)
        mixer = [_hashmix(seeds if i == 0 else zero, next(steps)) for i in range(POOL)]
        for src in range(POOL):
            for dst in range(POOL):
                if src != dst:
                    mixer[dst] = _mix(mixer[dst], _hashmix(mixer[src], next(steps)))
        words = [_hashmix(mixer[i % POOL], _STATE_STEPS[i]) for i in range(8)]
    state = np.stack(words, axis=1).astype("<u4")  # (n, 8) little-endian 32-bit words
    return np.ascontiguousarray(state).view("<u8").astype(np.uint64)


def _words(seed: int) -> np.ndarray:
    key = seed >> BLOCK_BITS
    block = _blocks.get(key)
    if block is None:
        block = pcg64_words(np.arange(key * BLOCK, (key + 1) * BLOCK, dtype=np.uint32))
        _blocks[key] = block
        if len(_blocks) > MAX_BLOCKS:
            _blocks.popitem(last=False)
    else:
        _blocks.move_to_end(key)
    return block[seed & (BLOCK - 1)]


class _KnownSeedSequence(ISpawnableSeedSequence):
    """Hands PCG64 its precomputed starting words; any other use (entropy, spawn, ...)
    goes to the real SeedSequence of the seed, built on first need."""

    __slots__ = ("_seed", "_state", "_real")

    def __init__(self, seed: int, state: np.ndarray):
        self._seed, self._state, self._real = seed, state, None

    def _sequence(self) -> SeedSequence:
        if self._real is None:
            self._real = SeedSequence(self._seed)
        return self._real

    def generate_state(self, n_words, dtype=np.uint32):
        if n_words == 4 and dtype is np.uint64 and self._real is None:
            return self._state
        return self._sequence().generate_state(n_words, dtype)

    def spawn(self, n_children):
        return self._sequence().spawn(n_children)

    def __getattr__(self, name):
        if name.startswith("_"):  # copy and pickle probe for hooks before __init__ ran
            raise AttributeError(name)
        return getattr(self._sequence(), name)


def task_rng(seed: int) -> Generator:
    """The same generator as `np.random.default_rng(seed)`, faster for seeds in [0, 2**32)."""
    if type(seed) is not int or not 0 <= seed < 1 << 32:
        return np.random.default_rng(seed)
    return Generator(PCG64(_KnownSeedSequence(seed, _words(seed))))
