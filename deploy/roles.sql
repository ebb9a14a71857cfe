-- Least privilege for inbox (docs/deploy.md, "Database roles"): an owner
-- role that runs the migrations and owns every table, and an app role that
-- serve, work, reconcile and accounts run as, with only what they need:
-- reading and writing rows (the messages, River's jobs, queues and leader,
-- the accounts), River's and inbox's functions, LISTEN and NOTIFY. The app
-- role cannot create, alter or drop anything.
--
-- Run it once, as a superuser (or the database's owner with CREATEROLE),
-- connected to the service's database, before its first `inbox migrate up`:
--
--   psql -v owner=inbox_owner -v app=inbox_app -d inbox -f deploy/roles.sql
--
-- then give each role a password (\password inbox_owner, \password
-- inbox_app) and use them in DATABASE_URL: the owner's for `inbox migrate`,
-- the app's for everything else. The test TestLeastPrivilegedRoleRunsTheService
-- applies this file.

CREATE ROLE :"owner" LOGIN;
CREATE ROLE :"app" LOGIN;

-- Only the owner creates in the schema (PostgreSQL 15 and later revoke it
-- from everyone by default; earlier versions grant it to PUBLIC).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO :"owner";
GRANT USAGE ON SCHEMA public TO :"app";

-- Whatever the owner's migrations create, now and in later releases, the
-- app may read and write, and no more (no TRUNCATE, REFERENCES, TRIGGER).
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT EXECUTE ON FUNCTIONS TO :"app";
