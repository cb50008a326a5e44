/* The ids of paths and streams (lib/id.h), as the API's route table and the broker both
 * read them: every byte in and out of the set, every length around the bound, and input
 * that is not a C string. */
#include "unit.h"
#include "id.h"

#include <stdlib.h>
#include <string.h>

/* The set written out, a second opinion next to id.c's ranges. */
static const char allowed[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

static int in_set(unsigned char b)
{
	return b != 0 && memchr(allowed, b, sizeof allowed - 1) != NULL;
}

/* id_valid on exactly n bytes of heap, so that a read past them is an ASan report. */
static int valid_exact(const char *bytes, size_t n)
{
	char *p = malloc(n ? n : 1);
	if (!p)
		return -1;
	memcpy(p, bytes, n);
	int r = id_valid(p, n);
	free(p);
	return r;
}

static void test_examples(void)
{
	CHECK(id_valid("abc-DEF_09", 10));
	CHECK(id_valid("k3v9x0q2ab", 10));
	CHECK(id_valid("42", 2));
	CHECK(id_valid("-", 1) && id_valid("_", 1));
	CHECK(!id_valid("a/b", 3));
	CHECK(!id_valid("a%20", 4));
	CHECK(!id_valid("a b", 3));
	CHECK(!id_valid("..", 2));
	CHECK(!id_valid("a.b", 3));
	CHECK(!id_valid("a:1-0", 5));
	CHECK(!id_valid("a,b", 3));
	CHECK(!id_valid("a\n", 2));
	CHECK(!id_valid("a\r\nX-Evil: 1", 12));
}

static void test_empty(void)
{
	CHECK(!id_valid("", 0));
	CHECK(!id_valid("abc", 0)); /* the length decides, not the terminator */
	CHECK(!id_valid(NULL, 0));
}

static void test_lengths(void)
{
	char s[ID_MAX + 2];
	memset(s, 'a', sizeof s);
	CHECK(valid_exact(s, 1) == 1);
	CHECK(valid_exact(s, ID_MAX - 1) == 1);
	CHECK(valid_exact(s, ID_MAX) == 1);
	CHECK(valid_exact(s, ID_MAX + 1) == 0);
	CHECK(valid_exact(s, ID_MAX + 2) == 0);
	CHECK(!id_valid(s, (size_t)-1)); /* refused on its length alone, nothing read */
	CHECK(ID_MAX == 64);		   /* docs/API.md promises 1..64 */
	/* a bad byte at either end of the longest id */
	s[0] = '/';
	CHECK(valid_exact(s, ID_MAX) == 0);
	s[0] = 'a';
	s[ID_MAX - 1] = '.';
	CHECK(valid_exact(s, ID_MAX) == 0);
}

/* Every byte value alone, first, in the middle and last of an otherwise good id: the
 * neighbours of each range ('/' ':' '@' '[' '`' '{' ',' '.'), NUL, DEL and every byte with
 * the high bit set included. */
static void test_every_byte(void)
{
	int wrong = 0;
	for (int b = 0; b < 256; b++) {
		char one[1] = {(char)b};
		char first[3] = {(char)b, 'x', 'y'};
		char mid[3] = {'x', (char)b, 'y'};
		char last[3] = {'x', 'y', (char)b};
		int want = in_set((unsigned char)b);
		if (valid_exact(one, 1) != want || valid_exact(first, 3) != want ||
		    valid_exact(mid, 3) != want || valid_exact(last, 3) != want) {
			fprintf(stderr, "byte 0x%02x: expected %d\n", b, want);
			wrong++;
		}
	}
	CHECK(wrong == 0);
	int count = 0;
	for (int b = 0; b < 256; b++)
		count += in_set((unsigned char)b);
	CHECK(count == 64); /* A-Z a-z 0-9 _ - */
}

static void test_not_strings(void)
{
	/* a NUL inside the counted bytes is a byte like any other outside the set */
	CHECK(!id_valid("ab\0cd", 5));
	CHECK(!id_valid("\0", 1));
	/* a good prefix of a longer buffer is judged on its own */
	CHECK(id_valid("room/ws", 4));
	CHECK(!id_valid("room/ws", 5));
	/* non-ASCII: UTF-8 letters, an overlong '/', a lone continuation byte, a BOM */
	CHECK(!id_valid("caf\xc3\xa9", 5));
	CHECK(!id_valid("\xc3\xa9", 2));
	CHECK(!id_valid("a\xc0\xaf" "b", 4));
	CHECK(!id_valid("\x80", 1));
	CHECK(!id_valid("\xef\xbb\xbf" "abc", 6));
	CHECK(!id_valid("\xff", 1));
}

int main(void)
{
	test_examples();
	test_empty();
	test_lengths();
	test_every_byte();
	test_not_strings();
	return unit_summary("test_id");
}
