-- Schema version 4: on PostgreSQL, payload ids are handed out in blocks (so a stage commit
-- can go out as one pipeline). SQLite runs in process, where the INSERT's answer costs
-- nothing: its ids stay as they are. Kept so both backends count versions alike.
SELECT 1;
