/* handlers: one function per endpoint; route.c holds the table that names them. */
#ifndef CC_HANDLERS_H
#define CC_HANDLERS_H

#include "api.h"

void h_health(struct api_ctx *c);
void h_register(struct api_ctx *c);
void h_login(struct api_ctx *c);
void h_me(struct api_ctx *c);

void h_room_create(struct api_ctx *c);
void h_room_list(struct api_ctx *c);
void h_room_get(struct api_ctx *c);
void h_room_patch(struct api_ctx *c);
void h_room_delete(struct api_ctx *c);
void h_room_join(struct api_ctx *c);
void h_room_members(struct api_ctx *c);
void h_member_put(struct api_ctx *c);
void h_member_delete(struct api_ctx *c);

void h_document(struct api_ctx *c);
void h_operations(struct api_ctx *c);
void h_presence(struct api_ctx *c);
void h_stream_ticket(struct api_ctx *c);
void h_history(struct api_ctx *c);
void h_history_one(struct api_ctx *c);

#endif
