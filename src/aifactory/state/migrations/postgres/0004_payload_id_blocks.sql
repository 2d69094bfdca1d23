-- Schema version 4: payload ids are handed out in blocks of 64 (a process takes one with
-- nextval and numbers its payloads from it), so a stage commit's INSERT INTO payloads needs
-- no answer from the server and the whole commit can go out as one pipeline.
ALTER TABLE payloads ALTER COLUMN id SET INCREMENT BY 64;
