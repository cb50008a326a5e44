#include "rkeys.h"

#include "log.h"

#include <stdio.h>
#include <string.h>

static const char *const patterns[RK__COUNT] = {
#define RK(name, pattern) [RK_##name] = pattern,
#include "rkeys.def"
#undef RK
};

static const char *const names[RK__COUNT] = {
#define RK(name, pattern) [RK_##name] = #name,
#include "rkeys.def"
#undef RK
};

const char *rkey_pattern(enum rk id)
{
	return (unsigned)id < RK__COUNT ? patterns[id] : NULL;
}

const char *rkey_name(enum rk id)
{
	return (unsigned)id < RK__COUNT ? names[id] : NULL;
}

int rkey_arity(enum rk id)
{
	const char *p = rkey_pattern(id);
	int n = 0;
	for (; p && *p; p++)
		if (*p == '<')
			n++;
	return n;
}

struct rkey rkey_fill(enum rk id, int argc, const char *const *argv)
{
	struct rkey k;
	const char *p = rkey_pattern(id);
	size_t o = 0;
	int used = 0;
	k.s[0] = '\0';
	if (!p || rkey_arity(id) != argc) {
		log_error("rkeys: %s takes %d ids, given %d", p ? names[id] : "?", rkey_arity(id),
			  argc);
		return k;
	}
	while (*p) {
		const char *piece = p;
		size_t len = 1;
		if (*p == '<') {
			const char *end = strchr(p, '>');
			piece = argv[used] ? argv[used] : "";
			used++;
			len = strlen(piece);
			p = end + 1;
		} else {
			p++;
		}
		if (o + len >= sizeof k.s) {
			log_error("rkeys: a %s name would be longer than %d bytes", names[id],
				  RKEY_MAX - 1);
			k.s[0] = '\0';
			return k;
		}
		memcpy(k.s + o, piece, len);
		o += len;
	}
	k.s[o] = '\0';
	return k;
}

const char *rkey0(enum rk id)
{
	if (rkey_arity(id) != 0) {
		log_error("rkeys: %s needs ids", rkey_name(id) ? rkey_name(id) : "?");
		return "";
	}
	return patterns[id];
}

struct rkey rkey1(enum rk id, const char *a)
{
	const char *v[] = {a};
	return rkey_fill(id, 1, v);
}

struct rkey rkey2(enum rk id, const char *a, const char *b)
{
	const char *v[] = {a, b};
	return rkey_fill(id, 2, v);
}

struct rkey rkey_id(enum rk id, long long n)
{
	char num[24];
	snprintf(num, sizeof num, "%lld", n);
	return rkey1(id, num);
}

int rkey1_into(enum rk id, const char *a, char *out, size_t cap)
{
	struct rkey k = rkey1(id, a);
	size_t n = strlen(k.s);
	if (cap == 0)
		return -1;
	if (n == 0 || n >= cap) {
		out[0] = '\0';
		return -1;
	}
	memcpy(out, k.s, n + 1);
	return 0;
}

int rkey_ok(const struct rkey *k)
{
	return k->s[0] != '\0';
}

int rkey_match1(enum rk id, const char *name, char *out, size_t cap)
{
	const char *p = rkey_pattern(id);
	if (!p || rkey_arity(id) != 1 || !name || cap == 0)
		return -1;
	const char *open = strchr(p, '<'), *close = strchr(p, '>');
	size_t pre = (size_t)(open - p), post = strlen(close + 1), n = strlen(name);
	if (n <= pre + post || strncmp(name, p, pre) != 0 ||
	    strcmp(name + n - post, close + 1) != 0)
		return -1;
	size_t len = n - pre - post;
	if (len >= cap)
		return -1;
	memcpy(out, name + pre, len);
	out[len] = '\0';
	return 0;
}
