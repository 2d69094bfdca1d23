"""Id factories: `RandomIds` sort by creation time and stay unguessable; `SequentialIds` count."""

from __future__ import annotations

import re
import time

from aifactory import RandomIds, SequentialIds


def test_random_ids_have_a_time_prefix_and_eighty_random_bits() -> None:
    before = time.time_ns() // 1_000_000
    ident = RandomIds().new("exec")
    after = time.time_ns() // 1_000_000
    match = re.fullmatch(r"exec_([0-9a-f]{12})([0-9a-f]{20})", ident)
    assert match is not None, ident
    assert before <= int(match.group(1), 16) <= after


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
    # The random part differs even between ids made in the same millisecond.
    assert len({m[15:] for m in made}) == len(made)


def test_sequential_ids_count_per_prefix() -> None:
    ids = SequentialIds()
    assert [ids.new("req"), ids.new("req"), ids.new("exec")] == [
        "req_000001",
        "req_000002",
        "exec_000001",
    ]
