-- CodeCollab's PostgreSQL schema, as numbered migrations.
--
-- scripts/run.sh applies this whole file in one transaction on every start. Each migration
-- runs once: it is skipped when its number is already in schema_version. To change the
-- schema, append a new block with the next number; never edit a block that has shipped,
-- because existing installations already ran it.

SELECT pg_advisory_xact_lock(727274); -- two starts at once apply migrations one at a time

CREATE TABLE IF NOT EXISTS schema_version (
  version    integer PRIMARY KEY,
  applied_at timestamptz NOT NULL DEFAULT now()
);

-- 1: accounts, rooms and their members
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM schema_version WHERE version = 1) THEN
    CREATE TABLE users (
      id            bigserial PRIMARY KEY,
      username      text NOT NULL CHECK (length(username) BETWEEN 3 AND 32),
      password_hash text NOT NULL,
      created_at    timestamptz NOT NULL DEFAULT now()
    );
    -- usernames are unique regardless of case: "Alice" and "alice" are one account
    CREATE UNIQUE INDEX users_username_lower ON users (lower(username));

    CREATE TABLE rooms (
      id          text PRIMARY KEY,
      owner_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
      name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
      language    text NOT NULL,
      visibility  text NOT NULL DEFAULT 'private' CHECK (visibility IN ('private', 'public')),
      invite_code text NOT NULL,
      created_at  timestamptz NOT NULL DEFAULT now(),
      updated_at  timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX rooms_owner ON rooms (owner_id);

    CREATE TABLE room_members (
      room_id   text NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
      user_id   bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
      role      text NOT NULL CHECK (role IN ('owner', 'editor', 'viewer')),
      joined_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (room_id, user_id)
    );
    CREATE INDEX room_members_user ON room_members (user_id);

    INSERT INTO schema_version (version) VALUES (1);
  END IF;
END
$$;

-- 2: document snapshots (the code-session history)
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM schema_version WHERE version = 2) THEN
    CREATE TABLE snapshots (
      room_id  text NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
      revision bigint NOT NULL CHECK (revision >= 0),
      content  text NOT NULL,
      saved_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (room_id, revision)
    );
    INSERT INTO schema_version (version) VALUES (2);
  END IF;
END
$$;

