/*
 * auditlog_cli.h — `subproxy --verify-log` and `subproxy --report`: read the
 * files of an audit log (in the order of their first record, whatever order
 * they are given in), verify them (auditlog_verify.h) and print the verdict
 * or the compliance report (auditlog_report.h) on stdout.
 */
#ifndef SUBPROXY_AUDITLOG_CLI_H
#define SUBPROXY_AUDITLOG_CLI_H

#include <stddef.h>
#include <stdint.h>

enum alog_format { ALOG_FMT_TEXT, ALOG_FMT_JSON, ALOG_FMT_HTML };

struct alog_cli {
	char **files;
	size_t nfiles;
	char **pubkeys;			/* --public-key FILE ... */
	size_t npubkeys;
	int64_t since, until;		/* ms, 0 = open */
	enum alog_format format;
};

/* Exit status: 0 the log is intact, 1 it is not (the first bad record is
 * named), 2 a file or key cannot be read (message on stderr). */
int alog_cli_verify(const struct alog_cli *o);

/* Exit status: 0 intact and every promise kept, 1 otherwise (the report is
 * printed either way), 2 a file or key cannot be read. */
int alog_cli_report(const struct alog_cli *o);

#endif
