"""The hub's pieces: subscriptions (catch-up, de-duplication, slow consumers), filters, frames."""

from __future__ import annotations

import asyncio

import pytest

from service.couch import Couch
from service.handlers.frames import frames, shared_frame, text_frame
from service.hub import (
    SLOW_CONSUMER,
    CaughtUp,
    Closed,
    Hub,
    HubStats,
    Subscription,
    Upstream,
    encode,
    local_filter,
)
from service.sources import CouchSource
from tests.scripted import ScriptedSource


def row(doc_id: str, rev: str, seq: int) -> dict:
    return {"seq": seq, "id": doc_id, "changes": [{"rev": rev}]}


def ids(items) -> list:
    return [item.last_seq if isinstance(item, CaughtUp) else item for item in items]


@pytest.mark.gen_test
async def test_late_join_sends_backlog_marker_then_held_rows_once():
    subscription = Subscription("websocket", 100, HubStats())
    live_a, live_b, live_c = row("a", "2-x", 11), row("b", "1-y", 12), row("a", "1-x", 9)
    subscription.offer([(live_c, b"stale a")])  # delivered late by the upstream: older than backlog
    subscription.offer([(live_a, b"a2"), (live_b, b"b1")])  # a2 is also in the backlog below
    assert not subscription.queue  # held while catching up
    await subscription.backlog([(row("z", "1-z", 5), b"z1"), (row("a", "2-x", 11), b"a2")])
    subscription.go_live(11)
    assert ids(subscription.take()) == [b"z1", b"a2", 11, b"b1"]
    subscription.offer([(row("a", "3-x", 13), b"a3")])  # newer than the backlog: passes
    assert subscription.take() == [b"a3"]


@pytest.mark.gen_test
async def test_held_rows_are_left_out_only_when_the_backlog_sent_them():
    """Only the backlog's own row of a document (and older ones held before it) is left out,
    judged with everything but the seq; other revisions pass, whatever their generation."""
    subscription = Subscription("websocket", 100, HubStats())
    subscription.offer([(row("b", "2-b", 20), b"b2 held")])  # newer than the backlog's b
    subscription.offer([(row("a", "3-a", 21), b"a3 echo")])  # the backlog's a, seq aside
    await subscription.backlog([(row("a", "3-a", 7), b"a3"), (row("b", "1-b", 8), b"b1")])
    subscription.go_live(8)
    assert ids(subscription.take()) == [b"a3", b"b1", 8, b"b2 held"]


@pytest.mark.gen_test
async def test_once_live_no_row_is_judged_against_the_backlog():
    """A replicated conflict that wins at the same generation, a deleted winning branch that
    brings back a lower one, even the backlog's very revision again: all are changes."""
    subscription = Subscription("websocket", 100, HubStats())
    await subscription.backlog([(row("x", "3-d0df", 5), b"x3")])
    subscription.go_live(5)
    assert ids(subscription.take()) == [b"x3", 5]
    subscription.offer([(row("x", "3-ffff", 6), b"x3 conflict wins")])
    subscription.offer([(row("x", "2-0000", 7), b"x2 after a deletion")])
    subscription.offer([(row("x", "3-d0df", 8), b"x3 again")])
    assert subscription.take() == [b"x3 conflict wins", b"x2 after a deletion", b"x3 again"]


@pytest.mark.gen_test
async def test_a_shared_feed_behind_the_backlog_repeats_nothing():
    """The backlog read b and c before the shared feed brought them: they come again after
    the switch to live rows, and are left out, once; b's next change passes."""
    subscription = Subscription("websocket", 100, HubStats())
    backlog = [
        (row(doc_id, f"1-{doc_id}", n), f"{doc_id}1".encode()) for n, doc_id in enumerate("abc")
    ]
    await subscription.backlog(backlog)
    subscription.go_live(2)
    assert ids(subscription.take()) == [b"a1", b"b1", b"c1", 2]
    subscription.offer([(row("b", "1-b", 12), b"b1 again"), (row("c", "1-c", 13), b"c1 again")])
    subscription.offer([(row("b", "2-b", 14), b"b2")])
    assert subscription.take() == [b"b2"]


