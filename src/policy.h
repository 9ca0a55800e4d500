/*
 * policy.h — the files of policy/ (signed header list, audit profiles),
 * compiled into the binary at build time so that no process needs to open
 * them at run time and the installed binary cannot disagree with them.
 */
#ifndef SUBPROXY_POLICY_H
#define SUBPROXY_POLICY_H

#include <stddef.h>

/* The content of policy/NAME, or NULL when there is no such file.
 * *len_r (may be NULL) gets its length; the text is NUL-terminated. */
const char *policy_get(const char *name, size_t *len_r);

#endif
