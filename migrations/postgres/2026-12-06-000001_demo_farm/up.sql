-- The demo farm (`printfarm serve --demo`): one per server, in one organization. Its user owns
-- the virtual printers, the sample files and the jobs, so removing the demo deletes exactly
-- what it made (the row goes with the user).
CREATE TABLE demo_farm (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    user_id BIGINT NOT NULL UNIQUE REFERENCES users(id) ON DELETE CASCADE,
    organization_id BIGINT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL
);