@pytest.mark.gen_test
async def test_a_subscriber_that_falls_behind_is_closed_as_slow():
    stats = HubStats()
    subscription = Subscription("websocket", 3, stats)
    told: list[Closed] = []
    subscription.on_close = told.append
    subscription.go_live(0)
    subscription.offer([(row(f"d{n}", "1-a", n), b"frame") for n in range(4)])
    assert subscription.closed == SLOW_CONSUMER
    assert told == [SLOW_CONSUMER]  # a subscriber stuck writing is told at once
    assert not subscription.queue
    assert stats.slow_consumer_closes == 1
    with pytest.raises(Closed) as raised:
        await subscription.next()
    assert (raised.value.code, raised.value.reason) == (4008, "slow consumer")


@pytest.mark.gen_test
async def test_the_limit_is_on_what_a_subscriber_failed_to_take_not_on_a_batch():
    """An idle subscriber is handed a batch of any size; rows count towards the limit only
    while it is busy with what it took."""
    subscription = Subscription("websocket", 3, HubStats())
    taken: list[list] = []
    subscription.on_ready = lambda: taken.append(subscription.take())  # and stays busy
    subscription.idle()
    subscription.go_live(0)
    subscription.idle()  # its socket took the caught-up marker
    subscription.offer([(row(f"d{n}", "1-a", n), b"frame") for n in range(50)])
    assert subscription.closed is None
    assert [len(items) for items in taken] == [1, 50]
    subscription.offer([(row(f"e{n}", "1-a", n), b"late") for n in range(3)])
    assert subscription.closed is None and len(subscription.queue) == 3  # waiting for it
    subscription.idle()  # its socket drained: it takes them
    assert taken[-1] == [b"late"] * 3
    subscription.offer([(row(f"f{n}", "1-a", n), b"too many") for n in range(4)])
    assert subscription.closed == SLOW_CONSUMER


@pytest.mark.gen_test
async def test_a_subscriber_waiting_in_next_takes_a_batch_of_any_size():
    subscription = Subscription("continuous", 3, HubStats())
    subscription.go_live(0)
    assert ids(await subscription.next()) == [0]
    waiting = asyncio.ensure_future(subscription.next())
    await asyncio.sleep(0)
    subscription.offer([(row(f"d{n}", "1-a", n), b"frame") for n in range(50)])
    subscription.offer([(row(f"e{n}", "1-a", n), b"frame") for n in range(50)])  # same turn
    assert len(await waiting) == 100
    subscription.offer([(row(f"f{n}", "1-a", n), b"frame") for n in range(4)])  # busy writing
    assert subscription.closed == SLOW_CONSUMER


@pytest.mark.gen_test
async def test_each_close_and_each_raise_is_an_exception_of_its_own():
    """A kind of close (SLOW_CONSUMER) is never raised itself: a raised exception keeps the
    frames it went through, and raised again it would keep those of every raise."""
    subscription = Subscription("continuous", 3, HubStats())
    subscription.close(SLOW_CONSUMER)
    assert subscription.closed == SLOW_CONSUMER and subscription.closed is not SLOW_CONSUMER
    raised = []
    for _ in range(2):
        with pytest.raises(Closed) as caught:
            await subscription.next()
        raised.append(caught.value)
    assert raised[0] is not raised[1] and raised[0] == raised[1] == SLOW_CONSUMER
    assert SLOW_CONSUMER.__traceback__ is None and subscription.closed.__traceback__ is None


@pytest.mark.gen_test
async def test_the_backlog_waits_for_room_instead_of_overflowing():
    subscription = Subscription("websocket", 2, HubStats())
    await subscription.backlog([(row(f"d{n}", "1-a", n), b"f") for n in range(2)])
    blocked = asyncio.ensure_future(subscription.backlog([(row("d2", "1-a", 2), b"f")]))
    await asyncio.sleep(0.01)
    assert not blocked.done()
    assert len(subscription.take()) == 2
    await asyncio.wait_for(blocked, 1)
    assert subscription.closed is None


