"""The seconds JAX spends compiling inside an epoch (``compile_s``), from its own compile events
(bridge.engines.common.xla.CompileClock): the clock's arithmetic on known spans, then the jax and keras-jax
engines through the runner, each in its own worker, on the real framework."""
import pytest

from bridge.engines.common.xla import COMPILE_EVENTS, CompileClock
from bridge.experiment.spec import Spec
from bridge.results import store
from bridge.running import runner
from tests.support import needs_engine


class Monitoring:
    """Stands in for ``jax.monitoring`` only to hand the clock its listener."""

    def __init__(self):
        self.listeners = []

    def register_event_duration_secs_listener(self, callback):
        self.listeners.append(callback)


class StandInJax:
    def __init__(self):
        self.monitoring = Monitoring()


def test_the_clock_counts_each_instant_of_compilation_once_within_the_window():
    clock = CompileClock(StandInJax())
    # a trace with one nested in it (a jitted function calling another), a compile after, one outside
    clock.spans = [(1.0, 4.0), (2.0, 3.0), (5.0, 6.0), (9.0, 12.0)]
    assert clock.seconds(0.0, 8.0) == pytest.approx(4.0)
    assert clock.spans == [(9.0, 12.0)]  # what ended in the window is forgotten; the rest waits
    assert clock.seconds(10.0, 20.0) == pytest.approx(2.0)  # from the window's start only
    assert clock.seconds(20.0, 30.0) == 0.0


def test_the_clock_hears_jax_s_compile_events_and_nothing_else():
    jax = StandInJax()
    clock = CompileClock(jax)
    (heard,) = jax.monitoring.listeners
    for event in sorted(COMPILE_EVENTS):
        heard(event, 0.25, fun_name="step")
    heard("/jax/compilation_cache/cache_retrieval_time_sec", 5.0)
    assert len(clock.spans) == 3 and all(high - low == pytest.approx(0.25) for low, high in clock.spans)


@pytest.mark.parametrize("engine", [pytest.param(e, marks=needs_engine(e)) for e in ("jax", "keras-jax")])
def test_the_first_epoch_holds_the_compilation_and_later_epochs_none(engine, tmp_path):
    results = runner.run(Spec(dataset="iris", engines=(engine,), epochs=3, threads=1), tmp_path)
    assert not results.failed, results.warnings
    frame = store.read_frame(tmp_path)
    compiled = frame[frame.metric == "compile_s"].set_index("epoch").value.sort_index()
    seconds = frame[frame.metric == "epoch_s"].set_index("epoch").value.sort_index()
    assert list(compiled.index) == [0, 1, 2]
    # the train step (and the partial last batch's shape) compile in epoch 0, inside its time
    assert 0 < compiled[0] < seconds[0]
    assert compiled[1] == 0 and compiled[2] == 0
    summary = store.read_summary(tmp_path)["summary"][0]
    assert summary["first_epoch_compile_s"] == pytest.approx(compiled[0])
