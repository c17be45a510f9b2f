"""A cancel during a group of embedder calls is held until the group is persisted, then honoured.

Dagster's run worker cancels a run by interrupting its main thread (SIGINT); the embed stage
wraps each group of calls in ``persisted_before_cancel`` so it is written whole or not at all.
"""

from __future__ import annotations

import os
import signal

import dagster as dg
import pytest

from fruxon_pipelines.assets.failures import persisted_before_cancel


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_cancel_waits_for_the_block_then_interrupts_the_run(signum):
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    finished = False
    with pytest.raises(dg.DagsterExecutionInterruptedError), persisted_before_cancel():
        os.kill(os.getpid(), signum)
        finished = True  # the block goes on to its end
    assert finished
    assert {s: signal.getsignal(s) for s in handlers} == handlers


def test_without_a_cancel_the_block_ends_as_usual_and_its_errors_pass():
    handler = signal.getsignal(signal.SIGINT)
    with persisted_before_cancel():
        pass
    with pytest.raises(ValueError), persisted_before_cancel():
        raise ValueError("not a cancel")
    assert signal.getsignal(signal.SIGINT) is handler