def test_builtin_filters_the_hub_applies_itself():
    options, accepts = local_filter({"filter": "_doc_ids", "doc_ids": ["a"], "include_docs": 1})
    assert options == {"include_docs": 1}
    assert accepts(row("a", "1-a", 1)) and not accepts(row("b", "1-a", 2))
    options, accepts = local_filter({"filter": "_design"})
    assert options == {}
    assert accepts(row("_design/x", "1-a", 1)) and not accepts(row("x", "1-a", 2))
    options, accepts = local_filter({"filter": "app/odd"})
    assert (options, accepts) == ({"filter": "app/odd"}, None)


def test_frames_are_rows_or_arrays_with_markers_on_their_own():
    rows = [encode(row("a", "1-a", 1)), encode(row("b", "1-b", 2))]
    items = [rows[0], CaughtUp(1), rows[1]]
    assert frames(items, batched=False) == [rows[0], b'{"last_seq":1}', rows[1]]
    assert frames(items, batched=True) == [
        b"[" + rows[0] + b"]",
        b'{"last_seq":1}',
        b"[" + rows[1] + b"]",
    ]


@pytest.mark.gen_test
async def test_leaving_always_unsubscribes_even_when_the_subscriber_raises(server_url, db_name):
    async with Couch(server_url) as couch:
        hub = Hub(CouchSource(couch), linger=0)
        with pytest.raises(RuntimeError):
            async with hub.subscribe(db_name, since="now"):
                assert hub.subscribers == 1
                raise RuntimeError("subscriber failed")
        assert hub.subscribers == 0
        assert all(not upstream.subscribers for upstream in hub.upstreams.values())
        await asyncio.sleep(0.05)  # linger 0: the idle upstream feed is stopped
        assert not hub.upstreams
        hub.close()
        await hub.wait_closed()


def test_text_frames_carry_their_length_as_rfc_6455_says():
    assert text_frame(b"hi") == b"\x81\x02hi"
    assert text_frame(b"x" * 200)[:4] == b"\x81\x7e\x00\xc8"
    assert text_frame(b"x" * 70_000)[:10] == b"\x81\x7f" + (70_000).to_bytes(8, "big")


def test_a_rows_frame_is_built_once_for_all_subscribers():
    encoded = encode(row("a", "1-a", 1))
    assert shared_frame(encoded) is shared_frame(encoded)
    assert shared_frame(encoded) == text_frame(encoded)
    assert shared_frame(b"plain") == text_frame(b"plain")


@pytest.mark.gen_test
async def test_a_pushed_subscriber_is_told_once_per_batch_not_per_row():
    subscription = Subscription("websocket", 100, HubStats())
    taken: list[list] = []

    def write_at_once() -> None:
        taken.append(subscription.take())
        subscription.idle()  # its socket took it all

    subscription.on_ready = write_at_once
    subscription.idle()
    subscription.go_live(0)
    subscription.offer([(row(f"d{n}", "1-a", n), f"f{n}".encode()) for n in range(3)])
    assert ids(taken[0]) == [0]  # the caught-up marker, told on its own
    assert taken[1:] == [[b"f0", b"f1", b"f2"]]


@pytest.mark.gen_test
async def test_rows_read_in_one_turn_reach_subscribers_as_one_batch():
    upstream = Upstream(ScriptedSource(), "db", {}, heartbeat=10)
    offered: list[list] = []

    class Recording(Subscription):
        __slots__ = ()

        def offer(self, batch):
            offered.append(batch)

    upstream.subscribers.add(Recording("websocket", 100, HubStats()))
    for n in range(3):
        upstream._on_change(n, [row(f"d{n}", "1-a", n)])
    assert offered == []
    await asyncio.sleep(0)
    assert [[r["id"] for r, _ in batch] for batch in offered] == [["d0", "d1", "d2"]]
    assert upstream.last_seq == 2
