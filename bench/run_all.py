"""Run every benchmark in its own process and write docs/BENCHMARKS.md: the machine, each command and its tables.

.venv/bin/python -m bench.run_all [--quick] [--only featurize,index] [--out docs/BENCHMARKS.md]

With --only, the other scripts' sections already in the file are kept (each section says when it ran). Sections
that no script here writes (written by hand from another bench command, such as "vote path") are always kept, after
the scripts' own.
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import REPO, load_average, machine, table

SCRIPTS = ("featurize", "index", "api", "leaderboard", "chunks", "layout", "search", "map_page")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="every script in its quick mode")
    parser.add_argument("--only", help=f"comma-separated, from {','.join(SCRIPTS)}")
    parser.add_argument("--out", default=str(REPO / "docs" / "BENCHMARKS.md"))
    args = parser.parse_args()
    chosen = args.only.split(",") if args.only else list(SCRIPTS)
    unknown = set(chosen) - set(SCRIPTS)
    if unknown:
        parser.error(f"unknown scripts {sorted(unknown)}")

    started = datetime.now(UTC)
    out = Path(args.out)
    earlier = _sections(out.read_text()) if out.exists() else {}
    sections = earlier if args.only else {name: text for name, text in earlier.items() if name not in SCRIPTS}
    failed = []
    for name in chosen:
        command = [sys.executable, "-m", f"bench.{name}"] + (["--quick"] if args.quick else [])
        shown = " ".join([".venv/bin/python", *command[1:]])
        print(f"== {shown}", file=sys.stderr, flush=True)
        load_before = load_average()
        t0 = time.perf_counter()
        # stderr passes through (progress, warnings); stdout is the tables.
        result = subprocess.run(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
        elapsed = time.perf_counter() - t0
        print(result.stdout, flush=True)
        status = "" if result.returncode == 0 else f" — **failed with exit code {result.returncode}**"
        if result.returncode:
            failed.append(name)
        sections[name] = (
            f"## {name}\n\n`{shlex.join(shown.split())}` — run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
            f"{elapsed:.0f} s, load average before {load_before}, after {load_average()}{status}\n\n"
            f"{result.stdout.strip()}\n"
        )

    mode = "quick mode (small sizes, short timings: indicative only)" if args.quick else "full mode"
    header = [
        "# Benchmarks",
        "",
        f"Written by `make bench` (`.venv/bin/python -m bench.run_all{' --quick' if args.quick else ''}`), last on "
        f"{started:%Y-%m-%d %H:%M} UTC, {mode}; each section names its own run. Benchmarks are measurements, "
        "not tests: nothing here asserts a time. "
        "Numbers from a busy machine are noisy; the load average beside each command says how busy it was.",
        "",
        "## Machine",
        "",
        table(["what", "value"], machine()),
        "",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    body = [sections[name] for name in SCRIPTS if name in sections]
    body += [text for name, text in sections.items() if name not in SCRIPTS]
    out.write_text("\n".join(header) + "\n" + "\n".join(body))
    print(f"wrote {out}", file=sys.stderr)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


def _sections(text: str) -> dict[str, str]:
    """The sections of an earlier BENCHMARKS.md, by heading (a script's name for the scripts' own), in file order;
    not the machine, which every run describes afresh."""
    parts = re.split(r"^(?=## )", text, flags=re.MULTILINE)
    found = {}
    for part in parts:
        name = part[3:].split("\n", 1)[0].strip() if part.startswith("## ") else "Machine"
        if name != "Machine":
            found[name] = part.rstrip("\n") + "\n"
    return found


if __name__ == "__main__":
    main()
