"""Shared by the benchmarks: machine description and a table printed and written as Markdown + CSV."""
from __future__ import annotations

import datetime
import os
import platform
import subprocess
from pathlib import Path

import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    try:
        gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=10).stdout.strip() or "none"
    except (OSError, subprocess.SubprocessError):
        gpu = "none"
    return f"{cpu}, {cores} cores, {mem:.0f} GiB, GPU: {gpu}, Python {platform.python_version()}"


def write(name: str, rows: list[dict], command: str, notes: str = "") -> Path:
    """Print ``rows`` as a table and write bench/results/NAME.{md,csv}; returns the .md path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows)
    df.to_csv(RESULTS / f"{name}.csv", index=False)
    head = (f"# {name}\n\n- date: {datetime.datetime.now().isoformat(timespec='seconds')}\n- machine: {machine()}\n"
            f"- command: `{command}`\n")
    text = head + ("\n" + notes.strip() + "\n" if notes else "") + "\n" + df.to_markdown(index=False, floatfmt=".4g") + "\n"
    (RESULTS / f"{name}.md").write_text(text)
    print(text)
    return RESULTS / f"{name}.md"
