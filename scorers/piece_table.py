"""Raw pieces of text and their words' hashes, looked up and windowed by compiled loops (numba).

A batch of texts arrives as one UTF-8 buffer and its offsets, and is cut first (`_cut`): every
character `simplify_text` treats as a separator becomes spaces, so the pieces are the runs between
ASCII whitespace. Each distinct piece's word hashes are computed once, in Python, by whoever owns
the table (spaCy decides what the words are); everything that runs per byte, per piece or per word
runs here without the GIL: splitting, finding each piece in an open-addressing hash table (bytes
compared, so two pieces never share an entry), gathering the word hashes, and rolling the
prefilter key of every n consecutive words of a text.

The rolling key of a window is `combine` of its n word hashes (scorers/simplified_words.py): the
polynomial sum(h[j] * B**(n-1-j)) mod 2**64, updated per word by dropping the oldest term.

Loading the compiled loops costs ~0.25 s per process (numba and its cache, written beside this
file on first use): `warm_up()` pays it where a caller can afford it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from warehouse.arrow import utf8_buffer


def _answer_vllm_s_kernel_scan() -> None:
    """vLLM's CPU worker, as it starts, looks for Triton kernels in `vars(x)` of every module
    attribute `x` that has a `__dict__` (vllm/triton_utils/dispatcher.py, `_rebind_kernels`).
    llvmlite's library object, loaded with numba, answers any attribute name with a wrapped C
    symbol, `__dict__` included, and the scan fails on it ("'_lib_fn_wrapper' object has no
    attribute 'get'"): a process that hashed words before it started a vLLM engine could not
    start one. An entry for `__dict__` in the object's table of symbols, an empty dict, answers
    the scan; llvmlite looks up only real symbol names there."""
    from llvmlite.binding import ffi

    ffi.lib._fntab.setdefault("__dict__", {})


_answer_vllm_s_kernel_scan()

_EMPTY = -1
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
# A key set is a bitmap of its keys' top 24 bits (2 MB: it stays in a core's cache, and with ~700k
# keys, MMLU's, 4 % of it is set) and its sorted keys in buckets of their top 20 bits (~0.7 keys
# per bucket): a key that is not in the set is nearly always turned away by one bit, and one that
# passes costs a look at a bucket, not a binary search over all keys.
_BIT_SHIFT = np.uint64(40)
_BUCKET_SHIFT = np.uint64(44)


@njit(cache=True, nogil=True, inline="always")
def _is_space(byte) -> bool:
    return byte == 32 or 9 <= byte <= 13


@njit(cache=True, nogil=True, inline="always")
def _digit_or_non_ascii(byte) -> bool:
    return 48 <= byte <= 57 or byte >= 128


@njit(cache=True, nogil=True)
def _cut(values, offsets, ascii_table, cut_codepoints, keep_number_joins, marked_codepoint, out):
    """The texts' bytes with every cut character turned into spaces (as many as it has bytes, so
    the offsets stay), ASCII bytes through `ascii_table`; a "." or "," between two digits (or
    non-ASCII characters, which may be digits) of one text is kept when `keep_number_joins`.
    Written into `out`; returns which texts hold `marked_codepoint`."""
    marked = np.zeros(len(offsets) - 1, np.bool_)
    for text in range(len(offsets) - 1):
        start, end = offsets[text], offsets[text + 1]
        i = start
        while i < end:
            byte = values[i]
            if byte < 128:
                out[i] = ascii_table[byte]
                if (
                    keep_number_joins
                    and (byte == 46 or byte == 44)
                    and start < i < end - 1
                    and _digit_or_non_ascii(values[i - 1])
                    and _digit_or_non_ascii(values[i + 1])
                ):
                    out[i] = byte
                i += 1
                continue
            if byte < 0xE0:
                length, codepoint = 2, byte & 0x1F
            elif byte < 0xF0:
                length, codepoint = 3, byte & 0x0F
            else:
                length, codepoint = 4, byte & 0x07
            for k in range(1, length):
                codepoint = (codepoint << 6) | (values[i + k] & 0x3F)
            if codepoint == marked_codepoint:
                marked[text] = True
            cut_here = cut_codepoints[codepoint]
            for k in range(length):
                out[i + k] = 32 if cut_here else values[i + k]
            i += length
    return marked


@njit(cache=True, nogil=True)
def _find(values, start, end, h, slots, entry_hash, entry_start, entry_len, arena):
    """(entry of the piece values[start:end], its slot): the entry is -1 when the piece is not in
    the table, and the slot is then the empty one it would take."""
    mask = np.uint64(len(slots) - 1)
    slot = h & mask
    length = end - start
    while True:
        entry = slots[slot]
        if entry == _EMPTY:
            return _EMPTY, slot
        if entry_hash[entry] == h and entry_len[entry] == length:
            at = entry_start[entry]
            same = True
            for k in range(length):
                if arena[at + k] != values[start + k]:
                    same = False
                    break
            if same:
                return entry, slot
        slot = (slot + np.uint64(1)) & mask


@njit(cache=True, nogil=True)
def _index_pieces(
    values,
    offsets,
    first_text,
    first_piece,
    pieces,
    per_text,
    slots,
    entry_hash,
    entry_start,
    entry_len,
    entries,
    arena,
    arena_used,
):
    """Every piece of texts `first_text`.. : its entry into `pieces` (from `first_piece` on) and each
    text's number of pieces into `per_text`, adding each piece not in the table yet (its bytes
    copied into the arena). Stops at the start of a text holding a piece that would overfill the
    entries, the arena or half the slots: returns (that text, or the number of texts when done,
    the pieces written before it, entries, arena bytes used)."""
    texts = len(offsets) - 1
    count = first_piece
    for text in range(first_text, texts):
        text_start = count
        position, end_of_text = offsets[text], offsets[text + 1]
        while position < end_of_text:
            while position < end_of_text and _is_space(values[position]):
                position += 1
            start = position
            h = _FNV_OFFSET
            while position < end_of_text and not _is_space(values[position]):
                h ^= np.uint64(values[position])
                h *= _FNV_PRIME
                position += 1
            if position == start:
                continue
            entry, slot = _find(values, start, position, h, slots, entry_hash, entry_start, entry_len, arena)
            if entry == _EMPTY:
                length = position - start
                if entries == len(entry_hash) or arena_used + length > len(arena) or 2 * (entries + 1) > len(slots):
                    return text, text_start, entries, arena_used
                arena[arena_used : arena_used + length] = values[start:position]
                entry_hash[entries] = h
                entry_start[entries] = arena_used
                entry_len[entries] = length
                slots[slot] = entries
                entry = entries
                entries += 1
                arena_used += length
            pieces[count] = entry
            count += 1
        per_text[text] = count - text_start
    return texts, count, entries, arena_used


# XXH64 (seed 0), from the xxHash specification (doc/xxhash_spec.md of Cyan4973/xxHash): the
# hash datatrove gives words, computed here for the pieces that are one word as they stand
_P1 = np.uint64(0x9E3779B185EBCA87)
_P2 = np.uint64(0xC2B2AE3D27D4EB4F)
_P3 = np.uint64(0x165667B19E3779F9)
_P4 = np.uint64(0x85EBCA77C2B2AE63)
_P5 = np.uint64(0x27D4EB2F165667C5)


@njit(cache=True, nogil=True, inline="always")
def _rotl(x, r):
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


@njit(cache=True, nogil=True, inline="always")
def _read(data, at, size):
    """`size` bytes from `at`, little-endian."""
    value = np.uint64(0)
    for k in range(size):
        value |= np.uint64(data[at + k]) << np.uint64(8 * k)
    return value


@njit(cache=True, nogil=True, inline="always")
def _round(acc, lane):
    acc += lane * _P2
    return _rotl(acc, 31) * _P1


@njit(cache=True, nogil=True)
def _xxh64(data, start, length):
    at, end = start, start + length
    if length >= 32:
        v1, v2, v3, v4 = _P1 + _P2, _P2, np.uint64(0), np.uint64(0) - _P1
        while at + 32 <= end:
            v1 = _round(v1, _read(data, at, 8))
            v2 = _round(v2, _read(data, at + 8, 8))
            v3 = _round(v3, _read(data, at + 16, 8))
            v4 = _round(v4, _read(data, at + 24, 8))
            at += 32
        h = _rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)
        for v in (v1, v2, v3, v4):
            h = (h ^ _round(np.uint64(0), v)) * _P1 + _P4
    else:
        h = _P5
    h += np.uint64(length)
    while at + 8 <= end:
        h = _rotl(h ^ _round(np.uint64(0), _read(data, at, 8)), 27) * _P1 + _P4
        at += 8
    if at + 4 <= end:
        h = _rotl(h ^ (_read(data, at, 4) * _P1), 23) * _P2 + _P3
        at += 4
    while at < end:
        h = _rotl(h ^ (np.uint64(data[at]) * _P5), 11) * _P1
        at += 1
    h ^= h >> np.uint64(33)
    h *= _P2
    h ^= h >> np.uint64(29)
    h *= _P3
    return h ^ (h >> np.uint64(32))


@njit(cache=True, nogil=True)
def _letters_and_hashes(arena, starts, lengths):
    """Per piece: whether it is ASCII letters only, and the XXH64 of its bytes where it is."""
    letters = np.ones(len(starts), np.bool_)
    hashes = np.zeros(len(starts), np.uint64)
    for i in range(len(starts)):
        for k in range(starts[i], starts[i] + lengths[i]):
            byte = arena[k] | 32  # a capital and its small letter differ in this bit alone
            if not 97 <= byte <= 122:
                letters[i] = False
                break
        if letters[i]:
            hashes[i] = _xxh64(arena, starts[i], lengths[i])
    return letters, hashes


def xxh64(data: bytes) -> int:
    """XXH64 of `data` (seed 0), by the compiled loop: for checking it against the xxhash library."""
    return int(_xxh64(np.frombuffer(data, np.uint8), 0, len(data)))


@njit(cache=True, nogil=True)
def _rehash(slots, entry_hash, entries):
    mask = np.uint64(len(slots) - 1)
    slots[:] = _EMPTY
    for entry in range(entries):
        slot = entry_hash[entry] & mask
        while slots[slot] != _EMPTY:
            slot = (slot + np.uint64(1)) & mask
        slots[slot] = entry


@njit(cache=True, nogil=True)
def _word_total(pieces, word_count):
    total = 0
    for piece in pieces:
        total += word_count[piece]
    return total


@njit(cache=True, nogil=True)
def _gather(pieces, word_count, word_start, flat, out):
    """The word hashes of the pieces, in order, into `out`."""
    at = 0
    for piece in pieces:
        start = word_start[piece]
        for k in range(word_count[piece]):
            out[at] = flat[start + k]
            at += 1
    return out


@njit(cache=True, nogil=True, inline="always")
def _is_key(key, bits, bucket_starts, keys):
    """Whether `key` is in the key set (`key_set`): its bit first, then its bucket's keys."""
    bit = key >> _BIT_SHIFT
    if not (bits[bit >> np.uint64(6)] >> (bit & np.uint64(63))) & np.uint64(1):
        return False
    bucket = key >> _BUCKET_SHIFT
    for at in range(bucket_starts[bucket], bucket_starts[bucket + np.uint64(1)]):  # noqa: SIM110 - numba compiles loops, not generators
        if keys[at] == key:
            return True
    return False


