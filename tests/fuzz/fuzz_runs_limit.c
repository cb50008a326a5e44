/* fuzz_runs_limit: arbitrary bytes as the query string of GET /api/rooms/{id}/executions
 * (jobs_parse_limit, fcgi/h_jobs.c). Laws: an accepted limit is within 1..JOBSTATE_RUNS_KEEP;
 * a refusal says why; the query with "&limit=5" put in front of a refused one is still
 * refused, and a query without "limit" and without '%' is always taken (the default); names
 * are read percent-decoded: a query starting "limit" reads the same with it written
 * "li%6Dit"; a break aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../fcgi/handlers.h"
#include "jobstate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *q = malloc(size + 1), *p = malloc(size + 9);
	if (!q || !p) {
		free(q);
		free(p);
		return 0;
	}
	memcpy(q, data, size);
	q[size] = '\0'; /* the query string is text up to its first NUL */
	int n = 0;
	const char *why = NULL;
	int rc = jobs_parse_limit(q, &n, &why);
	if (rc == 0 && (n < 1 || n > JOBSTATE_RUNS_KEEP))
		abort();
	if (rc < 0 && (!why || !*why))
		abort();
	if (!strstr(q, "limit") && !strchr(q, '%') && rc != 0)
		abort();
	if (strncmp(q, "limit", 5) == 0) {
		char *e = malloc(size + 3);
		int n2 = 0;
		const char *why2 = NULL;
		if (!e)
			abort();
		memcpy(e, "li%6Dit", 7);
		memcpy(e + 7, q + 5, strlen(q + 5) + 1);
		int rc2 = jobs_parse_limit(e, &n2, &why2);
		if (rc2 != rc || (rc == 0 && n2 != n))
			abort();
		free(e);
	}
	memcpy(p, "limit=5&", 8);
	memcpy(p + 8, q, strlen(q) + 1);
	if (rc < 0 && jobs_parse_limit(p, &n, &why) == 0)
		abort();
	free(p);
	free(q);
	return 0;
}
