"""Thread pools (pools.py): a burst's threads end on ``idle`` once their work is done,
and work submitted afterwards runs on new threads."""

from __future__ import annotations

import threading
import time

from edge_operator.pools import Pool


def _threads(prefix: str) -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith(prefix))


def test_idle_ends_the_threads_after_their_work_and_new_work_still_runs() -> None:
    pool = Pool(8, "test-burst")
    release = threading.Event()
    running = [pool.submit(release.wait, 5) for _ in range(8)]
    assert _threads("test-burst") == 8
    pool.idle()  # the work under way is not cut short
    assert _threads("test-burst") == 8
    release.set()
    assert all(f.result(5) for f in running)
    deadline = time.monotonic() + 5
    while _threads("test-burst") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _threads("test-burst") == 0
    assert pool.submit(lambda x: x * 2, 21).result(5) == 42
    assert _threads("test-burst") == 1
    pool.idle()
