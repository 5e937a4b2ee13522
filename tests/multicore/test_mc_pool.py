"""Pool behaviour: ordering, errors, lost workers, pickling failures, cancellation, lifecycle.

Tests taking `run` run with the parent on asyncio's loop and on tideloop's (parity); the rest
(`run_tl`) only on tideloop's, to keep the suite fast. Workers always run tideloop.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import pickle
import signal
import time
from pathlib import Path
from typing import Any

import mc_funcs as f
import pytest

from tideloop.multicore import Pool, RemoteError, RemoteTraceback, WorkerLost


async def wait_for_files(paths: list[Path], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not all(p.exists() and p.read_text() for p in paths):
            await asyncio.sleep(0.01)


def test_map_starmap_apply_order(run: Any) -> None:
    async def main() -> None:
        async with Pool(2, concurrency=4) as pool:
            assert await pool.map(f.sleepy_square, range(50)) == [x * x for x in range(50)]
            assert await pool.map(f.plain_square, range(10)) == [x * x for x in range(10)]
            assert await pool.starmap(f.add, [(1, 2), (3, 4)]) == [3, 7]
            assert await pool.apply(f.add, 1, 2, scale=10) == 30
            assert await pool.map(f.square, []) == []

    run(main())


def test_imap_ordered_and_unordered(run: Any) -> None:
    async def main() -> None:
        async with Pool(2, concurrency=8) as pool:
            got = [r async for r in pool.imap(f.sleepy_square, range(40))]
            assert got == [x * x for x in range(40)]
            unordered = [r async for r in pool.imap_unordered(f.sleepy_square, range(40))]
            assert sorted(unordered) == [x * x for x in range(40)]
            # Items 0..9 of each ten sleep longest: completion order is not input order.
            assert unordered != got

    run(main())


def test_work_runs_in_worker_processes(run_tl: Any) -> None:
    async def main() -> None:
        async with Pool(2, concurrency=1) as pool:
            assert "running processes=2 concurrency=1" in repr(pool)
            pids = set(await pool.map(f.getpid, range(20)))
            assert os.getpid() not in pids
            assert 1 <= len(pids) <= 2

    run_tl(main())


def test_exception_keeps_type_and_remote_traceback(run: Any) -> None:
    async def main() -> None:
        async with Pool(2) as pool:
            with pytest.raises(f.CustomError, match="item 3 failed") as info:
                await pool.map(f.fail, range(6))
            cause = info.value.__cause__
            assert isinstance(cause, RemoteTraceback)
            assert "in fail" in cause.tb and "mc_funcs.py" in cause.tb
            # An exception that cannot be rebuilt in the parent still arrives, with its type name.
            with pytest.raises(RemoteError, match="PickyError: picky 1 2") as info2:
                await pool.apply(f.fail_picky, 1)
            assert isinstance(info2.value.__cause__, RemoteTraceback)
            # The pool is still usable.
            assert await pool.map(f.square, range(5)) == [0, 1, 4, 9, 16]
            with pytest.raises(f.CustomError):
                async for _ in pool.imap(f.fail, range(6)):
                    pass

    run(main())


def test_sigkilled_worker_fails_its_items_and_is_replaced(run: Any, tmp_path: Path) -> None:
    async def main() -> None:
        async with Pool(2) as pool:
            marker = tmp_path / "pid"
            task = asyncio.ensure_future(pool.apply(f.report_and_hang, str(marker)))
            await wait_for_files([marker])
            victim = int(marker.read_text())
            os.kill(victim, signal.SIGKILL)
            with pytest.raises(WorkerLost, match="SIGKILL") as info:
                await task
            assert info.value.pid == victim
            assert info.value.item == 0
            assert info.value.exitcode == -signal.SIGKILL
            assert "item 0 of apply(report_and_hang)" in str(info.value)
            # Later calls work, on a replacement process.
            pids = set(await pool.map(f.getpid, range(40)))
            assert victim not in pids
            assert len(pool._backend.workers) == 2  # type: ignore[attr-defined]

    run(main())


def test_worker_exit_in_map_names_the_item(run_tl: Any) -> None:
    async def main() -> None:
        async with Pool(2) as pool:
            with pytest.raises(WorkerLost, match="exited with code 7") as info:
                await pool.map(f.exit_now, [7])
            assert info.value.item == 0 and info.value.exitcode == 7
            with pytest.raises(WorkerLost):
                await pool.apply(f.kill_self)
            assert await pool.map(f.square, range(8)) == [x * x for x in range(8)]

    run_tl(main())


def test_unpicklable_argument_function_and_result(run_tl: Any) -> None:
    async def main() -> None:
        async with Pool(1) as pool:
            with pytest.raises(pickle.PicklingError, match="argument of item 1"):
                await pool.map(f.getpid, [1, lambda: 2, 3])
            with pytest.raises(pickle.PicklingError, match="function cannot be pickled"):
                await pool.map(lambda x: x, [1])
            with pytest.raises(pickle.PicklingError, match="result .*cannot be pickled"):
                await pool.apply(f.unpicklable_result)
            with pytest.raises(pickle.UnpicklingError, match="cannot be unpickled in the parent"):
                await pool.apply(f.bad_result)
            assert await pool.apply(f.add, 2, 3) == 5

    run_tl(main())


def test_cancelling_the_caller_cancels_items_in_workers(run: Any, tmp_path: Path) -> None:
    async def main() -> None:
        async with Pool(2, concurrency=2) as pool:
            task = asyncio.ensure_future(
                pool.starmap(f.hang_with_marker, [(str(tmp_path), i) for i in range(4)])
            )
            await wait_for_files([tmp_path / f"started-{i}" for i in range(4)])
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await wait_for_files([tmp_path / f"cancelled-{i}" for i in range(4)])
            assert await pool.map(f.square, range(4)) == [0, 1, 4, 9]

    run(main())


def test_breaking_out_of_imap_over_an_endless_iterable(run_tl: Any) -> None:
    pulled = itertools.count()

    def source() -> Any:
        for i in itertools.count():
            next(pulled)
            yield i

    async def main() -> None:
        async with Pool(2, concurrency=2) as pool:
            it = pool.imap(f.square, source())
            got = []
            async for r in it:
                got.append(r)
                if len(got) == 100:
                    break
            await it.aclose()  # type: ignore[attr-defined]
            assert got == [x * x for x in range(100)]
            # Bounded read-ahead: the endless source was not drained.
            assert next(pulled) < 100 + 1000
            assert await pool.apply(f.square, 3) == 9
            assert [r async for r in pool.imap_unordered(f.square, range(3))] != []
            assert not pool._jobs  # finished calls are not kept

    run_tl(main())


def test_max_tasks_per_worker_recycles_processes(run_tl: Any) -> None:
    async def main() -> None:
        async with Pool(1, concurrency=1, max_tasks_per_worker=2) as pool:
            pids = await pool.map(f.getpid, range(6))
            assert len(set(pids)) == 3
            assert all(pids.count(p) == 2 for p in set(pids))

    run_tl(main())


def test_initializer_sync_async_and_failing(run_tl: Any) -> None:
    async def main() -> None:
        async with Pool(2, initializer=f.init_state, initargs=(42,)) as pool:
            assert await pool.map(f.get_state, range(4)) == [42] * 4
        async with Pool(1, initializer=f.async_init_state, initargs=("x",)) as pool:
            assert await pool.apply(f.get_state) == ("async", "x")
        with pytest.raises(f.CustomError, match="initializer failed"):
            async with Pool(2, initializer=f.bad_init):
                pass

    run_tl(main())


def test_close_join_and_calls_after_close(run_tl: Any) -> None:
    async def main() -> None:
        pool = Pool(2)
        assert await pool.map(f.square, range(5)) == [0, 1, 4, 9, 16]
        pool.close()
        with pytest.raises(RuntimeError, match="closed"):
            await pool.apply(f.square, 1)
        await pool.join()

    run_tl(main())


def test_terminate_fails_running_calls(run_tl: Any, tmp_path: Path) -> None:
    async def main() -> None:
        pool = Pool(1)
        task = asyncio.ensure_future(pool.apply(f.report_and_hang, str(tmp_path / "p")))
        await wait_for_files([tmp_path / "p"])
        pool.terminate()
        with pytest.raises(RuntimeError, match="terminated"):
            await task
        await pool.join()

    run_tl(main())


def test_large_payloads_cross_many_pipe_reads(run_tl: Any) -> None:
    async def main() -> None:
        async with Pool(2) as pool:
            blobs = [bytes([i]) * (1 << 20) for i in range(4)]
            assert await pool.map(f.echo, blobs) == blobs

    run_tl(main())


def test_apply_with_unpicklable_argument_fails_even_when_workers_are_busy(
    run_tl: Any, tmp_path: Path
) -> None:
    async def main() -> None:
        async with Pool(1, concurrency=1) as pool:
            busy = asyncio.ensure_future(pool.apply(f.report_and_hang, str(tmp_path / "p")))
            await wait_for_files([tmp_path / "p"])
            with pytest.raises(pickle.PicklingError, match="apply"):
                await asyncio.wait_for(pool.apply(f.add, lambda: 1, 2), 5)
            busy.cancel()
            with pytest.raises(asyncio.CancelledError):
                await busy

    run_tl(main())


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        Pool(0)
    with pytest.raises(ValueError):
        Pool(1, concurrency=0)
    with pytest.raises(ValueError):
        Pool(1, backend="nope")
    with pytest.raises(pickle.PicklingError, match="initializer"):
        Pool(1, initializer=lambda: None)


def test_concurrent_calls_share_the_workers(run_tl: Any) -> None:
    async def main() -> None:
        async with Pool(2, concurrency=4) as pool:
            a, b, c = await asyncio.gather(
                pool.map(f.sleepy_square, range(30)),
                pool.starmap(f.add, [(i, i) for i in range(30)]),
                pool.apply(f.add, 5, 6),
            )
            assert a == [x * x for x in range(30)]
            assert b == [2 * i for i in range(30)]
            assert c == 11

    run_tl(main())


def test_worker_lost_inside_imap_unordered(run_tl: Any) -> None:
    async def main() -> None:
        async with Pool(2) as pool:
            got = []
            with pytest.raises(WorkerLost) as info:
                async for r in pool.imap_unordered(f.exit_on_five, range(10)):
                    got.append(r)
            assert info.value.item == 5
            assert 5 not in got
            assert await pool.map(f.square, range(3)) == [0, 1, 4]

    run_tl(main())


def test_results_of_plain_functions_stream_while_later_items_block(
    run_tl: Any, tmp_path: Path
) -> None:
    # All 8 items reach the single worker in one batch; item 0's result must come back while
    # items 1..7 (plain functions, run inline) are still blocked waiting for `go`.
    async def main() -> None:
        async with Pool(1, concurrency=4) as pool:
            it = pool.imap(f.wait_for_go, [(str(tmp_path), i) for i in range(8)])
            first = await asyncio.wait_for(it.__anext__(), 10)
            assert first == 0
            (tmp_path / "go").write_text("1")
            assert [r async for r in it] == list(range(1, 8))

    run_tl(main())


def test_an_exception_from_the_input_iterable_reaches_the_caller(run_tl: Any) -> None:
    def source() -> Any:
        yield from range(3)
        raise f.CustomError("source broke")

    async def main() -> None:
        async with Pool(2) as pool:
            with pytest.raises(f.CustomError, match="source broke"):
                await pool.map(f.square, source())
            got = []
            with pytest.raises(f.CustomError, match="source broke"):
                async for r in pool.imap(f.square, source()):
                    got.append(r)
            assert got == [0, 1, 4]  # everything before the failure, in order

    run_tl(main())


def test_leaving_the_block_with_an_unfinished_imap_does_not_hang(run_tl: Any) -> None:
    async def main() -> None:
        async with Pool(1, concurrency=1) as pool:
            it = pool.imap(f.square, range(10_000))
            assert await it.__anext__() == 0
        with pytest.raises(RuntimeError, match="closed before this call finished"):
            await it.__anext__()

    run_tl(main())


def _ours(cb: Any) -> bool:
    while isinstance(cb, functools.partial):
        cb = cb.func
    return str(getattr(cb, "__module__", "")).startswith("tideloop.multicore")


def test_an_idle_pool_schedules_no_timers() -> None:
    # Results are pushed through pipes the loop watches; nothing may poll on a timer.
    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with Pool(2) as pool:
            assert await pool.map(f.square, range(10)) == [x * x for x in range(10)]
            await asyncio.sleep(0)
            scheduled = loop._scheduled  # type: ignore[attr-defined]
            ours = [h for h in scheduled if not h.cancelled() and _ours(h._callback)]
            assert ours == []
            assert [h for h in scheduled if not h.cancelled()]  # wait_for's own timer is seen

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(asyncio.wait_for(main(), 20))
    finally:
        loop.close()


def test_items_sent_to_an_unnoticed_dead_worker_are_redirected(run: Any) -> None:
    async def main() -> None:
        async with Pool(1) as pool:
            victim = pool._backend.workers[0].pid  # type: ignore[attr-defined]
            os.kill(victim, signal.SIGKILL)
            # Wait for the death without letting the loop see it: the next dispatch writes
            # into a pipe whose reader is gone (EPIPE), before the pidfd event is handled.
            deadline = time.monotonic() + 10
            while _alive(victim):
                assert time.monotonic() < deadline
                time.sleep(0.005)
            assert await pool.map(f.square, range(20)) == [x * x for x in range(20)]
            assert victim not in {w.pid for w in pool._backend.workers}  # type: ignore[attr-defined]

    run(main())


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
