"""Exception handling: set/get/default/call_exception_handler, failing callbacks keep the loop up.

Invariant: every error a callback raises reaches the loop's exception handler with asyncio's
context keys, the default handler logs on the 'asyncio' logger, and the loop keeps running.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sys
import traceback
from typing import Any

import pytest
from _support import PY312, run_bounded

var: contextvars.ContextVar[str] = contextvars.ContextVar("evar", default="unset")


def _boom(*args: Any) -> None:
    raise ValueError("boom")


def test_exception_handler_set_get(loop: asyncio.AbstractEventLoop) -> None:
    assert loop.get_exception_handler() is None

    def handler(lp: asyncio.AbstractEventLoop, ctx: dict[str, Any]) -> None:
        pass

    loop.set_exception_handler(handler)
    assert loop.get_exception_handler() is handler
    loop.set_exception_handler(None)
    assert loop.get_exception_handler() is None
    with pytest.raises(TypeError, match="callable"):
        loop.set_exception_handler("not callable")  # type: ignore[arg-type]
    assert loop.get_exception_handler() is None


@pytest.mark.parametrize("how", ["call_soon", "call_later", "call_at", "call_soon_threadsafe"])
def test_failing_callback_is_reported_and_loop_keeps_running(
        loop: asyncio.AbstractEventLoop, how: str) -> None:
    reported: list[tuple[Any, dict[str, Any]]] = []
    loop.set_exception_handler(lambda lp, ctx: reported.append((lp, ctx)))
    after: list[str] = []
    if how == "call_soon":
        h = loop.call_soon(_boom, 1)
    elif how == "call_soon_threadsafe":
        h = loop.call_soon_threadsafe(_boom, 1)
    elif how == "call_later":
        h = loop.call_later(0.001, _boom, 1)
    else:
        h = loop.call_at(loop.time() + 0.001, _boom, 1)
    loop.call_later(0.003, after.append, "still running")
    loop.call_later(0.005, loop.stop)
    run_bounded(loop)
    assert after == ["still running"]
    assert len(reported) == 1
    lp, ctx = reported[0]
    assert lp is loop
    assert ctx["message"].startswith("Exception in callback _boom(")  # 3.13 hides args
    assert isinstance(ctx["exception"], ValueError)
    assert ctx["handle"] is h


def test_default_handler_logs_on_asyncio_logger(loop: asyncio.AbstractEventLoop,
                                                caplog: pytest.LogCaptureFixture) -> None:
    loop.call_soon(_boom)
    loop.call_soon(loop.stop)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        run_bounded(loop)
    records = [r for r in caplog.records if r.name == "asyncio"]
    assert len(records) == 1
    rec = records[0]
    assert rec.levelno == logging.ERROR
    assert rec.getMessage().startswith("Exception in callback _boom()")
    assert "handle: <Handle _boom() at " in rec.getMessage()
    assert rec.exc_info is not None and isinstance(rec.exc_info[1], ValueError)


def test_call_exception_handler_passes_context_through(loop: asyncio.AbstractEventLoop) -> None:
    got: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda lp, ctx: got.append(ctx))
    ctx = {"message": "custom", "extra": 1}
    loop.call_exception_handler(ctx)
    assert got == [ctx]


def test_default_exception_handler_format(loop: asyncio.AbstractEventLoop,
                                          caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.default_exception_handler({"message": "the message", "zeta": "z", "alpha": 1})
        loop.default_exception_handler({})
    msgs = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert msgs[0] == "the message\nalpha: 1\nzeta: 'z'"
    assert msgs[1] == "Unhandled exception in event loop"
    assert all(not r.exc_info for r in caplog.records)


def test_failing_custom_handler_falls_back_to_default(loop: asyncio.AbstractEventLoop,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    def bad_handler(lp: asyncio.AbstractEventLoop, ctx: dict[str, Any]) -> None:
        raise RuntimeError("handler failed")

    loop.set_exception_handler(bad_handler)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.call_exception_handler({"message": "original"})
    recs = [r for r in caplog.records if r.name == "asyncio"]
    assert len(recs) == 1
    assert recs[0].getMessage().startswith("Unhandled error in exception handler")
    assert "original" in recs[0].getMessage()
    assert recs[0].exc_info is not None and isinstance(recs[0].exc_info[1], RuntimeError)


def test_failing_default_handler_is_contained(loop: asyncio.AbstractEventLoop,
                                              caplog: pytest.LogCaptureFixture) -> None:
    def broken(context: dict[str, Any]) -> None:
        raise RuntimeError("default handler broke")

    loop.default_exception_handler = broken  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.call_exception_handler({"message": "x"})
    msgs = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert msgs == ["Exception in default exception handler"]


def test_base_exceptions_from_handler_propagate(loop: asyncio.AbstractEventLoop) -> None:
    def handler(lp: asyncio.AbstractEventLoop, ctx: dict[str, Any]) -> None:
        raise KeyboardInterrupt

    loop.set_exception_handler(handler)
    with pytest.raises(KeyboardInterrupt):
        loop.call_exception_handler({"message": "x"})


@pytest.mark.skipif(not PY312, reason="3.12+ runs the handler in the failing handle's context")
def test_handler_runs_in_the_context_of_the_failing_callback(
        loop: asyncio.AbstractEventLoop) -> None:
    seen: list[str] = []
    loop.set_exception_handler(lambda lp, ctx: seen.append(var.get()))
    ctx = contextvars.copy_context()
    ctx.run(var.set, "request-42")
    loop.call_soon(_boom, context=ctx)
    loop.call_soon(loop.stop)
    run_bounded(loop)
    assert seen == ["request-42"]


def test_failing_task_reported_by_gather_not_by_handler(loop: asyncio.AbstractEventLoop,
                                                        run: Any) -> None:
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda lp, ctx: reported.append(ctx))

    async def fails() -> None:
        raise KeyError("k")

    async def main() -> Any:
        return await asyncio.gather(fails(), asyncio.sleep(0, "ok"), return_exceptions=True)

    res = run(main())
    assert isinstance(res[0], KeyError) and res[1] == "ok"
    assert reported == []


def test_exception_in_callback_does_not_stop_other_callbacks_same_iteration(
        loop: asyncio.AbstractEventLoop) -> None:
    loop.set_exception_handler(lambda lp, ctx: None)
    order: list[int] = []
    for i in range(5):
        loop.call_soon(_boom)
        loop.call_soon(order.append, i)
    loop.call_soon(loop.stop)
    run_bounded(loop)
    assert order == [0, 1, 2, 3, 4]


def test_callback_base_exception_leaves_the_loop(loop: asyncio.AbstractEventLoop) -> None:
    ran: list[str] = []

    def interrupt() -> None:
        raise KeyboardInterrupt

    loop.call_soon(interrupt)
    loop.call_soon(ran.append, "next")
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()
    # The rest of the batch is still queued, first in line, and runs on the next run.
    loop.call_soon(loop.stop)
    run_bounded(loop)
    assert ran == ["next"]


def test_context_already_entered_is_reported_and_the_loop_goes_on(
        loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture) -> None:
    # Running the loop inside ctx.run makes a handle bound to ctx fail to enter it: asyncio
    # reports that RuntimeError and runs what follows. 3.11 calls the handler directly; 3.12+
    # calls it in the handle's context, which fails the same way, so the default handler logs
    # both errors instead.
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda lp, c: reported.append(c))
    ran: list[str] = []
    ctx = contextvars.copy_context()
    loop.call_soon(ran.append, "never", context=ctx)
    loop.call_soon(ran.append, "after")
    loop.call_soon(loop.stop)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        ctx.run(run_bounded, loop)
    assert ran == ["after"]
    if PY312:
        assert reported == []
        recs = [r for r in caplog.records if r.name == "asyncio"]
        assert len(recs) == 1
        assert recs[0].getMessage().startswith("Unhandled error in exception handler")
        exc_info = recs[0].exc_info
        assert exc_info is not None and isinstance(exc_info[1], RuntimeError)
        assert "already entered" in str(exc_info[1])
        assert "Exception in callback" in recs[0].getMessage()  # the original report
    else:
        assert len(reported) == 1
        context = reported[0]
        assert isinstance(context["exception"], RuntimeError)
        assert "already entered" in str(context["exception"])
        assert context["message"].startswith("Exception in callback")


def test_callback_exception_reaches_the_handler_as_raised(
        loop: asyncio.AbstractEventLoop) -> None:
    # The handler sees the callback's own exception object: its traceback still ends in the
    # callback, its __context__ is the exception the callback was handling, and it is the
    # exception being handled while the handler runs (asyncio calls it from an except block).
    # The loop runs inside an except block too: that outer exception must not be chained in.
    seen: list[tuple[Any, Any, Any]] = []

    def handler(lp: asyncio.AbstractEventLoop, ctx: dict[str, Any]) -> None:
        seen.append((ctx["exception"], sys.exc_info()[1], traceback.extract_tb(
            ctx["exception"].__traceback__)[-1].name))

    def fails_while_handling() -> None:
        try:
            raise KeyError("inner")
        except KeyError:
            raise ValueError("outer")  # noqa: B904 - the implicit __context__ is the point

    loop.set_exception_handler(handler)
    loop.call_soon(fails_while_handling)
    loop.call_soon(loop.stop)
    try:
        raise OSError("around the loop")
    except OSError:
        run_bounded(loop)
    assert len(seen) == 1
    exc, handled, last_frame = seen[0]
    assert type(exc) is ValueError and str(exc) == "outer"
    assert type(exc.__context__) is KeyError
    assert handled is exc
    assert last_frame == "fails_while_handling"


def test_keyboardinterrupt_from_a_callback_propagates_unchanged(
        loop: asyncio.AbstractEventLoop) -> None:
    raised = KeyboardInterrupt("stop")

    def interrupt() -> None:
        raise raised

    loop.call_soon(interrupt)
    with pytest.raises(KeyboardInterrupt) as info:
        run_bounded(loop)
    assert info.value is raised
    assert info.value.__context__ is None
    assert "interrupt" in [f.name for f in traceback.extract_tb(info.value.__traceback__)]
