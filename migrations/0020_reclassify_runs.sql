-- Bulk re-classification (`POST /conversations/re-classify`) is a routing run too: the bot
-- classifies each open conversation, then it is routed again by the rules. Its progress and
-- result show on the same `GET /routing-rules/runs/{id}`.

ALTER TABLE routing_runs
    ADD COLUMN kind       text NOT NULL DEFAULT 'ROUTING' CHECK (kind IN ('ROUTING', 'RECLASSIFY')),
    ADD COLUMN classified integer NOT NULL DEFAULT 0,
    ADD COLUMN failed     integer NOT NULL DEFAULT 0;
