-- storage/schema/sqlite/002_archive_with_id.sql: archive items of one
-- peer in id order (mod_mam: a query with 'with' and RSM paging, above all
-- the last page with <before/>).  Without it SQLite walks archive_user
-- backwards and reads every row of the user until it has a page of that
-- peer: 25 ms for a peer with one message in a 100,000-message archive,
-- 0.01 ms with it (tests/integration/mam_bench.py).
CREATE INDEX archive_with_id ON archive (host, store, user, with_jid, id);
