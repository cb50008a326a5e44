#include "rds.h"

#include "errbuf.h"
#include "log.h"
#include "rscript.h"
#include "rslot.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int copy_part(CURLU *u, CURLUPart part, char *dst, size_t cap, int decode)
{
	char *v = NULL;
	dst[0] = '\0';
	if (curl_url_get(u, part, &v, decode ? CURLU_URLDECODE : 0) != CURLUE_OK)
		return 0; /* absent */
	size_t n = strlen(v);
	int rc = n < cap ? 0 : -1;
	if (rc == 0)
		memcpy(dst, v, n + 1);
	curl_free(v);
	return rc;
}

int rds_parse_url(const char *url, struct rds_target *t, char *err, size_t errlen)
{
	memset(t, 0, sizeof *t);
	strcpy(t->host, "127.0.0.1");
	t->port = 6379;
	if (!url || !*url)
		return 0;
	if (strncmp(url, "unix://", 7) == 0) {
		size_t n = strlen(url + 7);
		if (n == 0 || n >= sizeof t->socket) {
			snprintf(err, errlen, "REDIS_URL: bad socket path");
			return -1;
		}
		memcpy(t->socket, url + 7, n + 1);
		return 0;
	}
	int rc = -1;
	char scheme[16], portstr[16], path[64];
	CURLU *u = curl_url();
	if (!u) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK) {
		snprintf(err, errlen, "REDIS_URL is not a URL: %s", url);
		goto out;
	}
	if (copy_part(u, CURLUPART_SCHEME, scheme, sizeof scheme, 0) < 0 ||
	    strcmp(scheme, "redis") != 0) {
		snprintf(err, errlen, "REDIS_URL must start with redis:// or unix://");
		goto out;
	}
	if (copy_part(u, CURLUPART_HOST, t->host, sizeof t->host, 0) < 0 || !t->host[0] ||
	    copy_part(u, CURLUPART_PASSWORD, t->password, sizeof t->password, 1) < 0 ||
	    copy_part(u, CURLUPART_PORT, portstr, sizeof portstr, 0) < 0 ||
	    copy_part(u, CURLUPART_PATH, path, sizeof path, 0) < 0) {
		snprintf(err, errlen, "REDIS_URL has a bad part: %s", url);
		goto out;
	}
	/* IPv6 literals come back bracketed */
	size_t hl = strlen(t->host);
	if (hl > 2 && t->host[0] == '[' && t->host[hl - 1] == ']') {
		memmove(t->host, t->host + 1, hl - 2);
		t->host[hl - 2] = '\0';
	}
	if (portstr[0])
		t->port = atoi(portstr);
	if (t->port <= 0 || t->port > 65535) {
		snprintf(err, errlen, "REDIS_URL has a bad port");
		goto out;
	}
	if (path[0] && strcmp(path, "/") != 0) {
		char *end;
		long db = strtol(path + 1, &end, 10);
		if (*end || db < 0 || db > 1000) {
			snprintf(err, errlen, "REDIS_URL has a bad database number");
			goto out;
		}
		t->db = (int)db;
	}
	rc = 0;
out:
	curl_url_cleanup(u);
	return rc;
}

redisContext *rds_connect(const struct rds_target *t, int timeout_ms, char *err, size_t errlen)
{
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	redisContext *c = t->socket[0] ? redisConnectUnixWithTimeout(t->socket, tv)
				       : redisConnectWithTimeout(t->host, t->port, tv);
	redisReply *r = NULL;
	if (!c) {
		snprintf(err, errlen, "redis: out of memory");
		return NULL;
	}
	if (c->err) {
		snprintf(err, errlen, "redis: %s", c->errstr);
		goto fail;
	}
	if (redisSetTimeout(c, tv) != REDIS_OK) {
		snprintf(err, errlen, "redis: cannot set timeout");
		goto fail;
	}
	if (t->password[0]) {
		r = redisCommand(c, "AUTH %s", t->password);
		if (!r || r->type == REDIS_REPLY_ERROR) {
			snprintf(err, errlen, "redis: AUTH failed");
			goto fail;
		}
		freeReplyObject(r);
		r = NULL;
	}
	if (t->db) {
		r = redisCommand(c, "SELECT %d", t->db);
		if (!r || r->type == REDIS_REPLY_ERROR) {
			snprintf(err, errlen, "redis: SELECT %d failed", t->db);
			goto fail;
		}
		freeReplyObject(r);
	}
	return c;
fail:
	if (r)
		freeReplyObject(r);
	redisFree(c);
	return NULL;
}

redisReply *rds_script(redisContext *c, const struct rscript *s, int nkeys, int argc,
		       const char *const *args, const size_t *lens)
{
	const char *argv[RDS_SCRIPT_MAX_ARGS + 3];
	size_t lv[RDS_SCRIPT_MAX_ARGS + 3];
	char nk[16];
	if (argc < 0 || argc > RDS_SCRIPT_MAX_ARGS || nkeys < 0 || nkeys > argc)
		return NULL;
	/* Redis Cluster runs a script only when all its KEYS share one slot: refuse such a call
	 * here, on a single server too, so every test catches it (docs/INTERNALS.md, "Redis
	 * Cluster: one slot per script") */
	for (int i = 1; i < nkeys; i++)
		if (rslot_of(args[i], lens ? lens[i] : strlen(args[i])) !=
		    rslot_of(args[0], lens ? lens[0] : strlen(args[0]))) {
			log_error("script %s: KEYS[1] and KEYS[%d] hash to two slots", s->name, i + 1);
			return NULL;
		}
	snprintf(nk, sizeof nk, "%d", nkeys);
	argv[0] = "EVALSHA";
	argv[1] = s->sha;
	argv[2] = nk;
	for (int i = 0; i < argc; i++) {
		argv[3 + i] = args[i];
		lv[3 + i] = lens ? lens[i] : strlen(args[i]);
	}
	lv[0] = 7;
	lv[1] = strlen(s->sha);
	lv[2] = strlen(nk);
	redisReply *r = redisCommandArgv(c, argc + 3, argv, lv);
	if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
		freeReplyObject(r);
		argv[0] = "EVAL";
		lv[0] = 4;
		argv[1] = s->text;
		lv[1] = strlen(s->text);
		r = redisCommandArgv(c, argc + 3, argv, lv);
	}
	return r;
}

int rds_reply_failed(redisContext *r, redisReply *rep, char *err, size_t errlen)
{
	if (!rep) {
		errbuf_set(err, errlen, "redis: %s", r->errstr[0] ? r->errstr : "no reply");
		return 1;
	}
	if (rep->type == REDIS_REPLY_ERROR) {
		errbuf_set(err, errlen, "redis: %.*s", (int)rep->len, rep->str);
		freeReplyObject(rep);
		return 1;
	}
	return 0;
}
