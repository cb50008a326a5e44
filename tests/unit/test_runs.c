/* Who ran a run, the room's list of runs and who typed a saved change: the pure parts.
 * jobs_parse_limit (fcgi/h_jobs.c) reads GET /api/rooms/{id}/executions' query, outside
 * input; jobstate_event_extra (lib/jobstate.c) is what every event of a job carries, with
 * the stdin cut at a character boundary; doc_batch_stats (lib/store_doc.c) counts a saved
 * batch's authors and characters. */
#include "../../fcgi/handlers.h"
#include "jobstate.h"
#include "store_doc.h"
#include "unit.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static int limit_of(const char *q)
{
	int n = -7;
	const char *why = NULL;
	if (jobs_parse_limit(q, &n, &why) < 0) {
		CHECK(why != NULL && (strstr(why, "limit") || strstr(why, "percent escape")));
		return -1;
	}
	return n;
}

static void test_limit(void)
{
	CHECK(limit_of("") == 10);
	CHECK(limit_of(NULL) == 10);
	CHECK(limit_of("limit=1") == 1);
	CHECK(limit_of("limit=20") == 20);
	CHECK(limit_of("limit=007") == 7);
	CHECK(limit_of("a=1&limit=3&b") == 3);
	CHECK(limit_of("limits=3") == 10); /* another parameter */
	CHECK(limit_of("xlimit=3&&") == 10);
	/* the name is read percent-decoded (the value is not) */
	CHECK(limit_of("li%6Dit=4") == 4);
	CHECK(limit_of("%6c%69%6D%69%74=5") == 5);
	CHECK(limit_of("li+mit=3") == 10); /* "li mit" */
	CHECK(limit_of("limit%3D3") == 10); /* the name "limit=3", no value */
	CHECK(limit_of("limit%00=3") == 10);
	const char *bad[] = {"limit=0",	      "limit=21",	 "limit=-1",	"limit=+1",
			     "limit=",	      "limit",		 "limit=1.0",	"limit=1e1",
			     "limit=%31",     "limit= 1",	 "limit=1 ",	"limit=0x10",
			     "limit=2&limit=2", "limit=99999999999999999999999999999999",
			     "limit=1&limit", "limit=2&li%6dit=2", "lim%69t=2&limit=3",
			     "li%6Dit=%32", "limit=2&%zz=1", "%=1&limit=2", "limit=2&x%4",
			     "li%6=3", "li%G9it=3"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int n = limit_of(bad[i]);
		if (n != -1)
			fprintf(stderr, "limit of \"%s\" taken as %d\n", bad[i], n);
		CHECK(n == -1);
	}
	/* a long hostile query is walked without harm */
	size_t len = 1 << 16;
	char *q = malloc(len + 1);
	CHECK(q != NULL);
	if (q) {
		for (size_t i = 0; i < len; i++)
			q[i] = "&=limit9"[i % 8];
		q[len] = '\0';
		(void)limit_of(q);
		memset(q, '9', len);
		memcpy(q, "limit=", 6);
		CHECK(limit_of(q) == -1);
		free(q);
	}
}

/* The extra members, parsed as the object they are put into. */
static cJSON *extra_json(long long uid, const char *name, const char *in)
{
	char *s = jobstate_event_extra(uid, name, in);
	CHECK(s != NULL);
	if (!s)
		return NULL;
	cJSON *o = jobstate_event_extra_parse(s);
	CHECK(o != NULL);
	free(s);
	return o;
}

static void test_extra(void)
{
	char *s = jobstate_event_extra(7, "ann", NULL);
	CHECK_STR(s, "\"user\":{\"id\":7,\"username\":\"ann\"}");
	free(s);
	s = jobstate_event_extra(7, "ann", "");
	CHECK_STR(s, "\"user\":{\"id\":7,\"username\":\"ann\"},\"stdin_given\":false,\"stdin\":\"\","
		     "\"stdin_truncated\":false");
	free(s);
	cJSON *o = extra_json(8, "bob", "line \"one\"\n\x01");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "stdin")), "line \"one\"\n\x01");
	CHECK(cJSON_IsTrue(cJSON_GetObjectItem(o, "stdin_given")));
	cJSON_Delete(o);
	/* 1,023 bytes, then 4-byte characters: the cut falls before the one that does not fit */
	char in[1023 + 4 * 10 + 1];
	memset(in, 'a', 1023);
	for (int i = 0; i < 10; i++)
		memcpy(in + 1023 + 4 * i, "\xF0\x9F\x98\x80", 4);
	in[sizeof in - 1] = '\0';
	o = extra_json(1, "c", in);
	const char *shown = cJSON_GetStringValue(cJSON_GetObjectItem(o, "stdin"));
	CHECK(shown && strlen(shown) == 1023);
	CHECK(cJSON_IsTrue(cJSON_GetObjectItem(o, "stdin_truncated")));
	cJSON_Delete(o);
	/* exactly the bound: kept whole */
	in[JOBSTATE_STDIN_SHOWN] = '\0';
	memset(in, 'b', JOBSTATE_STDIN_SHOWN);
	o = extra_json(1, "c", in);
	shown = cJSON_GetStringValue(cJSON_GetObjectItem(o, "stdin"));
	CHECK(shown && strlen(shown) == JOBSTATE_STDIN_SHOWN);
	CHECK(cJSON_IsFalse(cJSON_GetObjectItem(o, "stdin_truncated")));
	cJSON_Delete(o);
}

static void test_batch_stats(void)
{
	long long ins, del, ids[4];
	int n;
	const char *b = "[{\"u\":5,\"s\":\"a\",\"ops\":[\"h\\u00e9\xF0\x9F\x98\x80\"]},"
			"{\"u\":2,\"s\":\"b\",\"ops\":[1,-2,\"xy\"]},"
			"{\"u\":5,\"s\":\"c\",\"ops\":[-1]},[\"old\"]]";
	CHECK(doc_batch_stats(b, strlen(b), &ins, &del, ids, 4, &n) == 0);
	CHECK(ins == 3 + 2 + 3);
	CHECK(del == 3);
	CHECK(n == 2 && ids[0] == 2 && ids[1] == 5);
	/* more authors than room: the first ones kept, in order */
	const char *many = "[{\"u\":9,\"ops\":[\"a\"]},{\"u\":1,\"ops\":[\"a\"]},{\"u\":4,\"ops\":[\"a\"]},"
			   "{\"u\":3,\"ops\":[\"a\"]},{\"u\":2,\"ops\":[\"a\"]}]";
	CHECK(doc_batch_stats(many, strlen(many), &ins, &del, ids, 4, &n) == 0);
	CHECK(n == 4 && ids[0] == 1 && ids[3] == 9);
	CHECK(ins == 5);
	/* junk, and numbers no entry of ours holds (converting 1e300 to a count or an id
	 * would be undefined) */
	const char *junk[] = {"", "{}", "[1]", "[{\"u\":1}]", "[{\"ops\":7}]", "[", "null",
			      "[{\"u\":1,\"ops\":[-1e300]}]", "[{\"u\":1e300,\"ops\":[\"a\"]}]",
			      "[{\"u\":-1e300,\"ops\":[\"a\"]}]", "[[-3e9]]"};
	for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
		CHECK(doc_batch_stats(junk[i], strlen(junk[i]), &ins, &del, ids, 4, &n) == -1);
	CHECK(doc_batch_stats("[]", 2, &ins, &del, ids, 4, &n) == 0 && n == 0 && ins == 0);
}

int main(void)
{
	test_limit();
	test_extra();
	test_batch_stats();
	return unit_summary("runs");
}
