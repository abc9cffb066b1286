-- Every session expires. Those created without an end get thirty days from their creation (the
-- default HB_SESSION_TTL); from now on the API sets the end itself.
UPDATE sessions SET expires_at = created_at + interval '30 days' WHERE expires_at IS NULL;
ALTER TABLE sessions ALTER COLUMN expires_at SET NOT NULL;
