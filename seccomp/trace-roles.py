#!/usr/bin/python3
"""trace-roles.py -- which system calls each subproxy role makes after its
seccomp filter is loaded, compared with seccomp/ROLE.policy.

Collect traces with one file per process and thread, timestamps on:

    strace -f -ff -ttt -qq -o /tmp/sp/t subproxy -c subproxy.conf
    (for the test suite: SUBPROXY=a wrapper that runs the line above with
     -o /tmp/sp/t.$$, then tests/run-all.sh or pytest)

then:

    seccomp/trace-roles.py /tmp/sp [seccomp]

For each role (front, signer, keeper, recorder: from prctl(PR_SET_NAME,
"subproxy-ROLE"), cut to 15 characters by the kernel;
parent: the process that called execve) it prints every call made after the
filter was loaded -- seccomp(SECCOMP_SET_MODE_FILTER, ...) = 0 -- in the
process and in its threads, with a count and a first example, marking calls
the role's policy does not name ("NOT IN POLICY") and policy entries never
seen ("unused" -- unused in this run, which may still be needed on rare
paths: read the reason in the policy before removing anything).
"""

import collections
import glob
import os
import re
import sys

CALL = re.compile(r"([a-z_0-9]+)\(")
CLONE = re.compile(r"[\d.]+ (clone3?)\((.*)\) = (\d+)$")


def load(directory):
    procs = {}
    for path in glob.glob(os.path.join(directory, "*")):
        parts = path.rsplit(".", 2)
        if len(parts) < 2 or not parts[-1].isdigit():
            continue
        key = (parts[0] if len(parts) == 2 else parts[0] + "." + parts[1], int(parts[-1]))
        with open(path, errors="replace") as f:
            lines = f.read().splitlines()
        role = None
        for line in lines:
            m = re.search(r'PR_SET_NAME, "subproxy-([a-z]+)"', line)
            if m:
                role = m.group(1)
                break
            if " execve(" in line and role is None:
                role = "parent"
        procs[key] = {"lines": lines, "role": role}
    return procs


def policy_names(policy_dir, role):
    names = set()
    path = os.path.join(policy_dir, role + ".policy")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].split()
            if line:
                names.add(line[0])
    return names


def full_role(policy_dir, role):
    """A process name holds 15 characters: "subproxy-record" is the
    recorder.  The role whose policy file name starts with the cut name."""
    if role is None or os.path.exists(os.path.join(policy_dir, role + ".policy")):
        return role
    names = [f[:-len(".policy")] for f in os.listdir(policy_dir)
             if f.startswith(role) and f.endswith(".policy")]
    return names[0] if len(names) == 1 else role


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    procs = load(sys.argv[1])
    policy_dir = sys.argv[2] if len(sys.argv) == 3 else os.path.dirname(os.path.abspath(__file__))
    for p in procs.values():
        p["role"] = full_role(policy_dir, p["role"])
    owner = {}
    for key, p in procs.items():
        for line in p["lines"]:
            m = CLONE.match(line)
            if m and "CLONE_THREAD" in m.group(2):
                owner[(key[0], int(m.group(3)))] = key
    start = {}
    for key, p in procs.items():
        for line in p["lines"]:
            if "seccomp(SECCOMP_SET_MODE_FILTER" in line and line.endswith("= 0"):
                start[key] = float(line.split(" ", 1)[0])
                break
    calls = collections.defaultdict(collections.Counter)
    example = collections.defaultdict(dict)
    for key, p in procs.items():
        top = key
        while top in owner:
            top = owner[top]
        role = procs.get(top, {}).get("role")
        if role is None or top not in start:
            continue
        for line in p["lines"]:
            ts, _, rest = line.partition(" ")
            try:
                if float(ts) <= start[top]:
                    continue
            except ValueError:
                continue
            m = CALL.match(rest)
            if m:
                calls[role][m.group(1)] += 1
                example[role].setdefault(m.group(1), rest[:120])
    for role in sorted(calls):
        allowed = policy_names(policy_dir, role)
        print("== %s" % role)
        for name, n in sorted(calls[role].items()):
            mark = "" if allowed is None or name in allowed else "   <-- NOT IN POLICY"
            print("  %-18s %8d  %s%s" % (name, n, example[role][name], mark))
        if allowed is not None:
            unused = sorted(allowed - set(calls[role]))
            if unused:
                print("  unused in this run: %s" % " ".join(unused))


if __name__ == "__main__":
    main()
