"""
labutil.py -- small helpers shared by the demo and the benchmarks.
"""

import os
import socket
import tempfile


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sandbox_keys(work):
    """[server] keys for running subproxy here.  As root, front, signer and
    keeper chroot and drop privileges: give them an empty root-owned
    directory (under /run: no world-writable parent) and four distinct
    existing users (nobody; daemon, bin and sys stand in for subproxy-signer,
    subproxy-keeper and subproxy-recorder); remove_chroot(work) removes it
    again.  Unprivileged:
    nothing is needed."""
    if os.geteuid() != 0:
        return ""
    d = tempfile.mkdtemp(prefix="subproxy-chroot.", dir="/run")
    os.chmod(d, 0o755)
    with open(os.path.join(work, ".chroot"), "w") as f:
        f.write(d)
    return ("user = nobody\nsigner-user = daemon\nkeeper-user = bin\nrecorder-user = sys\n"
            "chroot = %s\n" % d)


def remove_chroot(work):
    try:
        with open(os.path.join(work, ".chroot")) as f:
            os.rmdir(f.read())
    except OSError:
        pass
