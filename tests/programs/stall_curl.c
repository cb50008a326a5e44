/* A fault for tests/programs/worker.test.mjs ("a job thread stuck in a call that never
 * returns"), loaded with LD_PRELOAD into codecollab-worker: every libcurl transfer (a Piston
 * run, the runtimes refresh) waits for good and never looks at the job's cancel flag, as a
 * call stuck in a library would. The only way to make a job thread stuck on purpose: every
 * call of the worker's own has a bound in time. */
#include <unistd.h>

typedef int CURLcode;
typedef void CURL;

CURLcode curl_easy_perform(CURL *handle);

CURLcode curl_easy_perform(CURL *handle)
{
	(void)handle;
	for (;;)
		pause();
}
