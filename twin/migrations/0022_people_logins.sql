-- Residents and their families log in too: a resident to their own household's app
-- (by phone number), a family member to the care status of one special-care resident.
-- Both are bound to a community and to the resident they act for or look after.
ALTER TABLE app_user ADD COLUMN resident_id text REFERENCES resident ON DELETE CASCADE;
ALTER TABLE app_user DROP CONSTRAINT app_user_role_check;
ALTER TABLE app_user ADD CONSTRAINT app_user_role_check CHECK (role IN (
    'admin', 'operator', 'grid_worker', 'planner', 'resident', 'family'));
ALTER TABLE app_user ADD CONSTRAINT app_user_people_check CHECK (
    role NOT IN ('resident', 'family')
    OR (resident_id IS NOT NULL AND community_id IS NOT NULL));
CREATE INDEX app_user_resident_idx ON app_user (resident_id) WHERE resident_id IS NOT NULL;
