"""Whether a claim's holder lives: by its process on this machine, by its beat counter
elsewhere; never by comparing two machines' clocks."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from runner.execute.claims import Claims, process_alive, this_run
from runner.store import Store


def test_a_pid_reused_by_another_process_is_not_the_holder() -> None:
    me = this_run("me")
    assert process_alive(me)
    assert not process_alive(replace(me, process_start=str(int(me.process_start) + 1)))
    assert not process_alive(replace(me, pid=2**22 + 12345))  # no such process


def test_a_run_elsewhere_keeps_its_claims_while_its_counter_moves(tmp_path: Path) -> None:
    """A holder on another machine, whose wall clock is hours off: its claim stands
    while its counter moves, and is taken over only once this run has seen the counter
    stand still for the takeover period on its own monotonic clock."""
    with Store(tmp_path) as store:
        elsewhere = replace(
            this_run("elsewhere"), boot_id="another-machine", started=time.time() - 7200
        )
        assert store.claim("k", elsewhere, lambda holder: False) is None
        waiting = Claims(store, expiry=0.3)
        moved_until = time.monotonic() + 0.6
        while time.monotonic() < moved_until:  # the holder beats: never taken over
            held = store.claim("k", waiting.me, waiting.is_dead)
            assert held is not None
            assert held.owner == "elsewhere"
            store.keep_claims("elsewhere")
            time.sleep(0.05)
        stood_still = time.monotonic()
        while store.claim("k", waiting.me, waiting.is_dead) is not None:
            time.sleep(0.05)
        assert time.monotonic() - stood_still >= 0.3  # seen standing still that long
        assert list(store.claims_held()) == [("k", waiting.owner)]


def test_a_run_on_this_machine_is_alive_while_its_process_is(tmp_path: Path) -> None:
    """However long since its last beat (the counter never moved), a live process
    keeps its claims; a dead one loses them at once."""
    with Store(tmp_path) as store:
        alive = this_run("alive")  # this very process
        assert store.claim("k", alive, lambda holder: False) is None
        waiting = Claims(store, expiry=0.0)
        held = store.claim("k", waiting.me, waiting.is_dead)
        assert held is not None
        assert held.owner == "alive"
        store.release_claims("alive")
        dead = replace(this_run("dead"), pid=2**22 + 12345)
        assert store.claim("k", dead, lambda holder: False) is None
        assert store.claim("k", waiting.me, waiting.is_dead) is None  # taken over at once
