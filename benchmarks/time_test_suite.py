"""Wall time of the whole test suite as `make test` runs it, and its 20 slowest tests.

    python benchmarks/time_test_suite.py            # -n auto, as make test
    python benchmarks/time_test_suite.py --workers 1 # one process, for comparison

Runs ``pytest tests -n WORKERS --dist worksteal`` with a JUnit XML report in a temporary
folder, then prints the total wall time, the pass/fail counts, the 20 slowest tests (call
time, from the report) and the machine's core count and load average at the start and end,
so a figure measured beside another job says so. The target (issue 34): under 8 minutes on
2 idle cores, under 15 beside one running benchmark.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", default="auto", help="pytest-xdist workers (-n), default auto")
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("pytest_args", nargs="*", help="more pytest arguments (for instance a test file)")
    a = ap.parse_args()
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", "tests", "-p", "no:cacheprovider", f"--junitxml={report}"]
        if a.workers != "1":
            cmd += ["-n", a.workers, "--dist", "worksteal"]
        t0 = time.perf_counter()
        rc = subprocess.run(cmd + a.pytest_args, cwd=ROOT, stdout=subprocess.DEVNULL).returncode
        wall = time.perf_counter() - t0
        cases = ET.parse(report).getroot().iter("testcase")
        times = sorted(
            ((float(c.get("time", 0)), f"{c.get('classname')}::{c.get('name')}") for c in cases), reverse=True
        )
    load1 = os.getloadavg()
    print(f"exit code {rc}; {len(times)} tests; wall time {wall:.0f} s ({wall / 60:.1f} min)")
    print(f"cores {os.cpu_count()}; workers {a.workers}; load average {load0[0]:.2f} at start, {load1[0]:.2f} at end")
    print(f"sum of test times {sum(t for t, _ in times):.0f} s; the {a.top} slowest:")
    for t, name in times[: a.top]:
        print(f"{t:8.1f} s  {name}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
