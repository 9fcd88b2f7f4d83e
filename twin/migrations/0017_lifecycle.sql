-- The data lifecycle (issue 15): chunk intervals chosen for the write rate, hourly
-- rollups of readings kept longer than the readings, and the state of the project's
-- own retention job. docs/operations.md has the calculation and the two editions.

-- Chunk intervals for a district of 148 communities (500,000 devices) on a server
-- with 64 GiB of memory: the chunks being written, heap and indexes, fit in a
-- quarter of it (bench/lifecycle.py measures; twin.lifecycle.chunk_intervals
-- chooses). They apply to chunks created from now on; existing chunks keep theirs.
SELECT set_chunk_time_interval('reading', interval '6 hours');
SELECT set_chunk_time_interval('event', interval '3 days');
SELECT set_chunk_time_interval('staff_position', interval '3 days');

-- Which hours changed since the job last ran: readings received since then. Rows
-- are appended in the order they arrive, so a BRIN index on received_at is tiny and
-- lets the job skip every block (and every old chunk) received before its mark.
CREATE INDEX reading_received_brin ON reading USING brin (received_at)
    WITH (autosummarize = on);

-- Hourly rollups of numeric readings (text readings have none): samples, sum, min,
-- max, so that wider buckets combine exactly (mean = sum_value / samples).
-- On the timescale edition (the timescaledb-ha image) a continuous aggregate that
-- the server refreshes itself; on the apache edition a hypertable of the same
-- columns that `twin db lifecycle` refreshes.
DO $lifecycle$
BEGIN
    IF current_setting('timescaledb.license', true) = 'timescale' THEN
        EXECUTE $cagg$
            CREATE MATERIALIZED VIEW reading_hourly
            WITH (timescaledb.continuous, timescaledb.materialized_only = true) AS
            SELECT time_bucket(interval '1 hour', time) AS bucket, device_id, metric,
                   count(value) AS samples, sum(value) AS sum_value,
                   min(value) AS min_value, max(value) AS max_value
              FROM reading
             WHERE value IS NOT NULL
             GROUP BY time_bucket(interval '1 hour', time), device_id, metric
            WITH NO DATA
        $cagg$;
    ELSE
        CREATE TABLE reading_hourly (
            bucket     timestamptz NOT NULL,
            device_id  text NOT NULL,
            metric     text NOT NULL,
            samples    bigint NOT NULL CHECK (samples > 0),
            sum_value  double precision NOT NULL,
            min_value  double precision NOT NULL,
            max_value  double precision NOT NULL
        );
        -- No index on bucket alone: readers ask for a device's metric over a range (the
        -- key), and the job drops whole chunks.
        PERFORM create_hypertable('reading_hourly', 'bucket',
                                  chunk_time_interval => interval '1 day',
                                  create_default_indexes => false);
        CREATE UNIQUE INDEX reading_hourly_key ON reading_hourly (device_id, metric, bucket);
    END IF;
END
$lifecycle$;

-- Where the job stands, per rollup.
-- marked_at  readings received from (marked_at - an hour) on may lie in hours not
--            yet rolled up; older ones are all in the rollup
-- raw_from   raw readings before this were dropped: an hour before it holds only
--            readings that arrived after the drop, which the job adds to the rollup
--            (and removes) rather than recomputing the hour from them alone
CREATE TABLE lifecycle_state (
    rollup     text PRIMARY KEY,
    marked_at  timestamptz,
    raw_from   timestamptz,
    ran_at     timestamptz NOT NULL
);
