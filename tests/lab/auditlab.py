"""
auditlab.py -- an audit log for the lab (shared by the tests and the demo),
made at run time: the log's directory, a throwaway Ed25519 signing key and
its public half, and readers for what subproxy wrote.

AuditLog(work, user) makes, as root, a directory under /run (its parents are
root-owned and not writable by others, as the recorder's chroot needs)
owned by `user` (the recorder's: [server] recorder-user, RECORDER_USER in
the tests and the demo) with mode 0700; unprivileged, a directory in `work`.
.overrides() are the -o options that turn the log on, .section() the same
as an [audit] section; .records() the parsed lines of every file of the
log, oldest first; .remove() deletes it all.
"""

import base64
import json
import os
import pwd
import shutil
import subprocess
import tempfile

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

import dkimkeys

SIG_DOMAIN = b"subproxy-audit-log-v1\n"
# stands in for subproxy-recorder ([server] recorder-user) as root: an
# existing system user distinct from front's, signer's and keeper's
# (conftest.sandbox_server, labutil.sandbox_keys)
RECORDER_USER = "sys"


def write_key(path, key=None):
    """A PEM Ed25519 private key (mode 0600); returns the key object."""
    key = key or ed25519.Ed25519PrivateKey.generate()
    dkimkeys.write_private(path, key)
    return key


def public_pem(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def public_b64(key):
    raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def resign_checkpoint(line, key):
    """A checkpoint line signed again with another key (an attacker's)."""
    rec = json.loads(line)
    head = line[:line.rindex(',"sig":"')]
    head = head.replace('"key":"%s"' % rec["key"], '"key":"%s"' % public_b64(key))
    sig = key.sign(SIG_DOMAIN + head.encode())
    return head + ',"sig":"%s"}' % base64.b64encode(sig).decode()


class AuditLog:
    def __init__(self, work, user=RECORDER_USER, name="audit.log", small_fs=None,
                 inodes=None):
        """small_fs: a size ("256k"): the directory is a tmpfs of that size
        of its own (a disk that can be filled); needs root and mount.
        inodes: the tmpfs holds at most that many files (fill_inodes())."""
        self.work = str(work)
        self.mounted = False
        os.makedirs(self.work, exist_ok=True)
        if os.geteuid() == 0:
            self.dir = tempfile.mkdtemp(prefix="subproxy-audit.", dir="/run")
            pw = pwd.getpwnam(user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            if small_fs:
                opts = "size=%s,mode=0700,uid=%d,gid=%d" % (small_fs, pw.pw_uid, pw.pw_gid)
                if inodes:
                    opts += ",nr_inodes=%d" % inodes
                r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", self.dir],
                                   capture_output=True, text=True, check=False)
                self.mounted = r.returncode == 0
                self.mount_error = r.stderr.strip()
        else:
            self.dir = tempfile.mkdtemp(prefix="audit.", dir=self.work)
        os.chmod(self.dir, 0o700)
        self.log = os.path.join(self.dir, name)
        self.key_file = os.path.join(self.work, "audit-signing.key")
        self.key = write_key(self.key_file)
        self.pub_file = os.path.join(self.work, "audit-signing.pub")
        with open(self.pub_file, "wb") as f:
            f.write(public_pem(self.key))
        self.extra = {}

    def overrides(self, **more):
        kv = {"log": self.log, "signing-key": self.key_file}
        kv.update(self.extra)
        kv.update(more)
        return ["audit.%s=%s" % (k, v) for k, v in kv.items()]

    def section(self, **more):
        kv = {"log": self.log, "signing-key": self.key_file}
        kv.update(self.extra)
        kv.update(more)
        return "[audit]\n" + "".join("%s = %s\n" % (k, v) for k, v in kv.items())

    def files(self):
        """Every file of the log (rotated ones too), oldest first."""
        base = os.path.basename(self.log)
        names = [n for n in os.listdir(self.dir) if n == base or
                 (n.startswith(base + ".") and not n.startswith(base + ".head"))]
        paths = [os.path.join(self.dir, n) for n in names]

        def first_seq(p):
            with open(p, "rb") as f:
                line = f.readline()
            try:
                return json.loads(line)["seq"]
            except ValueError:
                return 1 << 62
        return sorted(paths, key=first_seq)

    def lines(self):
        out = []
        for p in self.files():
            with open(p, "rb") as f:
                out.extend(f.read().decode("utf-8").splitlines())
        return out

    def records(self):
        return [json.loads(ln) for ln in self.lines()]

    def fill(self):
        """Fill the small file system up (ENOSPC for the log from now on)."""
        fd = os.open(os.path.join(self.dir, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while os.write(fd, b"\0" * 4096) > 0:
                pass
        except OSError:
            pass
        finally:
            os.close(fd)

    def unfill(self):
        os.unlink(os.path.join(self.dir, "filler"))

    def fill_inodes(self, most=10000):
        """Take every free inode of the small file system (ENOSPC for a new
        file from now on); returns how many files that took."""
        n = 0
        try:
            while n < most:
                os.close(os.open(os.path.join(self.dir, "inode%d" % n),
                                 os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                n += 1
        except OSError:
            pass
        return n

    def unfill_inodes(self):
        for name in os.listdir(self.dir):
            if name.startswith("inode"):
                os.unlink(os.path.join(self.dir, name))

    def remove(self):
        if self.mounted:
            # lazily: a daemon still running (stopped later) keeps it busy
            subprocess.run(["umount", "-l", self.dir], check=False)
        shutil.rmtree(self.dir, ignore_errors=True)
