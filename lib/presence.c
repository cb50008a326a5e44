#include "presence.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <string.h>

#include "jsoncheck.h"

/* Twelve colours that stay readable on light and dark editor themes. */
static const char *const presence_palette[PRESENCE_PALETTE_SIZE] = {
	"#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4",
	"#f032e6", "#9a6324", "#469990", "#800000", "#808000", "#000075",
};

const char *presence_color(long long user_id)
{
	/* a multiplicative mix so consecutive ids do not get neighbouring colours */
	uint64_t x = (uint64_t)user_id * UINT64_C(0x9E3779B97F4A7C15);
	x ^= x >> 29;
	return presence_palette[x % PRESENCE_PALETTE_SIZE];
}

static cJSON *user_object(long long user_id, const char *username)
{
	cJSON *u = cJSON_CreateObject();
	if (!u || !cJSON_AddNumberToObject(u, "id", (double)user_id) ||
	    !cJSON_AddStringToObject(u, "username", username ? username : "")) {
		cJSON_Delete(u);
		return NULL;
	}
	return u;
}

char *presence_data_json(long long user_id, const char *username, long long cursor,
			 int has_selection, long long anchor, long long head)
{
	char *out = NULL;
	cJSON *o = cJSON_CreateObject();
	cJSON *u = user_object(user_id, username);
	if (!o || !u)
		goto out;
	cJSON_AddItemToObject(o, "user", u);
	u = NULL;
	if (!cJSON_AddNumberToObject(o, "cursor", (double)cursor))
		goto out;
	if (has_selection) {
		cJSON *s = cJSON_AddObjectToObject(o, "selection");
		if (!s || !cJSON_AddNumberToObject(s, "anchor", (double)anchor) ||
		    !cJSON_AddNumberToObject(s, "head", (double)head))
			goto out;
	} else if (!cJSON_AddNullToObject(o, "selection")) {
		goto out;
	}
	if (!cJSON_AddStringToObject(o, "color", presence_color(user_id)))
		goto out;
	out = cJSON_PrintUnformatted(o);
out:
	cJSON_Delete(u);
	cJSON_Delete(o);
	return out;
}

/* a number a cursor position can be: 0..PRESENCE_CURSOR_MAX */
static int position(const cJSON *n, long long *out)
{
	if (!cJSON_IsNumber(n) || !(n->valuedouble >= 0) ||
	    n->valuedouble > (double)PRESENCE_CURSOR_MAX)
		return -1;
	*out = (long long)n->valuedouble;
	return 0;
}

int presence_msg_parse(const char *msg, size_t len, struct presence_msg *out)
{
	memset(out, 0, sizeof *out);
	/* strict: a message other readers would parse differently, or that carries raw control
	 * bytes, is not presence */
	cJSON *o = jsoncheck_parse(msg, len, NULL);
	int ok = 0;
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(o, "type");
	if (!cJSON_IsString(type) || strcmp(type->valuestring, "presence") != 0)
		goto out;
	if (position(cJSON_GetObjectItemCaseSensitive(o, "cursor"), &out->cursor) < 0)
		goto out;
	const cJSON *sel = cJSON_GetObjectItemCaseSensitive(o, "selection");
	if (cJSON_IsObject(sel)) {
		if (position(cJSON_GetObjectItemCaseSensitive(sel, "anchor"), &out->anchor) < 0 ||
		    position(cJSON_GetObjectItemCaseSensitive(sel, "head"), &out->head) < 0)
			goto out;
		out->has_selection = 1;
	}
	const cJSON *room = cJSON_GetObjectItemCaseSensitive(o, "room");
	if (cJSON_IsString(room) && strlen(room->valuestring) <= PRESENCE_ROOM_MAX)
		strcpy(out->room, room->valuestring);
	ok = 1;
out:
	cJSON_Delete(o);
	if (!ok)
		memset(out, 0, sizeof *out);
	return ok;
}
