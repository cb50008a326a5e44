/* lib/presence: stable colours and the event data shapes. */
#include <stdlib.h>

#include "presence.h"
#include "unit.h"

int main(void)
{
	CHECK_STR(presence_color(42), presence_color(42));
	CHECK(strlen(presence_color(1)) == 7 && presence_color(1)[0] == '#');
	int distinct = 0;
	for (long long i = 1; i < 12; i++)
		distinct += strcmp(presence_color(i), presence_color(i + 1)) != 0;
	CHECK(distinct >= 8);
	char *s = presence_data_json(7, "bo\"b", 12, 1, 3, 5);
	char want[256];
	snprintf(want, sizeof want,
		 "{\"user\":{\"id\":7,\"username\":\"bo\\\"b\"},\"cursor\":12,"
		 "\"selection\":{\"anchor\":3,\"head\":5},\"color\":\"%s\"}",
		 presence_color(7));
	CHECK_STR(s, want);
	free(s);
	s = presence_data_json(7, "b", 0, 0, 0, 0);
	CHECK(s && strstr(s, "\"selection\":null") != NULL);
	free(s);
	return unit_summary("test_presence");
}
