-- Jobs are owned by the process running them, which beats while it lives: a job whose owner
-- stopped beating (crash, kill, restart) ends FAILED (interrupted), whichever replica sees it,
-- and a live replica's running job is never failed by another one starting.
ALTER TABLE job
    ADD COLUMN owner        uuid,
    ADD COLUMN heartbeat_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX job_unfinished_heartbeat ON job (heartbeat_at) WHERE state IN ('QUEUED', 'RUNNING');