@njit(cache=True, nogil=True)
def has_window_key(hashes, n, base, bits, bucket_starts, keys):
    """Whether n consecutive hashes of `hashes` have a rolling key in a key set (`key_set`)."""
    top = np.uint64(1)  # base ** (n - 1): the weight of a window's oldest word
    for _ in range(n - 1):
        top *= base
    key = np.uint64(0)
    for i in range(len(hashes)):
        if i >= n:
            key -= hashes[i - n] * top
        key = key * base + hashes[i]
        if i + 1 >= n and _is_key(key, bits, bucket_starts, keys):
            return True
    return False


@njit(cache=True, nogil=True)
def _texts_with_key(pieces, pieces_per_text, word_count, word_start, flat, n, base, bits, bucket_starts, keys, words, hits):
    """hits[t] = `has_window_key` of text t's word hashes (its pieces in turn in `pieces`);
    `words` has room for all the pieces' words."""
    _gather(pieces, word_count, word_start, flat, words)
    piece_at = word_at = 0
    for text in range(len(pieces_per_text)):
        count = 0
        for piece in pieces[piece_at : piece_at + pieces_per_text[text]]:
            count += word_count[piece]
        hits[text] = has_window_key(words[word_at : word_at + count], n, base, bits, bucket_starts, keys)
        piece_at += pieces_per_text[text]
        word_at += count


