DROP TABLE IF EXISTS replay_quota;
