/* config_int.h — what the parts of the configuration reader share (private to
 * config.c, config_parse.c, config_check.c and config_sender.c): the entries
 * the tokenizer produced, the parse state with its error buffer, and the
 * typed getters the validators use.  Other modules use config.h. */
#ifndef CONFIG_INT_H
#define CONFIG_INT_H

#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* How a value is read (get_num_in() and friends). */
enum kind { K_STR, K_UINT, K_SIZE, K_RATE, K_TIME, K_ENUM, K_LIST };  /* K_RATE: octets/s */

struct entry {
	char *section, *name, *key, *value;
	int line;              /* 0: from an override */
	int used;
};

struct sect {
	char *section, *name;
	int line;
};

struct parse {
	const char *file;
	struct entry *e;
	size_t ne;
	struct sect *s;
	size_t ns;
	char *err;
	size_t errlen;
};

/* config_parse.c */
/* The error "FILE:LINE: what" (line 0: the -o override) into p->err. */
void perr(struct parse *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int same_name(const char *a, const char *b);
const char *skip_ws(const char *s);
struct sect *sect_lookup(struct parse *p, const char *section, const char *name);
int tokenize(struct parse *p, const char *buf, size_t len);
int apply_override(struct parse *p, const struct config_override *o);
/* The getters read the entry of a key (name: the section's name for a named
 * section, else NULL), mark it used and convert it.  Each returns 0 (a
 * missing optional key leaves *out alone), or -1 with p->err set by perr(). */
int get1(struct parse *p, const char *sect, const char *name, const char *key,
    struct entry **e_r);
int get_str(struct parse *p, const char *sect, const char *name, const char *key, int required,
    int line, char **out);
int get_num_in(struct parse *p, const char *sect, const char *name, const char *key,
    uint64_t min, uint64_t max, enum kind kind, uint64_t *out);
int get_num(struct parse *p, const char *sect, const char *key, uint64_t min, uint64_t max,
    enum kind kind, uint64_t *out);
int get_bool(struct parse *p, const char *sect, const char *name, const char *key, int *out);
int valid_hostname(const char *h);
int get_hostname(struct parse *p, const char *sect, const char *name, const char *key,
    int required, int line, char **out);
int get_tls_mode(struct parse *p, const char *sect, const char *name, int line, int required,
    enum tls_mode *out);
int parse_hostport(const char *s, struct sockaddr_storage *ss, socklen_t *len, int *port);
int get_yesno(struct parse *p, const char *sect, const char *key, int *out);
int key_line(struct parse *p, const char *sect, const char *key);
/* 1 when key is in sect (file or -o), 0 when it takes its default. */
int key_set(struct parse *p, const char *sect, const char *key);
/* The line to name when key and other (both in sect) contradict each
 * other: key's when it is set, else other's, which then is (0: -o). */
int pair_line(struct parse *p, const char *sect, const char *key, const char *other);

/* config_check.c: every section into cfg; 0, or -1 with p->err set. */
int validate(struct parse *p, struct config *cfg);

/* config_sender.c: [senders] into cfg; 0, or -1 with p->err set. */
int check_senders(struct parse *p, struct config *cfg);

#endif
