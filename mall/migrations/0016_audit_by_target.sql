-- 0016: the audit trail found by what it is about ("who touched order 123?"): the question
-- an operator asks of it, and the one `verify` asks for every order staff moved.  Without
-- it, PostgreSQL planned that check as a scan of the whole trail per order and took 22 s
-- after a late-night run (18,000 orders, as many audit rows).
CREATE INDEX audit_log_by_target ON audit_log (target_type, target_id, action);
