-- Ingest wrote event attrs through a binary COPY as a JSON *string* holding
-- the object's text ('"{\"session\": ...}"'), which attrs->>'session' cannot
-- read (fixed in ingest/writer.py). Turn such strings back into the objects
-- they spell; rows already holding objects are left alone.
UPDATE event SET attrs = (attrs #>> '{}')::jsonb
WHERE jsonb_typeof(attrs) = 'string' AND left(attrs #>> '{}', 1) = '{';
