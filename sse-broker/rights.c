#include "rights.h"

#include "rkeys.h"
#include "rscript.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int rights_subject_cmp(const void *a, const void *b)
{
	const struct rights_subject *x = a, *y = b;
	if (x->user_id != y->user_id)
		return x->user_id < y->user_id ? -1 : 1;
	if (x->gen != y->gen)
		return x->gen < y->gen ? -1 : 1;
	return strcmp(x->sid, y->sid);
}

size_t rights_subjects_unique(struct rights_subject *v, size_t n)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof *v, rights_subject_cmp);
	size_t k = 1;
	for (size_t i = 1; i < n; i++)
		if (rights_subject_cmp(&v[i], &v[k - 1]) != 0)
			v[k++] = v[i];
	return k;
}

/* The script's answers (lib/access.c): one verdict each; anything else is unknown. */
static const struct {
	const char *answer;
	enum rights_verdict verdict;
} answers[] = {
	{"owner", RIGHTS_READ},	  {"editor", RIGHTS_READ},   {"viewer", RIGHTS_READ},
	{"public", RIGHTS_READ},  {"", RIGHTS_DENIED},	    {"revoked", RIGHTS_REVOKED},
	{"gone", RIGHTS_NO_ROOM},
};

enum rights_verdict rights_verdict_of(const char *answer, size_t len)
{
	for (size_t i = 0; i < sizeof answers / sizeof answers[0]; i++)
		if (strlen(answers[i].answer) == len && memcmp(answers[i].answer, answer, len) == 0)
			return answers[i].verdict;
	return RIGHTS_UNKNOWN;
}

int rights_access_message(const char *msg, size_t len, struct rights_access *a)
{
	int rc = -1;
	memset(a, 0, sizeof *a);
	cJSON *o = cJSON_ParseWithLength(msg, len);
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(o, "user");
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "room");
	if (!cJSON_IsObject(o) || (u != NULL) == (r != NULL))
		goto out;
	if (u) {
		/* user ids are positive integers well inside a double's exact range */
		if (cJSON_IsNumber(u) && u->valuedouble >= 1 &&
		    u->valuedouble <= 9007199254740991.0 &&
		    u->valuedouble == (double)(long long)u->valuedouble) {
			a->user_id = (long long)u->valuedouble;
			rc = 0;
		}
		goto out;
	}
	if (!cJSON_IsString(r) || !r->valuestring || memchr(msg, '\\', len) || memchr(msg, 0, len))
		goto out;
	size_t n = strlen(r->valuestring);
	if (!id_valid(r->valuestring, n))
		goto out;
	memcpy(a->room, r->valuestring, n + 1);
	rc = 0;
out:
	cJSON_Delete(o);
	return rc;
}

/* Copies a key into the command's storage; NULL when it does not fit (never cut short). */
static const char *put_text(struct rights_cmd *cmd, size_t *t, struct rkey k)
{
	size_t len = strlen(k.s);
	if (len == 0 || len >= RIGHTS_TEXT_MAX)
		return NULL;
	memcpy(cmd->text[*t], k.s, len + 1);
	return cmd->text[(*t)++];
}

/* Appends a key to the script's arguments; -1 when it does not fit. */
static int put_key(struct rights_cmd *cmd, size_t *a, size_t *t, struct rkey k)
{
	const char *s = put_text(cmd, t, k);
	if (!s)
		return -1;
	cmd->argv[(*a)++] = s;
	return 0;
}

int rights_cmd_build(struct rights_cmd *cmd, const char *room_id, const struct rights_subject *v,
		     size_t n)
{
	memset(cmd, 0, sizeof *cmd);
	if (n == 0 || n > RIGHTS_BATCH)
		return -1;
	/* EVALSHA sha 2 members visibility uid*n; then the subjects' keys, 2 per subject */
	size_t argc = 5 + n, ntext = 3 + 3 * n;
	cmd->argv = calloc(argc, sizeof *cmd->argv);
	cmd->skey = calloc(n, sizeof *cmd->skey);
	cmd->gkey = calloc(n, sizeof *cmd->gkey);
	cmd->text = calloc(ntext, sizeof *cmd->text);
	if (!cmd->argv || !cmd->skey || !cmd->gkey || !cmd->text)
		return -1;
	size_t a = 0, t = 0;
	cmd->argv[a++] = "EVALSHA";
	cmd->argv[a++] = rs_access_stream.sha;
	snprintf(cmd->text[t], RIGHTS_TEXT_MAX, "2");
	cmd->argv[a++] = cmd->text[t++];
	if (put_key(cmd, &a, &t, rkey1(RK_ROOM_MEMBERS, room_id)) < 0 ||
	    put_key(cmd, &a, &t, rkey1(RK_ROOM_VISIBILITY, room_id)) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		snprintf(cmd->text[t], RIGHTS_TEXT_MAX, "%lld", v[i].user_id);
		cmd->argv[a++] = cmd->text[t++];
	}
	cmd->argc = (int)a;
	for (size_t i = 0; i < n; i++)
		if (!(cmd->skey[i] = put_text(cmd, &t, rkey1(RK_SESSION_REVOKED, v[i].sid))) ||
		    !(cmd->gkey[i] = put_text(cmd, &t, rkey_id(RK_USER_TOKGEN, v[i].user_id))))
			return -1;
	cmd->n = n;
	return 0;
}

void rights_cmd_free(struct rights_cmd *cmd)
{
	free(cmd->argv);
	free(cmd->skey);
	free(cmd->gkey);
	free(cmd->text);
	memset(cmd, 0, sizeof *cmd);
}

int rights_subject_revoked(const redisReply *exists, const redisReply *gen, long long token_gen)
{
	if (!exists || !gen || exists->type != REDIS_REPLY_INTEGER ||
	    (gen->type != REDIS_REPLY_NIL && gen->type != REDIS_REPLY_STRING))
		return -1;
	if (exists->integer != 0)
		return 1;
	long long cur = 0;
	if (gen->type == REDIS_REPLY_STRING) {
		char *end;
		cur = strtoll(gen->str, &end, 10);
		if (end == gen->str || *end != '\0')
			cur = 0; /* what the script did with a value that is not a number */
	}
	return token_gen < cur;
}
