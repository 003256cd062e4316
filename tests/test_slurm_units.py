"""Slurm memory/time parsing and seff-style efficiency with hints (pure functions)."""

from __future__ import annotations

import time

import pytest

from crackops.slurm.units import (
    efficiency,
    format_duration,
    format_mem,
    format_slurm_time,
    parse_duration_s,
    parse_mem_mb,
    parse_timestamp,
    suggest_cpus,
    suggest_mem,
    suggest_time,
)


@pytest.mark.parametrize("text,expected", [
    ("16G", 16384.0),
    ("16000M", 16000.0),
    ("1200M", 1200.0),
    ("320628K", 320628 / 1024),
    ("1.50G", 1536.0),
    ("1T", 1048576.0),
    ("0", 0.0),
    ("512", 512.0),             # bare number: MB, as --mem
    ("4Gn", 4096.0),            # per node, one node
    ("16g", 16384.0),
])
def test_parse_mem_mb(text, expected):
    assert parse_mem_mb(text) == pytest.approx(expected)


def test_parse_mem_per_cpu_and_per_node():
    assert parse_mem_mb("1Gc", alloc_cpus=4) == 4096.0
    assert parse_mem_mb("600Mc", alloc_cpus=2) == 1200.0
    assert parse_mem_mb("1Gc") is None                # per CPU but no CPU count: unknown
    assert parse_mem_mb("4Gn", nnodes=2) == 8192.0


@pytest.mark.parametrize("text", [None, "", "  ", "abc", "16GB!", "-1G", "G"])
def test_parse_mem_unreadable(text):
    assert parse_mem_mb(text) is None


def test_parse_mem_default_unit_for_maxrss():
    assert parse_mem_mb("3232K", default_unit="K") == pytest.approx(3.15625)
    assert parse_mem_mb("2048", default_unit="K") == 2.0


@pytest.mark.parametrize("text,expected", [
    ("00:00:05", 5.0),
    ("04:00:00", 14400.0),
    ("1-00:00:00", 86400.0),
    ("2-03:04:05", 2 * 86400 + 3 * 3600 + 4 * 60 + 5),
    ("00:04.984", 4.984),        # TotalCPU under an hour: MM:SS.mmm
    ("01:02:03.500", 3723.5),
    ("1:01", 61.0),              # squeue's M:SS
    ("10:00", 600.0),
    ("1-02", 93600.0),           # D-HH
    ("1-02:30", 95400.0),        # D-HH:MM
    ("45", 45.0),
])
def test_parse_duration(text, expected):
    assert parse_duration_s(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", [None, "", "UNLIMITED", "Partition_Limit", "INVALID", "Unknown", "None",
                                  "N/A", "x-1:00", "1:2:3:4", "aa:bb", "1-2:3:4:5"])
def test_parse_duration_words(text):
    assert parse_duration_s(text) is None


def test_parse_timestamp_local_iso_and_epoch():
    expected = time.mktime((2026, 11, 25, 17, 53, 2, 0, 0, -1))
    assert parse_timestamp("2026-11-25T17:53:02") == expected
    assert parse_timestamp("1795629182") == 1795629182.0
    for word in ("Unknown", "None", "N/A", "", None, "garbage"):
        assert parse_timestamp(word) is None


def test_format_slurm_time_roundtrip():
    t = time.mktime((2026, 1, 2, 3, 4, 5, 0, 0, -1))
    assert format_slurm_time(t) == "2026-01-02T03:04:05"
    assert parse_timestamp(format_slurm_time(t)) == t


def test_formatting():
    assert format_mem(16384) == "16 GB"
    assert format_mem(2150) == "2.1 GB"
    assert format_mem(212.96) == "213 MB"
    assert format_mem(None) == "?"
    assert format_duration(14400) == "4:00:00"
    assert format_duration(93784) == "1-02:03:04"
    assert format_duration(6) == "0:00:06"


def test_suggestions():
    assert suggest_mem(2150) == "4G"       # 2.1 GB x 1.5 = 3.15 -> 4G
    assert suggest_mem(213) == "1G"
    assert suggest_mem(11000) == "24G"     # 10.7 GB x 1.5 = 16.1 -> 24G
    assert suggest_time(750) == "0:20:00"  # 12.5 min x 1.5 = 18.75 -> 20 min
    assert suggest_time(3 * 3600) == "6:00:00"
    assert suggest_cpus(total_cpu_s=6.204, elapsed_s=6) == 2
    assert suggest_cpus(total_cpu_s=0.0, elapsed_s=6) == 1


