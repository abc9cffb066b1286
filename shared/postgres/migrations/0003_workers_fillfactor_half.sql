-- Workers created together have neighbouring ids, share heap pages and tend to be flushed
-- together. When every row of a page gets a new version before the old ones can be pruned (one
-- drain of a backlog), 20% free room takes about six of them and the rest stop being HOT (new
-- index entries, a growing table). Half a page holds a new version of every row on it.
-- Pages written before this keep their old room until the table is rewritten (VACUUM FULL).
ALTER TABLE workers SET (fillfactor = 50);