class PieceTable:
    """Distinct raw pieces (their bytes), each with its word hashes once they are set."""

    def __init__(self, capacity: int = 1 << 16):
        self._capacity = capacity  # entries to start with (the tests start small, to grow)
        self.forget()

    def __len__(self) -> int:
        return self._entries

    def forget(self) -> None:
        self._scratches: dict[str, np.ndarray] = {}
        size = self._capacity
        self._slots = np.full(2 * size, _EMPTY, np.int64)
        self._hash = np.empty(size, np.uint64)
        self._start = np.empty(size, np.int64)
        self._len = np.empty(size, np.int64)
        self._arena = np.empty(16 * size, np.uint8)
        self._arena_used = 0
        self._entries = 0
        self._word_count = np.empty(size, np.int64)
        self._word_start = np.empty(size, np.int64)
        self._flat = np.empty(size, np.uint64)
        self._flat_used = 0

    def index(self, values: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """Every piece's entry (in order) and each text's number of pieces, of a cut batch, and the
        first new entry: the pieces not met before are added, in order of appearance, and need
        their word hashes (`set_words`) before anything else is looked up."""
        first_new = self._entries
        pieces = self._scratch("pieces", len(values) // 2 + 1, np.int64)  # a piece and a space take 2 bytes at least
        per_text = np.zeros(len(offsets) - 1, np.int64)
        text = count = 0
        while True:
            text, count, self._entries, self._arena_used = _index_pieces(
                values, offsets, text, count, pieces, per_text,
                self._slots, self._hash, self._start, self._len, self._entries, self._arena, self._arena_used,
            )  # fmt: skip
            if text == len(offsets) - 1:
                break
            self._grow()
        return pieces[:count], per_text, first_new

    def strings(self, entries: np.ndarray) -> list[str]:
        arena = self._arena
        return [
            arena[start : start + length].tobytes().decode("utf-8")
            for start, length in zip(self._start[entries].tolist(), self._len[entries].tolist())
        ]

    def letters_and_hashes(self, first: int) -> tuple[np.ndarray, np.ndarray]:
        """Of the entries from `first` on: which are ASCII letters only, and their XXH64 where so."""
        return _letters_and_hashes(self._arena, self._start[first : self._entries], self._len[first : self._entries])

    def set_words(self, counts: np.ndarray, flat: np.ndarray) -> None:
        """The word hashes of the entries from the first new one on (`index`), in order: each
        entry's number of words and all of them in turn."""
        first = self._entries - len(counts)
        while len(self._word_count) < self._entries:
            self._word_count, self._word_start = (_doubled(a, first) for a in (self._word_count, self._word_start))
        while len(self._flat) < self._flat_used + len(flat):
            self._flat = _doubled(self._flat, self._flat_used)
        self._word_count[first : self._entries] = counts
        self._word_start[first : self._entries] = self._flat_used + np.cumsum(counts) - counts
        self._flat[self._flat_used : self._flat_used + len(flat)] = flat
        self._flat_used += len(flat)

    def _grow(self) -> None:
        """Double whatever stopped `_index_pieces`: the entries, the slots or the arena (which
        may not have had room for the piece that stopped it: the arena is the one left)."""
        if self._entries == len(self._hash):
            self._hash, self._start, self._len = (_doubled(a, self._entries) for a in (self._hash, self._start, self._len))
        elif 2 * (self._entries + 1) > len(self._slots):
            self._slots = np.full(2 * len(self._slots), _EMPTY, np.int64)
            _rehash(self._slots, self._hash, self._entries)
        else:
            self._arena = _doubled(self._arena, self._arena_used)

    def word_hashes(self, pieces: np.ndarray) -> np.ndarray:
        hashes = np.empty(_word_total(pieces, self._word_count), np.uint64)
        _gather(pieces, self._word_count, self._word_start, self._flat, hashes)
        return hashes

    def word_counts(self, pieces: np.ndarray) -> np.ndarray:
        return self._word_count[pieces]

    def texts_with_key(self, pieces: np.ndarray, per_text: np.ndarray, n: int, base: np.uint64, keys: KeySet) -> np.ndarray:
        hits = np.zeros(len(per_text), np.bool_)
        words = self._scratch("words", _word_total(pieces, self._word_count), np.uint64)
        _texts_with_key(pieces, per_text, self._word_count, self._word_start, self._flat, n, base, *keys, words, hits)
        return hits

    def cut(self, values: np.ndarray, offsets: np.ndarray, ascii_table, cut_codepoints, keep_number_joins: bool, marked: int):
        """`_cut` of a batch: (its cut bytes, valid until the next batch; which texts hold `marked`)."""
        out = self._scratch("cut", len(values), np.uint8)
        return out, _cut(values, offsets, ascii_table, cut_codepoints, keep_number_joins, marked, out)

    def _scratch(self, name: str, size: int, dtype) -> np.ndarray:
        """A work array of at least `size` kept from batch to batch: a new one per batch would be
        mapped and unmapped each time, and unmapping interrupts every core this process runs on."""
        array = self._scratches.get(name)
        if array is None or len(array) < size:
            array = self._scratches[name] = np.empty(max(size, 2 * len(array) if array is not None else 0), dtype)
        return array[:size]


class KeySet(NamedTuple):
    """Sorted unique uint64 keys, looked up by the compiled loops (see `_BIT_SHIFT`)."""

    bits: np.ndarray  # uint64 words of the bitmap of the keys' top bits
    bucket_starts: np.ndarray  # where each bucket of keys starts in `keys`, and the end
    keys: np.ndarray


def key_set(keys: np.ndarray) -> KeySet:
    """The key set of sorted unique uint64 `keys`."""
    bits = np.zeros(1 << (64 - int(_BIT_SHIFT) - 6), np.uint64)
    bucket_starts = np.zeros((1 << (64 - int(_BUCKET_SHIFT))) + 1, np.int64)
    _fill_key_set(keys, bits, bucket_starts)
    return KeySet(bits, bucket_starts, keys)


@njit(cache=True, nogil=True)
def _fill_key_set(keys, bits, bucket_starts):
    """The bitmap and bucket bounds of sorted `keys`, in one pass (no per-bit array to pack: a
    mix loads its eval sets' keys while every core is busy)."""
    for key in keys:
        bit = key >> _BIT_SHIFT
        bits[bit >> np.uint64(6)] |= np.uint64(1) << (bit & np.uint64(63))
        bucket_starts[(key >> _BUCKET_SHIFT) + np.uint64(1)] += 1
    for bucket in range(1, len(bucket_starts)):
        bucket_starts[bucket] += bucket_starts[bucket - 1]


def _doubled(array: np.ndarray, used: int) -> np.ndarray:
    grown = np.empty(2 * len(array), array.dtype)
    grown[:used] = array[:used]
    return grown


def text_buffers(texts) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes of an Arrow string array and where each string starts in them (int64)."""
    data, offsets = utf8_buffer(texts)
    offsets = offsets.astype(np.int64)
    values = np.frombuffer(data, np.uint8) if data is not None else np.empty(0, np.uint8)
    # read-only whatever Arrow's buffer is: each kind of array is another compiled version of a
    # loop, loaded on its first call, and `warm_up` loads the read-only one
    values.flags.writeable = False
    return values, offsets


def warm_up() -> None:
    """Load every compiled loop now (compiling it on the first use in an installation), in the
    versions the callers run: numba compiles and loads one per kind of argument (read-only or
    writable arrays included), so the arrays here are of the kinds theirs are."""
    table = PieceTable()
    values = np.frombuffer("a b a \u00e9".encode(), np.uint8)  # read-only, as `text_buffers` gives
    offsets = np.array([0, len(values)], np.int64)
    ascii_table = np.frombuffer(bytes(range(128)), np.uint8)  # read-only, as `_cut_tables` gives
    cut, _ = table.cut(values, offsets, ascii_table, np.zeros(0x110000, np.bool_), True, 0x3A3)
    table.index(values, offsets)  # read-only bytes: a word hasher's seeding
    pieces, per_text, first = table.index(cut, offsets)  # the cut bytes of a batch
    table.letters_and_hashes(first)
    table.set_words(np.ones(len(table), np.int64), np.arange(len(table), dtype=np.uint64))
    table.word_hashes(pieces)
    table.texts_with_key(pieces, per_text, 2, np.uint64(3), key_set(np.zeros(1, np.uint64)))
    _rehash(table._slots, table._hash, len(table))
