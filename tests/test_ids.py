"""Id factories: `RandomIds` sort by creation time and stay unguessable; `SequentialIds` count."""

from __future__ import annotations

import re
import time

from aifactory import RandomIds, SequentialIds

BASE32 = "0123456789abcdefghijklmnopqrstuv"  # RFC 4648 extended hex, lower case


def _number(text: str) -> int:
    """The 128 bits the 26 characters carry (the last two of 130 bits are padding)."""
    value = 0
    for char in text:
        value = value * 32 + BASE32.index(char)
    return value >> 2


def test_random_ids_are_ulids_a_time_prefix_and_eighty_random_bits() -> None:
    before = time.time_ns() // 1_000_000
    ident = RandomIds().new("exec")
    after = time.time_ns() // 1_000_000
    match = re.fullmatch(r"exec_([0-9a-v]{26})", ident)
    assert match is not None, ident
    assert before <= _number(match.group(1)) >> 80 <= after


def test_random_ids_sort_in_creation_order_across_milliseconds() -> None:
    ids = RandomIds()
    made = []
    for _ in range(5):
        made.append(ids.new("exec"))
        time.sleep(0.002)
    assert sorted(made) == made


def test_random_ids_do_not_repeat_within_a_millisecond() -> None:
    ids = RandomIds()
    made = [ids.new("hs") for _ in range(10_000)]
    assert len(set(made)) == len(made)
    # The random part (from the 11th character on) differs even within one millisecond.
    assert len({m.split("_")[1][10:] for m in made}) == len(made)


def test_sequential_ids_count_per_prefix() -> None:
    ids = SequentialIds()
    assert [ids.new("req"), ids.new("req"), ids.new("exec")] == [
        "req_000001",
        "req_000002",
        "exec_000001",
    ]


def test_random_ids_encode_as_base32_extended_hex_would() -> None:
    import base64

    ident = RandomIds().new("x").split("_")[1]
    raw = (_number(ident)).to_bytes(16, "big")
    assert base64.b32hexencode(raw)[:26].decode().lower() == ident
