-- Closed months (contract section 5, "Closing a month"): each one's invoice as it was at the
-- close, stored, never recomputed. `invoice` is the whole chargeback (lines, tenants, fleet,
-- the corrections of earlier months billed in it) as JSON text, kept byte for byte (json, not
-- jsonb); `figures` each tenant's own cents for the month (key "" for the unallocated idle) and
-- `corrections` the corrections it bills (of earlier closed months), both for the correction
-- arithmetic without reading whole invoices.
CREATE TABLE closed_periods (
    period      text        PRIMARY KEY CHECK (period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    invoice_id  text        NOT NULL UNIQUE,
    closed_at   timestamptz NOT NULL,
    closed_by   text        NOT NULL,
    total_cost  numeric     NOT NULL,
    figures     json        NOT NULL,
    corrections json        NOT NULL,
    invoice     json        NOT NULL
);

-- Every reopening of a closed month, with the invoice it withdrew: the audit trail.
CREATE TABLE period_reopenings (
    period      text        NOT NULL,
    invoice_id  text        NOT NULL,
    closed_at   timestamptz NOT NULL,
    closed_by   text        NOT NULL,
    total_cost  numeric     NOT NULL,
    invoice     json        NOT NULL,
    reopened_at timestamptz NOT NULL DEFAULT now(),
    reopened_by text        NOT NULL DEFAULT current_user,
    reason      text        NOT NULL CHECK (length(reason) > 0)
);

-- A closed month cannot be changed, and removed only by `gpuledger period reopen` (database
-- access, not the API), which gives a reason in the transaction's gpuledger.reopen_reason: the
-- invoice then moves to period_reopenings.
CREATE FUNCTION closed_periods_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    reason text := current_setting('gpuledger.reopen_reason', true);
BEGIN
    IF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION 'closed month % is immutable (its invoice % is final)', OLD.period, OLD.invoice_id;
    END IF;
    IF reason IS NULL OR reason = '' THEN
        RAISE EXCEPTION 'closed month % can only be reopened with gpuledger period reopen (a reason is recorded)', OLD.period;
    END IF;
    INSERT INTO period_reopenings (period, invoice_id, closed_at, closed_by, total_cost, invoice, reason)
    VALUES (OLD.period, OLD.invoice_id, OLD.closed_at, OLD.closed_by, OLD.total_cost, OLD.invoice, reason);
    RETURN OLD;
END $$;

CREATE TRIGGER closed_periods_guard BEFORE UPDATE OR DELETE ON closed_periods
FOR EACH ROW EXECUTE FUNCTION closed_periods_guard();

CREATE FUNCTION period_reopenings_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the reopening audit trail is append-only';
END $$;

CREATE TRIGGER period_reopenings_guard BEFORE UPDATE OR DELETE ON period_reopenings
FOR EACH ROW EXECUTE FUNCTION period_reopenings_guard();
