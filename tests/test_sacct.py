"""sacct/squeue command lines and parsing, over outputs captured from a real Slurm 22.05
(tests/data/sacct/, see README.txt there) and small inline texts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from crackops.slurm.sacct import (
    SACCT_FIELDS,
    SQUEUE_FORMAT,
    build_sacct_command,
    build_sacct_commands,
    build_scancel_command,
    build_squeue_command,
    compact_job_ids,
    expand_array_range,
    index_jobs,
    lacks_field,
    parse_sacct,
    parse_squeue,
    sacct_error_line,
    sacct_starttime,
    select_job,
    split_state,
    squeue_unknown_ids,
)

DATA = Path(__file__).parent / "data" / "sacct"


def ts(text: str) -> float:
    return time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))


def load(name: str):
    return {j.job_id: j for j in parse_sacct((DATA / name).read_text())}


# ------------------------------------------------------------------ command lines

def test_sacct_command_is_one_batched_call():
    cmd = build_sacct_command(["17", "2", "17", "6_0", "6_1", "19_3"], "2026-11-25T17:40:00")
    assert cmd == [
        "sacct", "--parsable2", "--noheader",
        "--format=JobID,JobName,State,ExitCode,Elapsed,Timelimit,NNodes,AllocCPUS,ReqMem,MaxRSS,TotalCPU,"
        "Submit,Start,End,NodeList,Reason,SubmitLine",
        "--starttime=2026-11-25T17:40:00", "-j", "17,2,6,19_3",
    ]
    assert ",".join(SACCT_FIELDS) in cmd[3]


def test_sacct_starttime_is_a_duration_before_saccts_own_clock():
    t0 = ts("2026-11-25T17:53:02")
    now = t0 + 1000
    # the oldest run's age (1000 s in this process's clock) plus the margin, counted back from sacct's now
    assert sacct_starttime([t0 + 100, t0, t0 + 5], now=now) == "now-87400seconds"
    assert sacct_starttime([t0], margin_s=60, now=now) == "now-1060seconds"
    # a process 30 minutes fast still asks sacct for the right window (no date in sacct's future)
    assert sacct_starttime([t0 + 1800], margin_s=60, now=now + 1800) == "now-1060seconds"
    with pytest.raises(ValueError):
        sacct_starttime([], now=now)


SKEWED = "\n".join([   # job 41 handed out twice: an old job, and this run's (its folder in the submit line)
    "41|cnn_crack|COMPLETED|0:0|00:00:05|00:10:00|1|4|16G||00:00:01|2026-12-01T09:00:00|2026-12-01T09:00:01|"
    "2026-12-01T09:00:06|vm|None|sbatch /h/.crackops/submitit/aaaa1111/.submission_file_1.sh",
    "41|cnn_crack|OUT_OF_MEMORY|0:125|00:00:09|00:10:00|1|4|16G||00:00:02|2026-12-01T10:00:00|"
    "2026-12-01T10:00:01|2026-12-01T10:00:10|vm|None|sbatch --wrap 'a|b' /h/.crackops/submitit/bbbb2222/.submission_file_2.sh",
])


def test_a_row_is_matched_to_its_run_by_its_submission_whatever_the_clocks():
    index = index_jobs(parse_sacct(SKEWED))
    assert index["41"][1].submit_line.endswith("bbbb2222/.submission_file_2.sh")   # a '|' inside it
    # this run's process clock was 30 minutes fast: its submit time is after its row's
    late = ts("2026-12-01T10:30:00")
    assert select_job(index, "41", submitted_at=late, marker="/h/.crackops/submitit/bbbb2222/").state == "OUT_OF_MEMORY"
    assert select_job(index, "41", submitted_at=late) is None          # by time alone: dropped as "older"
    # the old job's row is never this run's, and a run whose row is not there yet has none
    assert select_job(index, "41", submitted_at=late - 7200, marker="/h/.crackops/submitit/cccc3333/") is None
    assert select_job(index, "41", marker="/h/.crackops/submitit/aaaa1111/").state == "COMPLETED"


def test_rows_without_a_submit_line_parse_and_match_by_time():
    line = ("7|cnn_crack|COMPLETED|0:0|00:00:05|00:10:00|1|4|16G||00:00:01|2026-12-01T09:00:00|"
            "2026-12-01T09:00:01|2026-12-01T09:00:06|vm|None")   # 16 fields: recorded before SubmitLine
    (job,) = parse_sacct(line)
    assert job.submit_line == "" and job.state == "COMPLETED"
    index = index_jobs([job])
    assert select_job(index, "7", submitted_at=ts("2026-12-01T09:00:00"), marker="/x/").state == "COMPLETED"
    assert lacks_field("sacct: fatal: Invalid field requested: \"SubmitLine\"", "SubmitLine")
    assert not lacks_field("sacct: error: Connection refused", "SubmitLine")


def test_compact_ids_collapses_arrays_only_with_two_tasks():
    assert compact_job_ids(["5", "6_0", "6_1", "7", "5", " ", "8_3"]) == ["5", "6", "7", "8_3"]


def test_many_ids_split_only_past_the_argument_limit():
    ids = [str(i) for i in range(1, 1001)]
    cmds = build_sacct_commands(ids, "2026-01-01T00:00:00")
    assert len(cmds) == 1 and cmds[0][-1] == ",".join(ids)
    assert [len(c[-1].split(",")) for c in build_sacct_commands(ids, "x", max_ids=400)] == [400, 400, 200]


def test_squeue_and_scancel_commands():
    assert build_squeue_command(["5", "6_0", "6_1"]) == [
        "squeue", "--noheader", "--array", "--states=all", "--format=%i|%T|%r|%j|%V|%S|%e|%M|%l|%C|%m",
        "-j", "5,6"]
    assert SQUEUE_FORMAT == "%i|%T|%r|%j|%V|%S|%e|%M|%l|%C|%m"
    assert build_scancel_command(["5", "6_1", "5"]) == ["scancel", "5", "6_1"]
    with pytest.raises(ValueError):
        build_sacct_command([], "x")


# ------------------------------------------------------------------ sacct parsing (real outputs)

def test_completed_job_with_steps():
    jobs = load("mixed.txt")
    j = jobs["1"]
    assert (j.state, j.state_raw, j.exit_code, j.reason) == ("COMPLETED", "COMPLETED", "0:0", None)
    assert [s.step for s in j.steps] == ["batch", "0"]
    assert j.elapsed_s == 5.0 and j.timelimit_s == 600.0
    assert j.alloc_cpus == 2 and j.nnodes == 1
    assert j.req_mem_mb == 1024.0 and j.req_mem_raw == "1G"
    assert j.max_rss_mb == pytest.approx(320628 / 1024)        # the srun step, not the batch step
    assert j.steps[0].max_rss_mb == pytest.approx(10700 / 1024)
    assert j.total_cpu_s == pytest.approx(4.984)               # the allocation row, milliseconds kept
    assert j.steps[1].total_cpu_s == pytest.approx(4.971)
    assert j.submit == ts("2026-11-25T17:53:02")
    assert j.start == ts("2026-11-25T17:53:02") and j.end == ts("2026-11-25T17:53:07")
    assert j.nodelist == "vm" and j.finished


def test_failed_exit_3_and_python_crash():
    jobs = load("mixed.txt")
    assert (jobs["2"].state, jobs["2"].exit_code) == ("FAILED", "3:0")
    assert jobs["2"].steps[0].state == "FAILED" and jobs["2"].steps[0].exit_code == "3:0"
    assert (jobs["9"].state, jobs["9"].exit_code, jobs["9"].max_rss_mb) == ("FAILED", "1:0", None)
    assert jobs["9"].total_cpu_s == pytest.approx(0.12)


def test_cancelled_by_uid():
    jobs = load("mixed.txt")
    j = jobs["3"]
    assert (j.state, j.state_raw, j.cancelled_by) == ("CANCELLED", "CANCELLED by 0", "0")
    assert j.steps[0].state == "CANCELLED" and j.steps[0].exit_code == "0:15"
    assert j.elapsed_s == 8.0
    # cancelled while pending: never started, but ended
    p = jobs["13"]
    assert (p.state, p.start, p.end) == ("CANCELLED", None, ts("2026-11-25T17:53:19"))
    assert p.reason is None                      # Reason is only kept for PENDING rows
    assert p.finished and p.steps == []


def test_timeout_batch_step_cancelled_0_15():
    j = load("mixed.txt")["4"]
    assert (j.state, j.exit_code) == ("TIMEOUT", "0:0")
    assert (j.steps[0].state, j.steps[0].exit_code) == ("CANCELLED", "0:15")
    assert j.elapsed_s == 61.0 and j.timelimit_s == 60.0
    acc = j.accounting()
    assert acc["time_eff"] == 1.0167 and acc["implausible"] == []
    assert acc["hints"] == ["hit the 0:01:00 time limit: ask for more (--time 0:02:00) or train fewer epochs"]


def test_pending_held_and_waiting():
    jobs = load("mixed.txt")
    assert (jobs["5"].state, jobs["5"].reason) == ("PENDING", "JobHeldUser")
    assert jobs["5"].start is None and jobs["5"].end is None and jobs["5"].nodelist is None
    # squeue said "Resources" for job 8 at that moment; sacct's Reason column still said None
    assert (jobs["8"].state, jobs["8"].reason, jobs["8"].req_mem_mb) == ("PENDING", None, 8192.0)
    assert not jobs["5"].terminal and not jobs["5"].incomplete


def test_running_job_has_no_end_and_no_rss_yet():
    jobs = load("mixed.txt")
    j = jobs["7"]
    assert (j.state, j.end, j.max_rss_mb, j.alloc_cpus, j.req_mem_mb) == ("RUNNING", None, None, 8, 4096.0)
    assert not j.incomplete and not j.finished
    run = load("running_with_step.txt")["17"]
    assert [s.step for s in run.steps] == ["batch", "0"] and run.max_rss_mb is None
    assert run.elapsed_s == 4.0 and run.total_cpu_s == 0.0
    acc = run.accounting()
    assert (acc["elapsed_s"], acc["time_eff"], acc["alloc_cpus"], acc["req_mem_mb"]) == (4.0, 0.0003, 4, 16384.0)
    assert acc["cpu_eff"] is None and acc["mem_eff"] is None and acc["total_cpu_s"] is None


def test_mem_per_cpu_shows_as_job_total_in_22_05():
    # sbatch -c 2 --mem-per-cpu=600M: sacct 22.05 prints ReqMem 1200M (no 'c' suffix any more)
    assert load("mixed.txt")["12"].req_mem_mb == 1200.0


def test_refused_oversize_request_leaves_a_failed_row():
    j = load("mixed.txt")["14"]
    assert (j.state, j.exit_code, j.req_mem_mb, j.nodelist) == ("FAILED", "1:0", 102400.0, None)


def test_array_tasks_and_their_steps():
    jobs = load("mixed.txt")
    assert [k for k in jobs if k.startswith("6_")] == ["6_0", "6_1", "6_2"]
    t = jobs["6_1"]
    assert t.state == "COMPLETED" and t.req_mem_mb == 512.0
    assert t.max_rss_mb == pytest.approx(3024 / 1024) and t.from_range is None


def test_pending_array_range_expands_to_tasks():
    jobs = load("pending_array.txt")
    assert sorted(jobs) == ["19_0", "19_1", "19_2", "19_3"]
    assert all(j.state == "PENDING" and j.reason == "JobHeldUser" and j.from_range == "19_[0-3%2]"
               for j in jobs.values())


def test_array_range_row_does_not_override_a_task_with_its_own_row():
    jobs = load("array_cancelled.txt")
    assert jobs["19_1"].state == "COMPLETED" and jobs["19_1"].from_range is None
    assert jobs["19_1"].max_rss_mb == pytest.approx(3164 / 1024)
    for k in ("19_0", "19_2", "19_3"):
        assert (jobs[k].state, jobs[k].cancelled_by, jobs[k].start) == ("CANCELLED", "0", None)


def test_no_row_yet_is_empty_output():
    assert (DATA / "no_row_yet.txt").read_text() == ""
    assert parse_sacct("") == []
    assert select_job(index_jobs([]), "17", submitted_at=time.time()) is None


def test_incomplete_record_after_slurmdbd_restart():
    j = load("incomplete_after_dbd_restart.txt")["16"]
    assert j.state == "COMPLETED" and j.end is None and j.steps == []
    assert j.incomplete and not j.finished
    assert j.accounting()["incomplete"] is True


def test_accounting_dict_for_default_request():
    acc = load("completed_with_step.txt")["17"].accounting()
    assert acc["alloc_cpus"] == 4 and acc["req_mem_mb"] == 16384.0 and acc["timelimit_s"] == 14400.0
    assert acc["max_rss_mb"] == pytest.approx(212.961, abs=1e-3)
    assert acc["total_cpu_s"] == pytest.approx(6.204)
    assert acc["elapsed_s"] == 6.0
    assert (acc["cpu_eff"], acc["mem_eff"], acc["time_eff"]) == (0.2585, 0.013, 0.0004)
    assert acc["hints"][0] == "asked 16 GB, peak 213 MB: --mem 1G would do"
    assert acc["state"] == "COMPLETED" and acc["steps"] == ["batch", "0"] and acc["source"] == "sacct"


# ------------------------------------------------------------------ inline texts

HEADERLESS = "|".join  # readability helper for inline rows


def row(jid, name="cnn_crack", state="COMPLETED", exit_code="0:0", elapsed="00:10:00", limit="04:00:00",
        nnodes="1", cpus="4", reqmem="16G", maxrss="", totalcpu="00:00:00", submit="2026-11-25T10:00:00",
        start="2026-11-25T10:00:01", end="2026-11-25T10:10:01", nodes="n1", reason="None",
        submitline="sbatch /h/.crackops/submitit/s1/.submission_file_1.sh"):
    return HEADERLESS([jid, name, state, exit_code, elapsed, limit, nnodes, cpus, reqmem, maxrss, totalcpu,
                       submit, start, end, nodes, reason, submitline])


def test_step_rows_max_and_sum():
    text = "\n".join([
        row("100", totalcpu="00:00:00"),
        row("100.batch", name="batch", limit="", reqmem="", maxrss="2100M", totalcpu="10:00.500"),
        row("100.extern", name="extern", limit="", reqmem="", maxrss="1000K", totalcpu="00:00.001"),
        row("100.0", name="python", limit="", reqmem="", maxrss="1.5G", totalcpu="1:00:00"),
    ])
    j = load_text(text)["100"]
    assert j.max_rss_mb == 2100.0
    assert j.total_cpu_s == pytest.approx(600.5 + 0.001 + 3600)   # allocation row 0: sum of steps
    assert [s.step for s in j.steps] == ["batch", "extern", "0"]


def test_old_slurm_per_cpu_reqmem():
    j = load_text(row("200", reqmem="1Gc", cpus="4"))["200"]
    assert j.req_mem_mb == 4096.0
    j = load_text(row("201", reqmem="4Gn", nnodes="2"))["201"]
    assert j.req_mem_mb == 8192.0


def test_words_in_time_columns():
    j = load_text(row("300", limit="UNLIMITED", elapsed="INVALID", start="Unknown", end="Unknown",
                      state="PENDING", reason="Resources"))["300"]
    assert (j.timelimit_s, j.elapsed_s, j.start, j.end, j.reason) == (None, None, None, None, "Resources")
    assert load_text(row("301", limit="Partition_Limit"))["301"].timelimit_s is None


def test_pipe_in_job_name_and_junk_lines():
    text = row("400", name="a|b") + "\nnot a sacct line\n\n" + row("400.batch", name="batch", maxrss="10M")
    j = load_text(text)["400"]
    assert j.name == "a|b" and j.max_rss_mb == 10.0


def test_orphan_step_rows_are_ignored():
    assert load_text(row("500.batch", name="batch")) == {}


def test_placeholder_allocation_row_is_pending():
    j = load_text(row("27", name="allocation", state="PENDING", elapsed="00:00:00", start="Unknown",
                      end="Unknown", nodes="None assigned"))["27"]
    assert j.state == "PENDING" and not j.terminal and j.placeholder
    # a placeholder must not be thrown away for its name: it is still "not finished"
    idx = index_jobs(parse_sacct(row("27", name="allocation", state="PENDING")))
    assert select_job(idx, "27", job_name="cnn_crack") is not None
    done = index_jobs(parse_sacct(row("27", name="allocation", state="COMPLETED")))
    assert select_job(done, "27", job_name="cnn_crack") is None


def test_select_job_skips_reused_ids_and_other_names():
    old = row("42", name="cnn_crack", state="FAILED", submit="2026-11-20T09:00:00")
    new = row("42", name="cnn_crack", state="RUNNING", submit="2026-11-25T10:00:00", end="Unknown")
    other = row("43", name="someone_else", state="COMPLETED", submit="2026-11-25T10:00:00")
    idx = index_jobs(parse_sacct("\n".join([old, new, other])))
    sub = ts("2026-11-25T10:00:02")
    assert select_job(idx, "42", submitted_at=sub, job_name="cnn_crack").state == "RUNNING"
    only_old = index_jobs(parse_sacct(old))
    assert select_job(only_old, "42", submitted_at=sub, job_name="cnn_crack") is None
    assert select_job(idx, "43", submitted_at=sub, job_name="cnn_crack") is None
    assert select_job(idx, "43", submitted_at=sub).state == "COMPLETED"


def test_split_state_and_ranges():
    assert split_state("CANCELLED by 1000") == ("CANCELLED", "1000")
    assert split_state("CANCELLED+") == ("CANCELLED", None)
    assert split_state("") == ("UNKNOWN", None)
    assert expand_array_range("23_[0-3%2]") == ["23_0", "23_1", "23_2", "23_3"]
    assert expand_array_range("23_[1,4-5]") == ["23_1", "23_4", "23_5"]
    assert expand_array_range("23_[0-6:3]") == ["23_0", "23_3", "23_6"]
    assert expand_array_range("23_7") == ["23_7"]
    assert expand_array_range("23_[x]") == ["23_[x]"]


def load_text(text: str):
    return {j.job_id: j for j in parse_sacct(text)}


# ------------------------------------------------------------------ squeue and errors

def test_squeue_all_states():
    q = parse_squeue((DATA / "squeue_mixed.txt").read_text())
    assert (q["4"].state, q["4"].reason, q["4"].elapsed_s, q["4"].timelimit_s) == ("TIMEOUT", "TimeLimit", 61.0, 60.0)
    assert q["4"].end == ts("2026-11-25T17:54:03") and q["4"].terminal
    assert (q["2"].state, q["2"].reason) == ("FAILED", "NonZeroExitCode")
    assert (q["8"].state, q["8"].reason, q["8"].start, q["8"].end) == ("PENDING", "Resources", None, None)
    assert (q["5"].state, q["5"].reason) == ("PENDING", "JobHeldUser")
    assert (q["7"].state, q["7"].reason, q["7"].end) == ("RUNNING", None, None)
    assert q["7"].start == ts("2026-11-25T17:54:03") and q["7"].cpus == 8
    assert q["3"].state == "CANCELLED" and q["6_2"].state == "COMPLETED"
    assert len(q) == 15


def test_squeue_pending_array_one_line_per_task():
    q = parse_squeue((DATA / "squeue_pending_array.txt").read_text())
    assert sorted(q) == ["18_0", "18_1", "18_2", "18_3"]
    assert {j.reason for j in q.values()} == {"JobHeldUser"}
    assert parse_squeue("19_[0-1]|PENDING|Priority|x|N/A|N/A|N/A|0:00|5:00|1|1G").keys() == {"19_0", "19_1"}


def test_error_lines():
    disabled = (DATA / "error_accounting_disabled.txt").read_text()
    assert sacct_error_line(disabled, 1) == "Slurm accounting storage is disabled"
    down = (DATA / "error_slurmdbd_down.txt").read_text()
    assert sacct_error_line(down, 1) == "Problem talking to the database: Connection refused"
    assert sacct_error_line("", 124) == "exit status 124"
    assert squeue_unknown_ids("slurm_load_jobs error: Invalid job id specified\n")
    assert not squeue_unknown_ids(down)
