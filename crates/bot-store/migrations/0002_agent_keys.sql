-- 0002: each agent's signing key, bound to its id on first sight
-- (bot_proto::api::KeyBinding): state none|trusted|pending|changed, the
-- bound key, and a key seen but not accepted.
ALTER TABLE agents ADD COLUMN key_state TEXT NOT NULL DEFAULT 'none';
ALTER TABLE agents ADD COLUMN key TEXT;
ALTER TABLE agents ADD COLUMN pending_key TEXT;
