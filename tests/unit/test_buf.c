#include "buf.h"
#include "rnd.h"
#include "unit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* buf_read_file: a whole file, one past the limit, a file of several reads, none at all, a
 * directory, an empty one */
static void test_read_file(void)
{
	char dir[] = "/tmp/cc-buf.XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char path[64], big[64], empty[64];
	snprintf(path, sizeof path, "%s/f", dir);
	snprintf(big, sizeof big, "%s/big", dir);
	snprintf(empty, sizeof empty, "%s/empty", dir);
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	if (f) {
		fputs("0123456789abcdef", f); /* 16 bytes */
		fclose(f);
	}
	f = fopen(big, "w");
	CHECK(f != NULL);
	if (f) {
		for (int i = 0; i < 200000; i++) /* 200,000 bytes: several reads */
			fputc('a' + i % 26, f);
		fclose(f);
	}
	f = fopen(empty, "w");
	CHECK(f != NULL);
	if (f)
		fclose(f);

	struct buf b;
	buf_init(&b, 16);
	CHECK(buf_read_file(&b, path) == 0);
	CHECK(b.len == 16 && strcmp(b.data, "0123456789abcdef") == 0);
	buf_free(&b);
	buf_init(&b, 15);
	errno = 0;
	CHECK(buf_read_file(&b, path) == -1 && errno == EFBIG);
	buf_free(&b);
	buf_init(&b, 0);
	CHECK(buf_puts(&b, ">") == 0); /* appended after what is there */
	CHECK(buf_read_file(&b, big) == 0);
	CHECK(b.len == 200001 && b.data[0] == '>' && b.data[1] == 'a' && b.data[200000] == 'a' + 199999 % 26);
	buf_free(&b);
	buf_init(&b, 199999);
	errno = 0;
	CHECK(buf_read_file(&b, big) == -1 && errno == EFBIG);
	CHECK(b.len <= 199999);
	buf_free(&b);
	buf_init(&b, 16);
	CHECK(buf_read_file(&b, empty) == 0);
	CHECK(b.len == 0);
	errno = 0;
	CHECK(buf_read_file(&b, "/nonexistent/cc-buf") == -1 && errno == ENOENT);
	errno = 0;
	CHECK(buf_read_file(&b, dir) == -1 && errno == EISDIR);
	buf_free(&b);
	unlink(path);
	unlink(big);
	unlink(empty);
	rmdir(dir);
}

int main(void)
{
	test_read_file();
	struct buf b;
	buf_init(&b, 16);
	CHECK(buf_puts(&b, "hello") == 0);
	CHECK(buf_printf(&b, " %d", 42) == 0);
	CHECK_STR(b.data, "hello 42");
	CHECK(b.len == 8);
	/* the bound holds: 8 + 9 > 16 fails and leaves the content intact */
	CHECK(buf_puts(&b, "123456789") == -1);
	CHECK_STR(b.data, "hello 42");
	CHECK(buf_puts(&b, "12345678") == 0);
	CHECK(b.len == 16);
	CHECK(buf_putc(&b, 'x') == -1);
	CHECK(buf_printf(&b, "%s", "y") == -1);
	char *s = buf_detach(&b);
	CHECK_STR(s, "hello 4212345678");
	free(s);
	CHECK(b.data == NULL && b.len == 0);
	/* an empty detach gives an empty string, not NULL */
	s = buf_detach(&b);
	CHECK(s != NULL && s[0] == '\0');
	free(s);
	/* overflow of len + extra is refused, not wrapped */
	buf_init(&b, 0);
	CHECK(buf_reserve(&b, (size_t)-1) == -1);
	CHECK(buf_append(&b, "", 0) == 0);
	CHECK(b.data && b.data[0] == '\0');
	buf_free(&b);

	char id[13], id2[13], hex[33];
	CHECK(rnd_id(id, 12) == 0);
	CHECK(rnd_id(id2, 12) == 0);
	CHECK(strlen(id) == 12);
	CHECK(strspn(id, "abcdefghijklmnopqrstuvwxyz0123456789") == 12);
	CHECK(strcmp(id, id2) != 0);
	CHECK(rnd_hex(hex, 16) == 0);
	CHECK(strlen(hex) == 32 && strspn(hex, "0123456789abcdef") == 32);
	return unit_summary("buf");
}
