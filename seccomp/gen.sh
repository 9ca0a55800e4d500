#!/bin/sh
# gen.sh — turn seccomp/ROLE.policy files into C filter tables.
#
#   seccomp/gen.sh [-r RESOLVER] -o OUT.c POLICY...
#
# Each POLICY file (seccomp/ROLE.policy; syntax in doc/sandbox.md) becomes
# one `struct sandbox_policy` of OUT.c (types in src/sandbox.h).  Every
# system call name is checked against libseccomp by RESOLVER (seccomp/
# resolve.c; compiled here with $CC when -r is not given): an unknown name,
# a syntax error or a rule without a `# reason` fails, and OUT.c is then not
# written.  Constants (AF_UNIX, F_GET_SEALS, ENOSYS...) are copied into OUT.c
# as C and resolved by the compiler; #line directives make its errors point
# at the policy line.
set -eu

usage() {
	echo "usage: $0 [-r RESOLVER] -o OUT.c POLICY..." >&2
	exit 2
}

out= resolver=
while getopts o:r: opt; do
	case $opt in
	o) out=$OPTARG ;;
	r) resolver=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ -n "$out" ] && [ $# -gt 0 ] || usage

here=$(dirname "$0")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/seccomp-gen.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

if [ -z "$resolver" ]; then
	resolver=$tmp/resolve
	# shellcheck disable=SC2046
	${CC:-cc} -o "$resolver" "$here/resolve.c" $(pkg-config --cflags --libs libseccomp) || {
		echo "$0: cannot build the syscall name resolver (libseccomp-dev missing?)" >&2
		exit 1
	}
fi

: > "$tmp/names"
awk -v names="$tmp/names" '
function err(msg) {
	printf "%s:%d: %s\n", FILENAME, FNR, msg > "/dev/stderr"
	bad = 1
}
function cstr(s) {
	gsub(/\\/, "\\\\", s)
	gsub(/"/, "\\\"", s)
	return "\"" s "\""
}
# A value: C identifiers and numbers joined by "|", copied into C as is.
function isvalue(v) {
	return v ~ /^([A-Za-z_][A-Za-z0-9_]*|0[xX][0-9A-Fa-f]+|0|[1-9][0-9]*)([|]([A-Za-z_][A-Za-z0-9_]*|0[xX][0-9A-Fa-f]+|0|[1-9][0-9]*))*$/
}
function close_role() {
	if (role == "")
		return
	if (nrules == 0)
		printf "%s: no rules: an empty allowlist is a mistake\n", rolefile > "/dev/stderr"
	if (nrules == 0)
		bad = 1
	print "};"
	print ""
}
FNR == 1 {
	close_role()
	role = FILENAME
	sub(/.*\//, "", role)
	rolefile = FILENAME
	if (role !~ /^[a-z][a-z0-9_]*\.policy$/) {
		err("a policy file is named ROLE.policy (ROLE: lower-case letters, digits, _)")
		role = "bad" NR
	} else
		sub(/\.policy$/, "", role)
	if (role in seenrole)
		err("role " role " defined twice")
	seenrole[role] = 1
	roles[++nroles] = role
	nrules = 0
	printf "static const struct sandbox_rule rules_%s[] = {\n", role
}
{
	line = $0
	gsub(/\t/, " ", line)
	why = ""
	if ((c = index(line, "#")) > 0) {
		why = substr(line, c + 1)
		line = substr(line, 1, c - 1)
	}
	n = split(line, t, " ")
	if (n == 0)
		next
	if (why !~ /[A-Za-z]/) {
		err("rule without a reason: end it with \"# why this call is needed\"")
		next
	}
	name = t[1]
	if (name !~ /^[a-z_][a-z0-9_]*$/) {
		err("\"" name "\" is not a system call name")
		next
	}
	# conditions: ARG [& MASK] OP VALUE | ARG [& MASK] in V1,V2,..., joined by "and"
	ncond = 0; errname = ""; i = 2; ok = 1
	split("", used)
	while (i <= n && ok) {
		if (t[i] == "=>") {
			errname = t[i + 1]
			if (errname !~ /^E[A-Z0-9]+$/ || i + 1 != n) {
				err("\"=> ENAME\" must end the rule, ENAME an errno name such as EACCES")
				ok = 0
			}
			break
		}
		if (ncond > 0) {
			if (t[i] != "and") {
				err("expected \"and\" or \"=>\" before \"" t[i] "\"")
				ok = 0
				break
			}
			i++
		}
		if (t[i] !~ /^arg[0-5]$/) {
			err("expected arg0..arg5, found \"" t[i] "\"")
			ok = 0
			break
		}
		a = substr(t[i], 4) + 0
		if (a in used) {
			err("arg" a " compared twice in one rule (libseccomp cannot): use \"in\" or two lines")
			ok = 0
			break
		}
		used[a] = 1
		i++
		mask = ""
		if (t[i] == "&") {
			mask = t[i + 1]
			if (!isvalue(mask)) {
				err("bad mask \"" mask "\"")
				ok = 0
				break
			}
			i += 2
		}
		op = t[i]; v = t[i + 1]
		if (i + 1 > n) {
			err("incomplete comparison")
			ok = 0
			break
		}
		ncond++
		if (op == "in") {
			nv = split(v, vs, ",")
			if (nv < 1) {
				err("\"in\" needs a list: V1,V2,... (no spaces)")
				ok = 0
				break
			}
		} else {
			nv = 1
			vs[1] = v
			if (op == "==") opn = "EQ"
			else if (op == "!=") opn = "NE"
			else if (op == "<") opn = "LT"
			else if (op == "<=") opn = "LE"
			else if (op == ">") opn = "GT"
			else if (op == ">=") opn = "GE"
			else {
				err("unknown operator \"" op "\" (== != < <= > >= in, or ARG & MASK == V)")
				ok = 0
				break
			}
			if (mask != "" && op != "==") {
				err("a masked comparison supports only == and in")
				ok = 0
				break
			}
		}
		alts[ncond] = nv
		for (k = 1; k <= nv; k++) {
			if (!isvalue(vs[k])) {
				err("bad value \"" vs[k] "\" (C constant names or numbers, joined by |)")
				ok = 0
				break
			}
			if (mask != "")
				cmp[ncond, k] = sprintf("{ %d, SANDBOX_CMP_MASKED_EQ, (uint64_t)(%s), (uint64_t)(%s) }", a, mask, vs[k])
			else if (op == "in")
				cmp[ncond, k] = sprintf("{ %d, SANDBOX_CMP_EQ, (uint64_t)(%s), 0 }", a, vs[k])
			else
				cmp[ncond, k] = sprintf("{ %d, SANDBOX_CMP_%s, (uint64_t)(%s), 0 }", a, opn, vs[k])
		}
		i += 2
	}
	if (!ok)
		next
	key = role SUBSEP name
	if (ncond == 0) {
		if (key in seen)
			err(name " already has rules on line " seen[key] ": an unconditional rule must be the only one")
		uncond[key] = FNR
	} else if (key in uncond)
		err(name " is allowed unconditionally on line " uncond[key] ": drop one of the lines")
	if (!(key in seen))
		seen[key] = FNR
	printf "%s %s\n", FILENAME ":" FNR, name > names
	# one rule per combination of the "in" alternatives
	total = 1
	for (k = 1; k <= ncond; k++)
		total *= alts[k]
	if (total > 64) {
		err("more than 64 combinations: split the rule")
		next
	}
	for (k = 1; k <= ncond; k++)
		idx[k] = 1
	for (r = 0; r < total; r++) {
		printf "#line %d %s\n", FNR, cstr(FILENAME)
		s = ""
		for (k = 1; k <= ncond; k++)
			s = s (k > 1 ? ", " : "") cmp[k, idx[k]]
		if (s == "")
			s = "{ 0, 0, 0, 0 }"
		printf "\t{ \"%s\", %s, %d, %d, { %s } },\n", name, errname == "" ? "0" : errname, FNR, ncond, s
		nrules++
		for (k = ncond; k >= 1; k--) {
			if (++idx[k] <= alts[k])
				break
			idx[k] = 1
		}
	}
}
END {
	close_role()
	print "const struct sandbox_policy sandbox_policies[] = {"
	for (k = 1; k <= nroles; k++)
		printf "\t{ \"%s\", rules_%s, sizeof(rules_%s) / sizeof(rules_%s[0]) },\n", roles[k], roles[k], roles[k], roles[k]
	print "};"
	printf "const size_t sandbox_npolicies = %d;\n", nroles
	exit bad
}
' "$@" > "$tmp/body.c" || exit 1

"$resolver" < "$tmp/names" || exit 1

{
	echo "/* generated by seccomp/gen.sh from $*; do not edit */"
	cat <<'EOF'
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <linux/futex.h>

EOF
	cat "$tmp/body.c"
} > "$out.tmp" && mv "$out.tmp" "$out"
