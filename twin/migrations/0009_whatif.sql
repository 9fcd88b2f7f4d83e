-- What-if scenarios: named overlays on a community, kept apart from the live
-- twin. The overlay is validated by twin.whatif.scenario.Scenario on the way
-- in and out; nothing in the live tables refers to a scenario.
CREATE TABLE scenario (
    id            bigserial PRIMARY KEY,
    community_id  text NOT NULL REFERENCES community ON DELETE CASCADE,
    name          text NOT NULL,
    overlay       jsonb NOT NULL,
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (community_id, name)
);
