#include "buf.h"
#include "rnd.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>

int main(void)
{
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
