-- Budgets: a limit on a tenant's (or, tenant NULL, the fleet's) spend over a calendar period in
-- UTC. Only the definition is stored: spend is always summed from the ledger for the period, so
-- there are no counters to keep or reset.
CREATE TABLE budgets (
    name        text        PRIMARY KEY,
    tenant      text,
    period      text        NOT NULL CHECK (period IN ('monthly', 'quarterly', 'yearly')),
    amount_usd  numeric     NOT NULL CHECK (amount_usd > 0),
    thresholds  numeric[]   NOT NULL,
    basis       text        NOT NULL CHECK (basis IN ('usage', 'total')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX budgets_tenant ON budgets (tenant);
