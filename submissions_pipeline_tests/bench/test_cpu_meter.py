"""The benchmark's CPU meter sees work done below it, even by processes nobody reaps."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

from bench.pss import MEASURING, TreeCpuMeter, client_cpu_seconds, step_cpu_seconds

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6: pass\n"

# A child that starts a grandchild burning CPU and exits without waiting for it: the grandchild
# is re-parented away from us, so RUSAGE_CHILDREN never sees its CPU. The grandchild says when
# its burn is over and lingers a moment, so the test does not depend on the machine's load.
GRANDCHILD = BURN + "print('burnt', flush=True)\ntime.sleep(1.0)\n"
ORPHANING_CHILD = textwrap.dedent(
    f"""
    import subprocess, sys, time
    grandchild = subprocess.Popen([sys.executable, "-c", {GRANDCHILD!r}], stdout=subprocess.PIPE)
    grandchild.stdout.readline()  # read, never waited for
    time.sleep(0.3)  # while it is still below us, idle
    """
)


def test_cpu_of_an_unreaped_grandchild_is_counted():
    meter = TreeCpuMeter(period_s=0.05)
    try:
        before = meter.seconds()
        subprocess.run([sys.executable, "-c", ORPHANING_CHILD], check=True)
        spent = meter.seconds() - before
    finally:
        meter.close()
    assert spent >= 0.5, f"the meter saw only {spent:.2f} CPU s of a 0.6 s burn below it"


def test_the_portal_is_not_the_clients_cost():
    meter = TreeCpuMeter(period_s=0.02)
    try:
        # Marked like the sandbox portal's process (bench.sandbox_process): excluded.
        portal = subprocess.Popen([sys.executable, "-c", BURN, "bench.sandbox_process"])
        client = subprocess.Popen([sys.executable, "-c", BURN])
        portal.wait()
        client.wait()
        counted = meter.counted_pids()
    finally:
        meter.close()
    assert client.pid in counted, "the meter never saw a plain child"
    assert portal.pid not in counted


def test_the_meters_own_reading_is_not_the_clients_cost():
    client_cpu_seconds()  # the process-wide meter is running
    # A meter scanning without pause: every CPU second it spends is measuring, not work.
    busy = TreeCpuMeter(period_s=0.001)
    try:
        m0, c0, s0 = MEASURING.seconds(), client_cpu_seconds(), step_cpu_seconds()
        time.sleep(1.0)
        m1, c1, s1 = MEASURING.seconds(), client_cpu_seconds(), step_cpu_seconds()
    finally:
        busy.close()
    assert m1 - m0 >= 0.2, f"the busy meter spent only {m1 - m0:.2f} CPU s measuring"
    # This process only slept: what the readings cost is theirs, not the client's.
    assert c1 - c0 < 0.1, f"an idle second counted {c1 - c0:.2f} CPU s"
    assert s1 - s0 < 0.1, f"an idle second counted {s1 - s0:.2f} CPU s per step"
