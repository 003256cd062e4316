"""The ssh transport's pure parts: the argv given to ssh and rsync, and each failure turned into one
line (inline text as ssh, bash and the remote crackops print it)."""

from __future__ import annotations

import shlex

from crackops.backends import ssh_transport as t
from crackops.errors import BackendError, NotFoundError, StateError


def test_ssh_argv_multiplexes_quotes_and_ends_options_before_the_host():
    argv = t.ssh_argv("login.cluster", ["crackops", "status", "--json", "12; rm -rf ~", "a b"],
                      "/s/%C", "/cfg")
    assert argv[:3] == ["ssh", "-F", "/cfg"]
    opts = " ".join(argv)
    assert "ControlMaster=auto" in opts and "ControlPath=/s/%C" in opts and "ControlPersist=10m" in opts
    assert "BatchMode=yes" in opts
    assert argv[-3:-1] == ["--", "login.cluster"]
    # the remote shell sees words: the ';' is inside a quoted word, not a second command
    assert shlex.split(argv[-1]) == ["crackops", "status", "--json", "12; rm -rf ~", "a b"]


def test_ssh_argv_without_config_or_batch():
    argv = t.ssh_argv("h", None, "/s/%C", None, batch=False, extra=["-O", "check"])
    assert "-F" not in argv and "BatchMode=yes" not in " ".join(argv)
    assert argv[-4:] == ["-O", "check", "--", "h"]


def test_control_path_short_enough_for_a_socket(tmp_path):
    deep = tmp_path / ("x" * 80) / "home"
    ctl = t.control_path(deep)
    assert ctl.endswith("/%C") and len(ctl) - 2 + 40 <= 100
    assert t.control_path(tmp_path / "h") != ctl


def test_rsync_argv_copies_content_through_the_master():
    argv = t.rsync_argv("h", "/home/u/out/12/", "/l/out/12", "/s/%C", "/cfg", exclude=[".owner"])
    assert argv[0] == "rsync" and "--stats" in argv and "--partial" in argv
    assert argv[-2:] == ["h:/home/u/out/12/", "/l/out/12/"]
    rsh = shlex.split(argv[argv.index("-e") + 1])
    assert rsh[0] == "ssh" and "ControlPath=/s/%C" in rsh and "-F" in rsh
    assert "--exclude=.owner" in argv


RSYNC_STATS = """
Number of files: 14 (reg: 12, dir: 2)
Number of created files: 3 (reg: 3)
Number of regular files transferred: 3
Total file size: 8,712,400 bytes
Total transferred file size: 8,500,000 bytes
Literal data: 8,500,000 bytes
Total bytes sent: 112
Total bytes received: 8,503,311

sent 112 bytes  received 8,503,311 bytes  5,669,082.00 bytes/sec
"""


def test_parse_rsync_stats():
    assert t.parse_rsync_stats(RSYNC_STATS) == {"bytes": 8503311, "files": 3, "size": 8500000}
    assert t.parse_rsync_stats("") == {}


def test_classify_unreachable_and_dropped():
    e = t.classify("gpu01", 255, "ssh: connect to host 10.0.0.9 port 22: Connection refused\r\n")
    assert isinstance(e, BackendError) and e.message.startswith("cannot reach gpu01: ssh: connect")
    e = t.classify("gpu01", 255, "ssh: Could not resolve hostname gpu01: Name or service not known\n")
    assert "cannot reach gpu01" in e.message and "\n" not in e.message
    e = t.classify("gpu01", 255, "Connection to 127.0.0.1 closed by remote host.\n")
    assert e.message.startswith("the connection to gpu01 dropped") and "status catches up" in e.hint
    assert t.classify("gpu01", 0, "warning: something") is None


def test_classify_crackops_missing():
    e = t.classify("h", 127, "bash: line 1: crackops: command not found\n")
    assert isinstance(e, BackendError)
    assert e.message == "crackops is not installed on h (the remote shell: bash: line 1: crackops: command not found)"
    assert "pip install" in e.hint


def test_classify_passes_the_remote_error_line_through_with_its_exit_code():
    e = t.classify("h", 3, "error: unknown job id '99'\nhint: see `crackops status` for the ids you have\n")
    assert isinstance(e, NotFoundError) and e.exit_code == 3
    assert e.message == "on h: unknown job id '99'" and e.hint == "see `crackops status` for the ids you have"
    e = t.classify("h", 4, "some warning\nerror: run 12 is still RUNNING\n")
    assert isinstance(e, StateError) and e.message == "on h: run 12 is still RUNNING"
    e = t.classify("h", 1, "Traceback (most recent call last):\n  ...\nOSError: [Errno 28] No space left on device\n")
    assert isinstance(e, BackendError) and e.message == "on h: crackops exited 1: OSError: [Errno 28] No space left on device"


def test_parse_json_refuses_a_chatty_login():
    assert t.parse_json("h", '{"a": 1}') == {"a": 1}
    try:
        t.parse_json("h", "Welcome to the cluster!\n")
    except BackendError as e:
        assert "not crackops' JSON" in e.message and "bashrc" in e.hint
    else:
        raise AssertionError("no error")
