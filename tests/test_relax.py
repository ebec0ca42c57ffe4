"""``@relax`` on its own: what a yield may hand it, and what comes back at the yield.

tests/test_styles.py runs the client's calls through ``@relax`` handlers on a served app;
these cover the rest of what gen.coroutine accepted and handlers may rely on.
"""

from __future__ import annotations

import asyncio

import pytest
from tornado import gen

from service.couch import relax
from tests.waiting import until


async def answer(value, delay=0.01):
    await asyncio.sleep(delay)
    if isinstance(value, Exception):
        raise value
    return value


class Handler:
    def __init__(self):
        self.seen = []

    @relax
    def sequence(self):
        first = yield answer(1)
        second = yield asyncio.ensure_future(answer(2))
        nothing = yield None  # one turn of the loop, as gen.moment
        moment = yield gen.moment
        return [first, second, nothing, moment]

    @relax
    def parallel(self):
        started = asyncio.get_running_loop().time()
        both = yield [answer("a", 0.2), answer("b", 0.2)]
        named = yield {"x": answer(1, 0.2), "y": answer(2, 0.2)}
        return both, named, asyncio.get_running_loop().time() - started

    @relax
    def failing(self):
        try:
            yield answer(KeyError("missing"))
        except KeyError as exc:
            self.seen.append(exc.args[0])
        yield answer(ValueError("not caught"))

    @relax
    def cancelled(self):
        self.seen.append("waiting")
        try:
            yield answer(None, 10)
        finally:
            self.seen.append("cleaned up")

    @relax
    def plain(self):
        return "no yield"

    @relax
    async def native(self):
        return await answer("as is")


@pytest.mark.gen_test
async def test_yields_evaluate_to_results_in_order():
    assert await Handler().sequence() == [1, 2, None, None]


@pytest.mark.gen_test
async def test_lists_and_dicts_of_calls_run_at_once():
    both, named, seconds = await Handler().parallel()
    assert both == ["a", "b"] and named == {"x": 1, "y": 2}
    assert seconds < 0.6  # two rounds of 0.2 s, not four


@pytest.mark.gen_test
async def test_a_failed_call_raises_at_its_yield():
    handler = Handler()
    with pytest.raises(ValueError, match="not caught"):
        await handler.failing()
    assert handler.seen == ["missing"]


@pytest.mark.gen_test
async def test_cancelling_lets_the_generator_clean_up():
    handler = Handler()
    task = asyncio.ensure_future(handler.cancelled())
    await until(lambda: handler.seen == ["waiting"], what="the generator to wait")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert handler.seen == ["waiting", "cleaned up"]


def test_methods_that_are_not_generators_are_left_as_they_are():
    assert Handler.native is Handler.__dict__["native"]
    assert Handler.plain.__name__ == "plain" and Handler().plain() == "no yield"


class OldStyle:
    @relax
    def returns_the_tornado_way(self):
        value = yield answer(5)
        raise gen.Return(value * 2)

    @relax
    def waits_for_an_executor(self, executor):
        return (yield executor.submit(lambda: 21)) * 2


@pytest.mark.gen_test
async def test_what_gen_coroutine_also_took_gen_return_and_executor_futures():
    from concurrent.futures import ThreadPoolExecutor

    assert await OldStyle().returns_the_tornado_way() == 10
    with ThreadPoolExecutor(1) as executor:
        assert await OldStyle().waits_for_an_executor(executor) == 42
