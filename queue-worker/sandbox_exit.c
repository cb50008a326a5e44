/* sandbox_exit: see sandbox_exit.h. */
#include "sandbox_exit.h"

#include <signal.h>
#include <stddef.h>

struct sandbox_end sandbox_exit_classify(int term_sig, int exit_status, enum sandbox_kill why,
					 long long oom_kills)
{
	struct sandbox_end e = {.status = SANDBOX_OK};
	int sig = term_sig, code = 0;
	if (!sig) {
		code = exit_status;
		/* a program that exits 128 + n itself reads the same */
		if (code > 128 && sandbox_signal_name(code - 128))
			sig = code - 128;
	}
	switch (why) {
	case SANDBOX_KILL_CANCEL:
		e.status = SANDBOX_CANCELLED;
		break;
	case SANDBOX_KILL_TIME:
		e.status = SANDBOX_TIME_LIMIT;
		break;
	case SANDBOX_KILL_OUTPUT:
		e.status = SANDBOX_OUTPUT_LIMIT;
		break;
	case SANDBOX_KILL_ARTIFACT:
		e.status = SANDBOX_FILE_SIZE_LIMIT;
		break;
	case SANDBOX_KILL_NONE:
		break;
	}
	if (why != SANDBOX_KILL_NONE)
		sig = SIGKILL;
	else if (oom_kills > 0)
		e.status = SANDBOX_MEMORY_LIMIT;
	else if (sig == SIGXCPU)
		e.status = SANDBOX_TIME_LIMIT;
	else if (sig == SIGXFSZ)
		e.status = SANDBOX_FILE_SIZE_LIMIT;
	e.signal = sig;
	e.exit_code = sig ? -1 : code;
	return e;
}

enum sandbox_kill sandbox_kill_due(int cancelled, int exited, long long now, long long deadline)
{
	if (cancelled)
		return SANDBOX_KILL_CANCEL;
	if (!exited && now >= deadline)
		return SANDBOX_KILL_TIME;
	return SANDBOX_KILL_NONE;
}

int sandbox_poll_ms(enum sandbox_kill why, int exited, long long now, long long deadline,
		    int have_pidfd)
{
	long long wait = why == SANDBOX_KILL_NONE && !exited ? deadline - now : 50;
	if (wait > 100)
		wait = 100; /* cancel is a flag, not a descriptor: look at it often */
	if (!have_pidfd && !exited && wait > 10)
		wait = 10;
	if (wait < 0)
		wait = 0;
	return (int)wait;
}

enum sandbox_status sandbox_compile_verdict(const struct sandbox_step *c)
{
	if (c->status == SANDBOX_OK && !c->signal && c->exit_code == 0)
		return SANDBOX_OK;
	return c->status == SANDBOX_CANCELLED ? SANDBOX_CANCELLED : SANDBOX_COMPILE_ERROR;
}

const char *sandbox_status_message(enum sandbox_status s)
{
	switch (s) {
	case SANDBOX_OK:
		return NULL;
	case SANDBOX_TIME_LIMIT:
		return "time limit exceeded";
	case SANDBOX_MEMORY_LIMIT:
		return "memory limit exceeded";
	case SANDBOX_OUTPUT_LIMIT:
		return "output limit exceeded";
	case SANDBOX_FILE_SIZE_LIMIT:
		return "file size limit exceeded";
	case SANDBOX_CANCELLED:
		return "cancelled: the worker is shutting down";
	case SANDBOX_COMPILE_ERROR:
		return "compilation failed";
	}
	return NULL;
}

const char *sandbox_status_code(enum sandbox_status s)
{
	switch (s) {
	case SANDBOX_OK:
		return NULL;
	case SANDBOX_TIME_LIMIT:
		return "time_limit_exceeded";
	case SANDBOX_MEMORY_LIMIT:
		return "memory_limit_exceeded";
	case SANDBOX_OUTPUT_LIMIT:
		return "output_limit_exceeded";
	case SANDBOX_FILE_SIZE_LIMIT:
		return "file_size_limit_exceeded";
	case SANDBOX_CANCELLED:
		return "cancelled";
	case SANDBOX_COMPILE_ERROR:
		return "compile_error";
	}
	return NULL;
}

const char *sandbox_signal_name(int sig)
{
	static const char *const names[] = {
		[SIGHUP] = "SIGHUP",   [SIGINT] = "SIGINT",	[SIGQUIT] = "SIGQUIT",
		[SIGILL] = "SIGILL",   [SIGTRAP] = "SIGTRAP",	[SIGABRT] = "SIGABRT",
		[SIGBUS] = "SIGBUS",   [SIGFPE] = "SIGFPE",	[SIGKILL] = "SIGKILL",
		[SIGUSR1] = "SIGUSR1", [SIGSEGV] = "SIGSEGV",	[SIGUSR2] = "SIGUSR2",
		[SIGPIPE] = "SIGPIPE", [SIGALRM] = "SIGALRM",	[SIGTERM] = "SIGTERM",
		[SIGSTKFLT] = "SIGSTKFLT", [SIGCHLD] = "SIGCHLD", [SIGCONT] = "SIGCONT",
		[SIGSTOP] = "SIGSTOP", [SIGTSTP] = "SIGTSTP",	[SIGTTIN] = "SIGTTIN",
		[SIGTTOU] = "SIGTTOU", [SIGURG] = "SIGURG",	[SIGXCPU] = "SIGXCPU",
		[SIGXFSZ] = "SIGXFSZ", [SIGVTALRM] = "SIGVTALRM", [SIGPROF] = "SIGPROF",
		[SIGWINCH] = "SIGWINCH", [SIGIO] = "SIGIO",	[SIGPWR] = "SIGPWR",
		[SIGSYS] = "SIGSYS",
	};
	if (sig <= 0 || (size_t)sig >= sizeof names / sizeof names[0])
		return NULL;
	return names[sig];
}
