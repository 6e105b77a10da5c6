"""bench.run_all rewrites docs/BENCHMARKS.md: the sections it does not rerun, and those no script of its writes,
survive the rewrite."""

import sys

from bench import run_all

EARLIER = """# Benchmarks

## Machine

| what | value |

## index

old index tables

## leaderboard

old leaderboard tables

## vote path

hand-written profile before and after
"""


def rewrite(tmp_path, monkeypatch, *args):
    out = tmp_path / "BENCHMARKS.md"
    out.write_text(EARLIER)

    class Finished:
        returncode = 0
        stdout = "new tables"

    monkeypatch.setattr(run_all.subprocess, "run", lambda *a, **k: Finished())
    monkeypatch.setattr(sys, "argv", ["run_all", "--out", str(out), *args])
    run_all.main()
    return out.read_text()


def test_a_hand_written_section_survives_a_run_of_one_script(tmp_path, monkeypatch):
    text = rewrite(tmp_path, monkeypatch, "--only", "leaderboard")
    assert "hand-written profile before and after" in text
    assert "old index tables" in text
    assert "old leaderboard tables" not in text
    assert text.count("## Machine") == 1


def test_a_hand_written_section_survives_a_full_run_after_the_scripts_sections(tmp_path, monkeypatch):
    text = rewrite(tmp_path, monkeypatch)
    assert "old index tables" not in text
    assert text.index("## map_page") < text.index("## vote path")
    assert "hand-written profile before and after" in text
