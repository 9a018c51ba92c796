"""Murmur3 as Spark's HashingTF uses it (Spark 3+ `hashUnsafeBytes2`, seed 42), so a term lands
in the same feature index as in the JVM."""

from __future__ import annotations

from functools import lru_cache

HASHING_TF_SEED = 42  # org.apache.spark.ml.feature.HashingTF: private val seed = 42

_MASK32 = 0xFFFFFFFF


def murmur3_x86_32(data: bytes, seed: int = HASHING_TF_SEED) -> int:
    """Signed 32-bit MurmurHash3_x86_32, as `Murmur3_x86_32.hashUnsafeBytes2` computes it.

    hashUnsafeBytes2 reads whole 4-byte blocks little-endian, folds the 1-3 tail bytes into one
    block and mixes it unconditionally; mixK1(0) == 0, so that is the reference algorithm (the
    older `hashUnsafeBytes` used before Spark 3.0 mixed each tail byte as an int and differs).
    """
    h1 = seed & _MASK32
    length = len(data)
    aligned = length - length % 4
    for i in range(0, aligned, 4):
        h1 ^= _mix_k1(int.from_bytes(data[i : i + 4], "little"))
        h1 = ((h1 << 13) | (h1 >> 19)) & _MASK32
        h1 = (h1 * 5 + 0xE6546B64) & _MASK32
    k1 = 0
    for shift, byte in enumerate(data[aligned:]):
        k1 ^= byte << (8 * shift)
    h1 ^= _mix_k1(k1)
    h1 ^= length
    h1 ^= h1 >> 16
    h1 = (h1 * 0x85EBCA6B) & _MASK32
    h1 ^= h1 >> 13
    h1 = (h1 * 0xC2B2AE35) & _MASK32
    h1 ^= h1 >> 16
    return h1 - (1 << 32) if h1 & 0x80000000 else h1


def _mix_k1(k1: int) -> int:
    k1 = (k1 * 0xCC9E2D51) & _MASK32
    k1 = ((k1 << 15) | (k1 >> 17)) & _MASK32
    return (k1 * 0x1B873593) & _MASK32


@lru_cache(maxsize=1 << 16)
def term_hash(term: str) -> int:
    # Spark hashes UTF8String.fromString(term): Java's encoder turns a lone surrogate into '?',
    # which is what Python's "replace" handler does too. Cached: tweets reuse a small vocabulary.
    return murmur3_x86_32(term.encode("utf-8", "replace"), HASHING_TF_SEED)


def term_index(term: str, num_features: int) -> int:
    """HashingTF.indexOf: nonNegativeMod(murmur3(term), numFeatures) (Python's % is already)."""
    return term_hash(term) % num_features
