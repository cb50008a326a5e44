/* What the fuzz targets of Redis replies share: a reply tree built from the input the way
 * hiredis hands one over (fuzz_worker_redis, fuzz_broker_catchup, fuzz_rslot). Free it
 * with freeReplyObject(). */
#ifndef CC_FUZZ_REPLY_H
#define CC_FUZZ_REPLY_H

#include <hiredis/hiredis.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

struct input {
	const uint8_t *p;
	size_t n;
};

static inline unsigned take_byte(struct input *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static inline redisReply *reply_new(int type)
{
	redisReply *r = calloc(1, sizeof *r);
	CHECK(r);
	r->type = type;
	return r;
}

/* A string reply of the next len bytes (cut to what is left), NUL-terminated as hiredis
 * makes them. */
static inline redisReply *string_reply(int type, struct input *in, size_t len)
{
	redisReply *r = reply_new(type);
	if (len > in->n)
		len = in->n;
	r->str = malloc(len + 1);
	CHECK(r->str);
	memcpy(r->str, in->p, len);
	r->str[len] = '\0';
	r->len = len;
	in->p += len;
	in->n -= len;
	return r;
}

/* A reply built from the input: a tag byte (string, array, nil, integer, status, error),
 * for a string a length byte (255: two more bytes, up to 65,535), for an array a count of
 * 0..15 elements. Nested at most depth deep (below that an array is empty). */
static inline redisReply *build(struct input *in, int depth)
{
	unsigned tag = take_byte(in) % 6;
	switch (tag) {
	case 0: {
		size_t len = take_byte(in);
		if (len == 255)
			len = take_byte(in) | take_byte(in) << 8;
		return string_reply(REDIS_REPLY_STRING, in, len);
	}
	case 1: {
		redisReply *r = reply_new(REDIS_REPLY_ARRAY);
		size_t n = depth > 0 ? take_byte(in) % 16 : 0;
		if (n) {
			r->element = calloc(n, sizeof *r->element);
			CHECK(r->element);
			for (size_t i = 0; i < n; i++)
				r->element[i] = build(in, depth - 1);
			r->elements = n;
		}
		return r;
	}
	case 2:
		return reply_new(REDIS_REPLY_NIL);
	case 3: {
		redisReply *r = reply_new(REDIS_REPLY_INTEGER);
		for (int i = 0; i < 8; i++)
			r->integer = (long long)((unsigned long long)r->integer << 8 | take_byte(in));
		return r;
	}
	case 4:
		return string_reply(REDIS_REPLY_STATUS, in, take_byte(in));
	default:
		return string_reply(REDIS_REPLY_ERROR, in, take_byte(in));
	}
}

#endif