def test_efficiency_completed_with_hints():
    # the numbers of tests/data/sacct/completed_with_step.txt: 4 CPUs, 16 GB, 4 h; ran 6 s
    acc = efficiency(state="COMPLETED", elapsed_s=6.0, timelimit_s=14400.0, alloc_cpus=4,
                     req_mem_mb=16384.0, max_rss_mb=218072 / 1024, total_cpu_s=6.204)
    assert acc["cpu_eff"] == 0.2585
    assert acc["mem_eff"] == 0.013
    assert acc["time_eff"] == 0.0004
    assert acc["implausible"] == []
    assert acc["hints"] == [
        "asked 16 GB, peak 213 MB: --mem 1G would do",
        "asked 4:00:00, ran 0:00:06: --time 0:05:00 would do",
        "4 CPUs at 26% use: --cpus 2 would do",
    ]
    assert set(acc) >= {"elapsed_s", "timelimit_s", "alloc_cpus", "req_mem_mb", "max_rss_mb", "total_cpu_s",
                        "cpu_eff", "mem_eff", "time_eff", "hints"}


def test_efficiency_the_brief_example():
    acc = efficiency(state="COMPLETED", elapsed_s=3000.0, timelimit_s=3600.0, alloc_cpus=4,
                     req_mem_mb=16384.0, max_rss_mb=2150.0, total_cpu_s=11000.0)
    assert acc["hints"] == ["asked 16 GB, peak 2.1 GB: --mem 4G would do"]
    assert acc["cpu_eff"] == pytest.approx(0.9167)


def test_efficiency_implausible_values_are_flagged_not_hinted():
    acc = efficiency(state="COMPLETED", elapsed_s=10.0, timelimit_s=600.0, alloc_cpus=1,
                     req_mem_mb=1024.0, max_rss_mb=3000.0, total_cpu_s=25.0)
    assert acc["cpu_eff"] == 2.5
    assert acc["mem_eff"] == pytest.approx(2.9297)
    assert acc["implausible"] == ["cpu_eff", "mem_eff"]
    assert not any("--mem" in h or "--cpus" in h for h in acc["hints"])


def test_efficiency_timeout_and_oom_hints():
    acc = efficiency(state="TIMEOUT", elapsed_s=61.0, timelimit_s=60.0, alloc_cpus=1, req_mem_mb=1024.0,
                     max_rss_mb=3.1, total_cpu_s=0.001)
    assert acc["time_eff"] == 1.0167
    assert acc["implausible"] == []            # over the limit is what TIMEOUT means
    assert acc["hints"] == ["hit the 0:01:00 time limit: ask for more (--time 0:02:00) or train fewer epochs"]
    oom = efficiency(state="OUT_OF_MEMORY", elapsed_s=100.0, timelimit_s=600.0, alloc_cpus=4,
                     req_mem_mb=16384.0, max_rss_mb=16000.0, total_cpu_s=300.0)
    assert oom["hints"] == ["ran out of its 16 GB: ask for more (--mem 24G)"]


def test_efficiency_unknowns():
    acc = efficiency(state="PENDING", elapsed_s=0.0, timelimit_s=None, alloc_cpus=None, req_mem_mb=None,
                     max_rss_mb=None, total_cpu_s=None)
    assert acc["cpu_eff"] is None and acc["mem_eff"] is None and acc["time_eff"] is None
    assert acc["hints"] == [] and acc["implausible"] == []
    # ReqMem 0 ("all the node's memory"): no memory ratio
    acc = efficiency(state="COMPLETED", elapsed_s=5.0, timelimit_s=None, alloc_cpus=2, req_mem_mb=0.0,
                     max_rss_mb=100.0, total_cpu_s=9.0)
    assert acc["mem_eff"] is None and acc["cpu_eff"] == 0.9 and acc["hints"] == []


def test_efficiency_is_json_able():
    import json

    acc = efficiency(state="COMPLETED", elapsed_s=6.0, timelimit_s=14400.0, alloc_cpus=4,
                     req_mem_mb=16384.0, max_rss_mb=213.0, total_cpu_s=6.2)
    assert json.loads(json.dumps(acc)) == acc
