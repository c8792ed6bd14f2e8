"""A stop is never left waiting: a command still running ``$BRIDGE_STOP_GRACE_S`` seconds after the first
signal stops at once, and a sweep's interpreter exit is bounded too.

What hangs here is a stand-in, in a real Python process getting a real SIGINT: a loop that swallows
KeyboardInterrupt (as a library can) and a thread that never ends (as a library's can). The hangs they
stand for, Dask not closing after Ctrl-C, cannot be made to happen on demand; the real sweep's Ctrl-C is
tests/sweep/test_sweep.py's.
"""
import signal
import subprocess
import sys
import textwrap
import time

from tests import support
from tests.support import ROOT

SWALLOWS = textwrap.dedent("""
    import time
    from bridge.running.stopping import stop_on_signals

    with stop_on_signals(resume="python -m bridge.compare --epochs 2"):
        print("ready", flush=True)
        while True:  # a library that catches KeyboardInterrupt and goes on
            try:
                time.sleep(0.05)
            except KeyboardInterrupt:
                pass
""")

STOPS_IN_TIME = textwrap.dedent("""
    import os, signal, time
    from bridge.running.stopping import Interrupted, stop_on_signals

    try:
        with stop_on_signals():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
    except Interrupted:
        print("stopped", flush=True)
    time.sleep(3)  # longer than the grace: the context's end cancelled it
    print("still here", flush=True)
""")

THREAD_NEVER_ENDS = textwrap.dedent("""
    import sys, threading
    from bridge.running.stopping import exit_within

    threading.Thread(target=threading.Event().wait).start()  # not a daemon: Python's exit joins it
    exit_within(1, 3, "bridge.sweep")
    sys.exit(3)
""")


def python(script: str, grace: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=support.environment(BRIDGE_STOP_GRACE_S=grace))


def test_a_command_still_running_after_the_grace_stops_at_once_and_says_how_to_resume():
    proc = python(SWALLOWS, grace="1.5")
    assert proc.stdout.readline() == "ready\n"
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    waited = time.monotonic() - sent
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines() == [
        "bridge: still running 1.5 s after SIGINT (waiting longer: $BRIDGE_STOP_GRACE_S), stopped at once; files "
        "written before are kept; resume with: python -m bridge.compare --epochs 2"]
    assert waited >= 1.5  # a timer never fires early; how late it fires is the machine's business


def test_a_stop_that_ends_within_the_grace_cancels_it():
    proc = python(STOPS_IN_TIME, grace="1")
    stdout, stderr = proc.communicate(timeout=60)
    assert (proc.returncode, stdout) == (0, "stopped\nstill here\n"), stderr
    assert "stopped at once" not in stderr


def test_a_bad_grace_falls_back_to_the_default():
    proc = python(STOPS_IN_TIME, grace="soon")
    stdout, stderr = proc.communicate(timeout=60)
    assert (proc.returncode, stdout) == (0, "stopped\nstill here\n"), stderr


def test_an_exit_that_waits_on_a_thread_is_cut_short_with_the_command_s_code():
    proc = python(THREAD_NEVER_ENDS, grace="60")
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 3, stderr
    assert stderr.strip().splitlines() == [
        "bridge.sweep: Python's exit still waited 1 s after the command ended (on a library's threads or "
        "processes); exited without them; what was written is kept"]
