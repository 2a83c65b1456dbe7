-- storage/schema/sqlite/001_init.sql: the first schema of the SQLite
-- backend (storage/st_sqlite.c).  Migrations run in file order, each once,
-- in its own transaction; PRAGMA user_version records how many ran.  Never
-- edit a released migration: add NNN_<what>.sql instead.

-- keyval and map stores: key '' for keyval.
CREATE TABLE keyval (
    host  TEXT NOT NULL,
    store TEXT NOT NULL,
    user  TEXT NOT NULL,
    key   TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (host, store, user, key)
) WITHOUT ROWID;

-- archive stores (offline queue, MAM).  id is the item id handed out as a
-- decimal string; AUTOINCREMENT keeps ids of removed items from coming
-- back.
CREATE TABLE archive (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    host     TEXT NOT NULL,
    store    TEXT NOT NULL,
    user     TEXT NOT NULL,
    when_us  INTEGER NOT NULL,
    with_jid TEXT NOT NULL,
    value    BLOB NOT NULL
);
-- id order per user (the rowid ends every index), time and peer ranges.
CREATE INDEX archive_user ON archive (host, store, user);
CREATE INDEX archive_when ON archive (host, store, user, when_us);
CREATE INDEX archive_with ON archive (host, store, user, with_jid, when_us);
