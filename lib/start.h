/* start: what a program of CodeCollab does first. Its log lines get the program's name;
 * SIGTERM and SIGINT call on_stop (which sets a flag the main loop watches), without
 * SA_RESTART so that a blocking accept() or poll() returns at once; SIGPIPE is ignored, so
 * a peer that went away is an error return on write, not the end of the program; libcurl
 * (URL parsing, HTTP calls) is initialised while only one thread runs. */
#ifndef CC_START_H
#define CC_START_H

/* 0, or -1 with the reason logged: the program should exit. */
int start_program(const char *name, void (*on_stop)(int));

#endif
