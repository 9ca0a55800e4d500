"""
The command line: --version, --help, bad options, configuration errors
naming file:line (exit 2), -o overrides, --hash-password.
"""

import re
import subprocess

from conftest import REPO, subproxy_binary


def run(*args, stdin=b""):
    return subprocess.run([subproxy_binary(), *args], input=stdin, capture_output=True,
                          timeout=60, check=False)


def test_version_and_help():
    r = run("--version")
    assert r.returncode == 0 and re.fullmatch(rb"subproxy \d+\.\d+\.\d+\n", r.stdout), r
    r = run("--help")
    assert r.returncode == 0 and b"--check" in r.stdout and b"-o SECTION.KEY=VALUE" in r.stdout


def test_bad_usage_exits_2():
    for args in (["--nonsense"], [], ["-c"], ["-c", "x.conf", "extra"], ["--json", "-c", "x"],
                 ["-c", "x.conf", "-o", "novalue"]):
        r = run(*args)
        assert r.returncode == 2, (args, r)
        assert r.stderr, args


def test_config_errors_name_file_and_line(tmp_path):
    conf = tmp_path / "bad.conf"
    lines = open(REPO / "contrib" / "subproxy.conf.example").read().split("\n")
    n = lines.index("#recipients = 100")
    lines[n] = "recipients = many"
    conf.write_text("\n".join(lines))
    r = run("-c", str(conf))
    assert r.returncode == 2
    assert ("%s:%d: bad value 'many' for 'recipients'" % (conf, n + 1)).encode() in r.stderr, \
        r.stderr
    r = run("-c", str(tmp_path / "missing.conf"))
    assert r.returncode == 2 and b"missing.conf: cannot open" in r.stderr
    # an override is checked like a file line
    conf.write_text("[server]\nhostname = mail.lab.test\n")
    r = run("-c", str(conf), "-o", "limits.nonsense=1")
    assert r.returncode == 2 and b"command line override: unknown key 'nonsense'" in r.stderr


def test_hash_password_format():
    r = run("--hash-password", stdin=b"secret\n")
    assert r.returncode == 0
    assert re.fullmatch(rb"\{ARGON2ID\}\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+"
                        rb"\$[A-Za-z0-9+/]+\n", r.stdout), r.stdout
    assert run("--hash-password", stdin=b"").returncode == 1
