"""The Ray backend on a private local Ray node (skipped without Ray).

Ray 2.x binds its gRPC servers on every interface whatever the node IP is (measured: `ss -ltnp`
shows raylet, gcs_server and workers on `*:port` even with `_node_ip_address="127.0.0.1"`), so
these tests run Ray inside a private network namespace that has only a loopback interface: the
outer test re-runs this file under `unshare -n` and the real tests run in there.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mc_funcs as f
import pytest

import tideloop.multicore as mc
from tideloop.multicore import Pool, RemoteTraceback, WorkerLost

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'tideloop[ray]'")
if os.environ.get("TIDELOOP_SKIP_RAY"):
    pytest.skip("TIDELOOP_SKIP_RAY is set", allow_module_level=True)

HERE = Path(__file__).parent
SRC = str(Path(mc.__file__).resolve().parents[2])
IN_NETNS = os.environ.get("TIDELOOP_RAY_NETNS") == "1"


def _wildcard_listeners() -> set[int]:
    """Ports listening on 0.0.0.0 / :: in this network namespace."""
    ports = set()
    for name, wildcard in (("/proc/net/tcp", "00000000"), ("/proc/net/tcp6", "0" * 32)):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, port = local.split(":")
            if state == "0A" and addr == wildcard:
                ports.add(int(port, 16))
    return ports


@pytest.mark.skipif(IN_NETNS, reason="this is the outer runner")
def test_ray_backend_in_a_loopback_only_namespace() -> None:
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if unshare is None or ip is None:
        pytest.skip("needs unshare(1) and ip(8) to keep Ray off the external interfaces")
    flags = ["-n"] if os.geteuid() == 0 else ["-r", "-n"]
    probe = subprocess.run([unshare, *flags, "true"], capture_output=True, timeout=10)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {probe.stderr.decode().strip()}")
    before = _wildcard_listeners()
    env = dict(os.environ, TIDELOOP_RAY_NETNS="1", RAY_USAGE_STATS_ENABLED="0")
    env["PYTHONPATH"] = os.pathsep.join([SRC, str(HERE), env.get("PYTHONPATH", "")])
    cmd = [
        unshare, *flags, "sh", "-c",
        f'{ip} link set lo up && exec "$0" -m pytest -q -p no:cacheprovider "$1"',
        sys.executable, str(Path(__file__)),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    summary = proc.stdout.strip().splitlines()[-1]
    passed = re.search(r"(\d+) passed", summary)
    # Only the outer runner itself may be skipped in there.
    assert passed and int(passed.group(1)) >= 2 and "1 skipped" in summary, proc.stdout[-4000:]
    assert _wildcard_listeners() <= before


real = pytest.mark.skipif(
    not IN_NETNS, reason="runs inside the loopback-only namespace (see the outer test)"
)


@pytest.fixture(scope="module")
def ray_node() -> Iterator[None]:
    # Only loopback exists here, so whatever Ray binds is reachable from this machine only.
    ifaces = [ln.split(":")[0].strip() for ln in Path("/proc/net/dev").read_text().splitlines()[2:]]
    assert ifaces == ["lo"], ifaces
    ray.init(
        _node_ip_address="127.0.0.1",
        include_dashboard=False,
        num_cpus=2,
        configure_logging=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([SRC, str(HERE)])}},
    )
    try:
        yield
    finally:
        ray.shutdown()


@real
def test_ray_map_imap_apply_and_errors(ray_node: None, run: Any) -> None:
    async def main() -> None:
        async with Pool(2, backend="ray", concurrency=4) as pool:
            assert await pool.map(f.sleepy_square, range(30)) == [x * x for x in range(30)]
            assert [r async for r in pool.imap(f.square, range(10))] == [
                x * x for x in range(10)
            ]
            got = [r async for r in pool.imap_unordered(f.square, range(10))]
            assert sorted(got) == [x * x for x in range(10)]
            assert await pool.apply(f.add, 1, 2, scale=3) == 9
            with pytest.raises(f.CustomError, match="item 3 failed") as info:
                await pool.map(f.fail, range(5))
            assert isinstance(info.value.__cause__, RemoteTraceback)
            assert "in fail" in info.value.__cause__.tb

    run(main(), timeout=60)


@real
def test_ray_lost_actor_and_initializer(ray_node: None, run: Any) -> None:
    async def main() -> None:
        async with Pool(1, backend="ray", initializer=f.init_state, initargs=(7,)) as pool:
            assert await pool.apply(f.get_state) == 7
            with pytest.raises(WorkerLost, match="item 0 of apply"):
                await pool.apply(f.exit_now, 1)
            # The replacement actor ran the initializer too.
            assert await pool.map(f.get_state, range(3)) == [7, 7, 7]

    run(main(), timeout=60)


@real
def test_ray_cancellation_reaches_the_actor(ray_node: None, run_tl: Any, tmp_path: Path) -> None:
    async def main() -> None:
        async with Pool(1, backend="ray", concurrency=2) as pool:
            task = asyncio.ensure_future(
                pool.starmap(f.hang_with_marker, [(str(tmp_path), i) for i in range(2)])
            )
            async with asyncio.timeout(30):
                while not all((tmp_path / f"started-{i}").exists() for i in range(2)):
                    await asyncio.sleep(0.02)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                while not all((tmp_path / f"cancelled-{i}").exists() for i in range(2)):
                    await asyncio.sleep(0.02)
            assert await pool.apply(f.add, 1, 1) == 2

    run_tl(main(), timeout=60)