-- 3: access that is taken away stays away
--   users.username_key: the one canonical form of a username (ASCII letters lowered; names
--     are ASCII by the API's rules, and nothing else is folded), used for uniqueness, sign-in
--     and every per-name limit. PostgreSQL's lower() depends on the locale and folds
--     look-alikes such as the Kelvin sign into ASCII, so it is no longer used for names.
--   users.token_gen: raised by a password change; tokens signed with an older one are void.
--   rooms.invite_enabled / invite_gen: the owner switches the invite link off or issues a new
--     code; invite_gen counts the codes issued.
--   room_removals: who the owner removed, and under which invite_gen. A removed user comes back
--     only with a code issued after the removal (invite_gen greater than the one recorded).
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM schema_version WHERE version = 3) THEN
    ALTER TABLE users ADD COLUMN username_key text GENERATED ALWAYS AS
      (translate(username, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')) STORED;
    CREATE UNIQUE INDEX users_username_key ON users (username_key);
    DROP INDEX IF EXISTS users_username_lower;
    ALTER TABLE users ADD COLUMN token_gen bigint NOT NULL DEFAULT 0 CHECK (token_gen >= 0);

    ALTER TABLE rooms ADD COLUMN invite_enabled boolean NOT NULL DEFAULT true;
    ALTER TABLE rooms ADD COLUMN invite_gen bigint NOT NULL DEFAULT 0;

    CREATE TABLE room_removals (
      room_id    text NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
      user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
      invite_gen bigint NOT NULL,
      removed_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (room_id, user_id)
    );
    INSERT INTO schema_version (version) VALUES (3);
  END IF;
END
$$;

-- 4: history that grows with the typing
--   snapshots are now checkpoints: the full text, written for a room's first save, every
--     HISTORY_CHECKPOINT_OPS operations, and when the operations since the last save are no
--     longer in Redis or would be larger than the text.
--   history_ops: what was typed between two saves: the operations first_revision..revision
--     as one JSON array (each with its exact base length) and the document's length in code
--     points at `revision`. Any revision from a checkpoint on is rebuilt from the checkpoint
--     and the batches after it. Thinned by the snapshotter (docs/INTERNALS.md).
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM schema_version WHERE version = 4) THEN
    CREATE TABLE history_ops (
      room_id        text NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
      revision       bigint NOT NULL CHECK (revision > 0),
      first_revision bigint NOT NULL CHECK (first_revision > 0 AND first_revision <= revision),
      ops            text NOT NULL,
      length         bigint NOT NULL CHECK (length >= 0),
      saved_at       timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (room_id, revision)
    );
    INSERT INTO schema_version (version) VALUES (4);
  END IF;
END
$$;

-- 5: who typed a saved change, and how much
--   authors: the user ids whose operations a save holds (NULL: not known, e.g. saved
--     before this column, or a checkpoint whose operations were no longer in Redis);
--   inserted / deleted: the code points those operations inserted and deleted, summed
--     over them (NULL: not known). Written by the snapshotter with each save.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM schema_version WHERE version = 5) THEN
    ALTER TABLE history_ops ADD COLUMN authors bigint[], ADD COLUMN inserted bigint,
      ADD COLUMN deleted bigint;
    ALTER TABLE snapshots ADD COLUMN authors bigint[], ADD COLUMN inserted bigint,
      ADD COLUMN deleted bigint;
    INSERT INTO schema_version (version) VALUES (5);
  END IF;
END
$$;

-- 6: a lowered role outlives leaving
--   room_departures: a viewer who left the room by themself, and the role they had. Joining
--     again (public path or invite code) gives that role back instead of `editor`, and
--     clears the row; an editor's leave records nothing (and clears any row). Without it a
--     member the owner made viewer became editor again by leaving and joining.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM schema_version WHERE version = 6) THEN
    CREATE TABLE room_departures (
      room_id text NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
      user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
      role    text NOT NULL CHECK (role IN ('viewer')),
      left_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (room_id, user_id)
    );
    CREATE INDEX room_departures_user ON room_departures (user_id);
    INSERT INTO schema_version (version) VALUES (6);
  END IF;
END
$$;

-- 7: what a checkpoint was typed as
--   snapshots.entry: the op log entry of the checkpoint's own revision, as Redis held it
--     (NULL: not known: saved before this, the operations were no longer in Redis, or a
--     checkpoint that starts the chain again after Redis lost writes). The snapshotter
--     compares it, as it compares a batch's last entry, with what Redis holds for that
--     revision, to tell a Redis that lost its last writes from one that follows the saved
--     history (docs/INTERNALS.md, "When Redis loses its last writes").
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM schema_version WHERE version = 7) THEN
    ALTER TABLE snapshots ADD COLUMN entry text;
    INSERT INTO schema_version (version) VALUES (7);
  END IF;
END
$$;

-- 8: how much has to be read to rebuild a revision
--   history_ops.chain_bytes: the bytes of `ops` of this batch and of every batch before it
--     since the newest checkpoint (NULL: saved before this; the save then adds them up).
--     A save writes a checkpoint instead of a batch once this would pass twice the text
--     (at least DOC_HISTORY_CHAIN_MIN_BYTES), so that rebuilding a revision never reads
--     much more than the text it gives (docs/INTERNALS.md, "History").
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM schema_version WHERE version = 8) THEN
    ALTER TABLE history_ops ADD COLUMN chain_bytes bigint CHECK (chain_bytes >= 0);
    INSERT INTO schema_version (version) VALUES (8);
  END IF;
END
$$;
