/* The `operation` event of a commit (lib/store_doc.c): its size is the printed size, and an
 * operation whose event would exceed EVENTS_DATA_MAX is told apart before the commit. */
#include "store_doc.h"
#include "events.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>

/* An insert of n U+0001 characters, parsed from escaped JSON as a client sends it. */
static struct ot_op *control_insert(size_t n)
{
	size_t len = 6 * n + 4;
	char *text = malloc(len + 1);
	struct ot_op *op = NULL;
	char err[256];
	if (!text)
		return NULL;
	memcpy(text, "[\"", 2);
	for (size_t i = 0; i < n; i++)
		memcpy(text + 2 + 6 * i, "\\u0001", 6);
	memcpy(text + 2 + 6 * n, "\"]", 3);
	if (ot_parse_json(text, len, 0, &op, err, sizeof err) < 0)
		fprintf(stderr, "ot_parse_json: %s\n", err);
	free(text);
	return op;
}

int main(void)
{
	char *data = NULL;
	size_t len = 0;
	struct ot_op *op = control_insert(3);
	CHECK(op != NULL);
	CHECK(doc_operation_event(7, op, 42, "ann", NULL, &data, &len) == 0);
	CHECK_STR(data, "{\"revision\":7,\"ops\":[\"\\u0001\\u0001\\u0001\"],"
			"\"user\":{\"id\":42,\"username\":\"ann\"},\"client_id\":null}");
	CHECK(data && len == strlen(data));
	free(data);
	ot_free(op);

	/* the reported case: 300,000 control characters are 1.8 MB of event data, under the
	 * bound; 350,000 are 2.1 MB, over it (1 is returned, and the size for the message) */
	op = control_insert(300000);
	CHECK(op != NULL);
	CHECK(doc_operation_event(1, op, 1, "ann", "tab-1", &data, &len) == 0);
	CHECK(len > 1800000 && len < EVENTS_DATA_MAX);
	free(data);
	ot_free(op);
	op = control_insert(350000);
	CHECK(op != NULL);
	CHECK(doc_operation_event(1, op, 1, "ann", "tab-1", &data, &len) == 1);
	CHECK(len > EVENTS_DATA_MAX && len > 6 * 350000 && len < 6 * 350000 + 100);
	free(data);
	ot_free(op);

	/* doc_commit_text: the numbers the commit script checks, and the texts it completes
	 * with the final retain (here 1 past what the op names: the document is 10 long) */
	struct doc_commit dc = {.user_id = 42, .username = "ann", .client_id = "tab-1.7"};
	struct doc_commit_text t;
	static const char delta_json[] = "[2,\"\u20ac\u20ac\",-3,1,\"x\",-2,3]";
	CHECK(ot_parse_json(delta_json, strlen(delta_json), 0, &op, NULL, 0) == 0);
	CHECK(op && doc_commit_text(&t, op, 8, &dc) == 0);
	CHECK(t.ins_bytes == 7 && t.del_cps == 5); /* two three-byte characters and "x" */
	CHECK(t.retain == 3 && t.span == 8 && t.delta == -2 && strcmp(t.sep, ",") == 0);
	char whole[512];
	snprintf(whole, sizeof whole, "%s%s4%s", t.log[0], t.sep, t.log[1]);
	CHECK(strcmp(whole, "{\"u\":42,\"s\":\"tab-1\",\"ops\":[2,\"\u20ac\u20ac\",-3,1,\"x\",-2,4]}") == 0);
	snprintf(whole, sizeof whole, "%s%s4%s", t.ev[0], t.sep, t.ev[1]);
	CHECK(strcmp(whole, "{\"revision\":8,\"ops\":[2,\"\u20ac\u20ac\",-3,1,\"x\",-2,4],"
			    "\"user\":{\"id\":42,\"username\":\"ann\"},\"client_id\":\"tab-1.7\"}") == 0);
	CHECK(t.ev_max >= strlen(whole) && t.ev_max < strlen(whole) + 24);
	doc_commit_text_free(&t);
	ot_free(op);

	/* an insert alone; control characters stay escaped, so the mark where the retain goes
	 * is never confused with the text */
	op = control_insert(2);
	dc.client_id = NULL;
	CHECK(op && doc_commit_text(&t, op, 1, &dc) == 0);
	CHECK(t.retain == 0 && t.span == 0 && t.delta == 2 && strcmp(t.sep, ",") == 0);
	CHECK(strcmp(t.log[0], "{\"u\":42,\"s\":\"\",\"ops\":[\"\\u0001\\u0001\"") == 0);
	CHECK(strcmp(t.log[1], "]}") == 0);
	CHECK(strcmp(t.ev[1], "],\"user\":{\"id\":42,\"username\":\"ann\"},\"client_id\":null}") == 0);
	doc_commit_text_free(&t);
	ot_free(op);

	/* a retain alone: nothing comes before the retain the script writes */
	CHECK(ot_parse_json("[3]", 3, 0, &op, NULL, 0) == 0);
	CHECK(op && doc_commit_text(&t, op, 2, &dc) == 0);
	CHECK(t.retain == 3 && t.span == 0 && t.delta == 0 && strcmp(t.sep, "") == 0);
	CHECK(strcmp(t.log[0], "{\"u\":42,\"s\":\"\",\"ops\":[") == 0);
	doc_commit_text_free(&t);
	ot_free(op);
	return unit_summary("test_doc_event");
}
