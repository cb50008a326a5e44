#include "start.h"

#include <curl/curl.h>
#include <signal.h>
#include <string.h>

#include "log.h"

int start_program(const char *name, void (*on_stop)(int))
{
	log_init(name);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: a blocked call returns and the loop sees the flag */
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR || sigaction(SIGTERM, &sa, NULL) < 0 ||
	    sigaction(SIGINT, &sa, NULL) < 0) {
		log_error("cannot install the signal handlers");
		return -1;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error("libcurl failed to initialise");
		return -1;
	}
	return 0;
}
