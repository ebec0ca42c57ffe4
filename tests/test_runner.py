"""The async runner's calls when a request cannot be written, and calls made before the loop.

A call's requests go out from the callback that saw the previous response; a request refused
before sending (an option that does not encode, say) must fail that call at its await and
leave every other call and connection alone. The servers are tests/test_http1.py's scripted
ones on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import gc
import json

import pytest

from service.couch import BadRequest, Couch
from service.couch.protocol import Request
from service.couch.runner import AsyncRunner
from service.couch.transport import Endpoint
from tests.test_http1 import answers_ok, reply, scripted
from tests.waiting import until

UNENCODABLE = "\udc80"  # a lone surrogate: no URL can carry it


def json_reply(payload: object) -> bytes:
    body = json.dumps(payload).encode()
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
    return head.encode() + b"\r\n\r\n" + body


@pytest.mark.gen_test(timeout=10)
async def test_a_first_request_that_cannot_be_written_fails_at_the_await_and_the_callback():
    server = await scripted(answers_ok())
    couch = Couch(f"http://127.0.0.1:{server.port}", timeout=5)
    try:
        with pytest.raises(BadRequest):
            await couch["db"].get("a", rev=UNENCODABLE)
        told: asyncio.Future = asyncio.get_running_loop().create_future()
        couch["db"].get("a", rev=UNENCODABLE, callback=lambda data, status: told.set_result(status))
        status = await asyncio.wait_for(told, 2)
        assert not status.ok and status.error is BadRequest
        assert server.heads == []
    finally:
        await couch.close()
        await server.stop()


@pytest.mark.gen_test(timeout=10)
async def test_a_later_request_that_cannot_be_written_leaves_a_call_waiting_its_turn_unharmed():
    server = await scripted(answers_ok(after=0.05))
    endpoint = Endpoint(f"http://127.0.0.1:{server.port}", timeout=5, max_connections=1)
    runner = AsyncRunner(endpoint)

    def one(request: Request):
        return (yield request).status

    def two():
        yield Request("GET", "/first")
        yield Request("GET", "/second", {"rev": UNENCODABLE})

    try:
        assert await runner.run(one(Request("GET", "/warm"))) == 200  # one idle connection
        broken = runner.run(two())  # sent at once over the idle connection
        waiting = runner.run(one(Request("POST", "/db", body=b"{}")))  # waits for its turn
        assert await asyncio.wait_for(waiting, 2) == 200
        with pytest.raises(BadRequest):
            await asyncio.wait_for(broken, 2)
        assert server.connections == 1
    finally:
        await runner.close()
        await server.stop()


@pytest.mark.gen_test(timeout=10)
async def test_a_header_http_refuses_fails_its_call_on_a_kept_alive_connection_too():
    server = await scripted(answers_ok())
    runner = AsyncRunner(Endpoint(f"http://127.0.0.1:{server.port}", timeout=5))

    def one(request: Request):
        return (yield request).status

    try:
        for _ in range(2):  # a new connection, then the kept-alive one
            with pytest.raises(BadRequest):
                await runner.run(one(Request("GET", "/x", {}, {"X-Nul": "a\0b"})))
            assert await runner.run(one(Request("GET", "/ok"))) == 200
        assert server.connections == 1 and len(server.heads) == 2
    finally:
        await runner.close()
        await server.stop()


@pytest.mark.gen_test(timeout=10)
async def test_a_rev_from_the_server_that_cannot_be_sent_back_fails_the_call():
    async def answer(head: bytes, reader: asyncio.StreamReader, writer) -> bool:
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n") if b"content-length" in line),
            0,
        )
        await reader.readexactly(length)
        if b"/_all_docs" in head.split(b"\r\n")[0]:
            row = {"key": "r1", "id": "r1", "value": {"rev": "\ud800"}}
            return await reply(writer, json_reply({"rows": [row]}))
        return await reply(writer, json_reply({"ok": True}))

    server = await scripted(answer)
    couch = Couch(f"http://127.0.0.1:{server.port}", timeout=5)
    try:
        with pytest.raises(BadRequest):
            await asyncio.wait_for(couch.replicate("a", "b", _id="r1", cancel=True), 2)
    finally:
        await couch.close()
        await server.stop()


def test_a_call_made_before_the_loop_runs_is_run_by_run_until_complete():
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        server = loop.run_until_complete(scripted(answers_ok()))
        couch = Couch(f"http://127.0.0.1:{server.port}", timeout=5)
        call = couch.info()
        assert loop.run_until_complete(asyncio.wait_for(call, 2)) == {"ok": True}
        loop.run_until_complete(couch.close())
        loop.run_until_complete(server.stop())
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def test_a_failed_callback_call_made_before_the_loop_runs_is_heard_once():
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    unheard: list[str] = []
    loop.set_exception_handler(lambda _, context: unheard.append(context["message"]))
    try:
        couch = Couch("http://127.0.0.1:9", timeout=5)  # nothing is sent: refused before
        told: list = []
        couch["db"].get("a", rev=UNENCODABLE, callback=lambda data, status: told.append(status))
        loop.run_until_complete(until(lambda: told, what="the callback"))
        assert [status.error for status in told] == [BadRequest]
        gc.collect()
        assert unheard == []  # no "Task exception was never retrieved"
        loop.run_until_complete(couch.close())
    finally:
        asyncio.set_event_loop(None)
        loop.close()
