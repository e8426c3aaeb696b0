"""The DuckDB contract (../shared/design.md): every table's schema lives here and only here.

Migrations are named and recorded in `schema_migrations`; never edit one that has shipped,
add a new one. Money is DECIMAL(18,2); timestamps are TIMESTAMPTZ in UTC.
"""
from __future__ import annotations

MONEY = "DECIMAL(18,2)"

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_core",
        """
        CREATE TABLE IF NOT EXISTS connections (
            tenant_id       VARCHAR PRIMARY KEY,
            tenant_name     VARCHAR,
            tenant_type     VARCHAR,            -- Xero's value: ORGANISATION, PRACTICEMANAGER, ...
            connection_id   VARCHAR,            -- Xero's connection id (for DELETE /connections/{id})
            auth_event_id   VARCHAR,
            status          VARCHAR NOT NULL,   -- connected | needs_reconnect | disconnected
            status_reason   VARCHAR,
            xpm_enabled     BOOLEAN DEFAULT FALSE,
            tier_note       VARCHAR,            -- e.g. why Journals/XPM are refused on this plan
            created_at      TIMESTAMPTZ,
            connected_at    TIMESTAMPTZ,
            updated_at      TIMESTAMPTZ,
            disconnected_at TIMESTAMPTZ,
            last_sync_at    TIMESTAMPTZ
        );
        CREATE TABLE IF NOT EXISTS sync_log (
            sync_id          VARCHAR PRIMARY KEY,
            run_id           VARCHAR,           -- groups the steps of one sync_all
            tenant_id        VARCHAR,
            sync_type        VARCHAR NOT NULL,  -- pnl | invoices | bank | contacts | journals | xpm | webhook | ...
            period_start     DATE,
            period_end       DATE,
            status           VARCHAR NOT NULL,  -- running | success | failed | partial | skipped
            rows             INTEGER DEFAULT 0,
            api_calls        INTEGER DEFAULT 0,
            bytes_downloaded BIGINT DEFAULT 0,
            error            VARCHAR,
            trigger          VARCHAR,           -- manual | scheduler | webhook | cli
            started_at       TIMESTAMPTZ,
            finished_at      TIMESTAMPTZ,
            detail           JSON
        );
        CREATE TABLE IF NOT EXISTS sync_cursors (
            tenant_id    VARCHAR NOT NULL,
            resource     VARCHAR NOT NULL,      -- invoices | contacts | journals | ...
            cursor_value VARCHAR,
            updated_at   TIMESTAMPTZ,
            PRIMARY KEY (tenant_id, resource)
        );
        """,
    ),
    (
        "0002_financial",
        f"""
        CREATE TABLE IF NOT EXISTS accounts (
            tenant_id VARCHAR NOT NULL, account_id VARCHAR NOT NULL,
            code VARCHAR, name VARCHAR, type VARCHAR, class VARCHAR, status VARCHAR,
            bank_account_type VARCHAR, currency_code VARCHAR, updated_at TIMESTAMPTZ,
            raw JSON, synced_at TIMESTAMPTZ,
            PRIMARY KEY (tenant_id, account_id)
        );
        CREATE TABLE IF NOT EXISTS financial_weekly (
            tenant_id VARCHAR NOT NULL, week_ending DATE NOT NULL, week_start DATE,
            income {MONEY}, cost_of_sales {MONEY}, gross_profit {MONEY}, other_income {MONEY},
            operating_expenses {MONEY}, net_profit {MONEY},
            data_source VARCHAR DEFAULT 'xero_api', synced_at TIMESTAMPTZ,
            PRIMARY KEY (tenant_id, week_ending)
        );
        CREATE TABLE IF NOT EXISTS pnl_lines (
            tenant_id VARCHAR NOT NULL, week_ending DATE NOT NULL, account_id VARCHAR NOT NULL,
            section VARCHAR,        -- income | cost_of_sales | other_income | operating_expenses
            account_code VARCHAR, account_name VARCHAR, account_type VARCHAR,
            amount {MONEY},
            data_source VARCHAR DEFAULT 'xero_api', synced_at TIMESTAMPTZ,
            PRIMARY KEY (tenant_id, week_ending, account_id)
        );
        CREATE TABLE IF NOT EXISTS revenue_weekly (
            tenant_id VARCHAR NOT NULL, week_ending DATE NOT NULL,
            region VARCHAR NOT NULL, revenue_type VARCHAR NOT NULL,
            invoice_count INTEGER, subtotal {MONEY}, total_tax {MONEY}, total {MONEY},
            data_source VARCHAR DEFAULT 'xero_api', synced_at TIMESTAMPTZ,
            PRIMARY KEY (tenant_id, week_ending, region, revenue_type)
        );
        CREATE TABLE IF NOT EXISTS cash_position_weekly (
            tenant_id VARCHAR NOT NULL, week_ending DATE NOT NULL, bank_account_id VARCHAR NOT NULL,
            bank_account_name VARCHAR,
            opening {MONEY}, received {MONEY}, spent {MONEY}, closing {MONEY},
            data_source VARCHAR DEFAULT 'xero_api', synced_at TIMESTAMPTZ,
            PRIMARY KEY (tenant_id, week_ending, bank_account_id)
        );
        CREATE TABLE IF NOT EXISTS invoices (
            tenant_id VARCHAR NOT NULL, invoice_id VARCHAR NOT NULL,
            invoice_number VARCHAR, type VARCHAR, contact_id VARCHAR, contact_name VARCHAR,
            date DATE, due_date DATE, status VARCHAR, currency_code VARCHAR, currency_rate DECIMAL(18,6),
            line_amount_types VARCHAR, reference VARCHAR,
            subtotal {MONEY}, total_tax {MONEY}, total {MONEY}, amount_due {MONEY}, amount_paid {MONEY},
            amount_credited {MONEY},
            updated_at TIMESTAMPTZ, raw JSON, synced_at TIMESTAMPTZ,
            PRIMARY KEY (tenant_id, invoice_id)
        );
        CREATE TABLE IF NOT EXISTS invoice_lines (
            tenant_id VARCHAR NOT NULL, line_item_id VARCHAR NOT NULL, invoice_id VARCHAR NOT NULL,
            line_no INTEGER, account_code VARCHAR, description VARCHAR,
            quantity DECIMAL(18,4), unit_amount DECIMAL(18,4), line_amount {MONEY}, tax_amount {MONEY},
            region VARCHAR, revenue_type VARCHAR, tracking JSON, synced_at TIMESTAMPTZ,
            PRIMARY KEY (tenant_id, line_item_id)
        );
        CREATE TABLE IF NOT EXISTS journal_lines (
            tenant_id VARCHAR NOT NULL, journal_line_id VARCHAR NOT NULL,
            journal_id VARCHAR, journal_number BIGINT, journal_date DATE, created_at TIMESTAMPTZ,
            source_type VARCHAR, source_id VARCHAR, reference VARCHAR,
            account_id VARCHAR, account_code VARCHAR, account_type VARCHAR, account_name VARCHAR,
            description VARCHAR, net_amount {MONEY}, gross_amount {MONEY}, tax_amount {MONEY},
            tax_type VARCHAR, tracking JSON, synced_at TIMESTAMPTZ,
            PRIMARY KEY (tenant_id, journal_line_id)
        );
        CREATE TABLE IF NOT EXISTS pnl_tieout_weekly (
            tenant_id VARCHAR NOT NULL, week_ending DATE NOT NULL,
            report_net_profit {MONEY}, journal_net_profit {MONEY}, difference {MONEY},
            flagged BOOLEAN, note VARCHAR, synced_at TIMESTAMPTZ,
            PRIMARY KEY (tenant_id, week_ending)
        );
        CREATE TABLE IF NOT EXISTS contacts (
            tenant_id VARCHAR NOT NULL, contact_id VARCHAR NOT NULL,
            name VARCHAR, first_name VARCHAR, last_name VARCHAR, email VARCHAR, status VARCHAR,
            is_customer BOOLEAN, is_supplier BOOLEAN, merged_to_contact_id VARCHAR,
            updated_at TIMESTAMPTZ, raw JSON, synced_at TIMESTAMPTZ,
            PRIMARY KEY (tenant_id, contact_id)
        );
        """,
    ),
    (
        "0003_practice",
        """
        CREATE TABLE IF NOT EXISTS clients (
            client_id        VARCHAR PRIMARY KEY,
            name             VARCHAR NOT NULL,
            email            VARCHAR,
            phone            VARCHAR,
            tenant_id        VARCHAR,           -- the organisation whose contact this client matches
            xero_contact_id  VARCHAR,
            xpm_client_id    VARCHAR,
            match_status     VARCHAR,           -- matched | unmatched | ambiguous
            match_method     VARCHAR,           -- id | email | name | manual
            archived         BOOLEAN DEFAULT FALSE,
            source           VARCHAR,           -- manual | csv | xero
            edited_fields    JSON,              -- {"email": "2026-11-26T10:00:00Z", ...}
            created_at       TIMESTAMPTZ,
            updated_at       TIMESTAMPTZ
        );
        CREATE TABLE IF NOT EXISTS client_match_candidates (
            client_id VARCHAR NOT NULL, tenant_id VARCHAR NOT NULL, contact_id VARCHAR NOT NULL,
            reason VARCHAR, created_at TIMESTAMPTZ,
            PRIMARY KEY (client_id, tenant_id, contact_id)
        );
        CREATE TABLE IF NOT EXISTS client_documents (
            document_id      VARCHAR PRIMARY KEY,
            client_id        VARCHAR NOT NULL,
            tenant_id        VARCHAR,
            file_name        VARCHAR NOT NULL,
            mime_type        VARCHAR,
            size_bytes       BIGINT,
            sha256           VARCHAR,
            storage_path     VARCHAR,
            status           VARCHAR NOT NULL,  -- pending | pushed | failed | skipped
            error            VARCHAR,
            attempts         INTEGER DEFAULT 0,
            idempotency_key  VARCHAR,
            xero_folder_id   VARCHAR,
            xero_file_id     VARCHAR,
            associated       BOOLEAN DEFAULT FALSE,
            created_at       TIMESTAMPTZ,
            updated_at       TIMESTAMPTZ,
            pushed_at        TIMESTAMPTZ
        );
        CREATE TABLE IF NOT EXISTS xpm_jobs (
            tenant_id VARCHAR NOT NULL, job_id VARCHAR NOT NULL,
            name VARCHAR, description VARCHAR, client_id VARCHAR, client_name VARCHAR,
            state VARCHAR, job_type VARCHAR, start_date DATE, due_date DATE, completed_date DATE,
            ledgerlink_client_id VARCHAR, raw VARCHAR, synced_at TIMESTAMPTZ,
            PRIMARY KEY (tenant_id, job_id)
        );
        CREATE TABLE IF NOT EXISTS xpm_status_mappings (
            tenant_id VARCHAR NOT NULL, state VARCHAR NOT NULL,
            needs_documents BOOLEAN NOT NULL DEFAULT TRUE, updated_at TIMESTAMPTZ,
            PRIMARY KEY (tenant_id, state)
        );
        CREATE TABLE IF NOT EXISTS chase_campaigns (
            campaign_id       VARCHAR PRIMARY KEY,
            tenant_id         VARCHAR NOT NULL,
            client_id         VARCHAR,           -- ledgerlink client (clients.client_id)
            xpm_client_id     VARCHAR,
            job_id            VARCHAR NOT NULL,
            job_state         VARCHAR,
            status            VARCHAR NOT NULL,  -- open | completed
            opened_at         TIMESTAMPTZ,
            completed_at      TIMESTAMPTZ,
            completion_reason VARCHAR
        );
        CREATE TABLE IF NOT EXISTS webhook_events (
            event_key       VARCHAR PRIMARY KEY, -- sha256(tenantId|category|type|resourceId|eventDateUtc)
            tenant_id       VARCHAR,
            tenant_type     VARCHAR,
            event_category  VARCHAR,
            event_type      VARCHAR,
            resource_id     VARCHAR,
            event_date_utc  TIMESTAMPTZ,
            received_at     TIMESTAMPTZ,
            status          VARCHAR NOT NULL,    -- pending | processed | failed | ignored
            attempts        INTEGER DEFAULT 0,
            error           VARCHAR,
            processed_at    TIMESTAMPTZ,
            payload         JSON
        );
        """,
    ),
    (
        # Jobs that leave job.api/current (completed, deleted) stay as history with their last
        # known state; is_current tells the live list apart without refetching them every night.
        "0020_practice_xpm_current",
        """
        ALTER TABLE xpm_jobs ADD COLUMN IF NOT EXISTS is_current BOOLEAN DEFAULT TRUE;
        """,
    ),
    (
        # Credit notes (issue 13 §2): stored like invoices; revenue_weekly is net of sales credit
        # notes and counts them apart from invoices (credit_note_count).
        "0031_credit_notes",
        f"""
        CREATE TABLE IF NOT EXISTS credit_notes (
            tenant_id VARCHAR NOT NULL, credit_note_id VARCHAR NOT NULL,
            credit_note_number VARCHAR, type VARCHAR, contact_id VARCHAR, contact_name VARCHAR,
            date DATE, status VARCHAR, currency_code VARCHAR, currency_rate DECIMAL(18,6),
            line_amount_types VARCHAR, reference VARCHAR,
            subtotal {MONEY}, total_tax {MONEY}, total {MONEY}, remaining_credit {MONEY},
            amount_allocated {MONEY}, amount_refunded {MONEY}, fully_paid_on_date DATE,
            updated_at TIMESTAMPTZ, raw JSON, synced_at TIMESTAMPTZ,
            PRIMARY KEY (tenant_id, credit_note_id)
        );
        CREATE TABLE IF NOT EXISTS credit_note_lines (
            tenant_id VARCHAR NOT NULL, line_item_id VARCHAR NOT NULL, credit_note_id VARCHAR NOT NULL,
            line_no INTEGER, account_code VARCHAR, description VARCHAR,
            quantity DECIMAL(18,4), unit_amount DECIMAL(18,4), line_amount {MONEY}, tax_amount {MONEY},
            region VARCHAR, revenue_type VARCHAR, tracking JSON, synced_at TIMESTAMPTZ,
            PRIMARY KEY (tenant_id, line_item_id)
        );
        ALTER TABLE revenue_weekly ADD COLUMN IF NOT EXISTS credit_note_count INTEGER DEFAULT 0;
        """,
    ),
    (
        # Documents are pushed by every sync too, retried with exponential backoff: when the next
        # attempt is due (NULL = now), and when the last one ran. Status gains `gave_up`.
        "0032_clients_document_retries",
        """
        ALTER TABLE client_documents ADD COLUMN IF NOT EXISTS next_attempt_at TIMESTAMPTZ;
        ALTER TABLE client_documents ADD COLUMN IF NOT EXISTS last_attempt_at TIMESTAMPTZ;
        """,
    ),
    (
        # What each stored report week was made from (a hash of the mapped report): a daily sync
        # refetches the current weeks and rewrites them only when Xero's figures moved.
        "0033_report_fingerprints",
        """
        CREATE TABLE IF NOT EXISTS report_fingerprints (
            tenant_id VARCHAR NOT NULL, report VARCHAR NOT NULL, week_ending DATE NOT NULL,
            fingerprint VARCHAR NOT NULL, synced_at TIMESTAMPTZ,
            PRIMARY KEY (tenant_id, report, week_ending)
        );
        """,
    ),
    (
        # Issue 23 §2: the organisation itself (GET /Organisation), read at connect and on each sync.
        # `timezone` is the IANA name mapped from Xero's Timezone value (kept as `xero_timezone`);
        # `updated_at` is when Ledgerlink stored a changed version (Xero's Organisation has no
        # UpdatedDateUTC), `digest` what it was made from, so an unchanged read writes nothing.
        "0050_organisations",
        """
        CREATE TABLE IF NOT EXISTS organisations (
            tenant_id VARCHAR PRIMARY KEY, organisation_id VARCHAR, name VARCHAR, legal_name VARCHAR,
            base_currency VARCHAR, country_code VARCHAR, timezone VARCHAR, xero_timezone VARCHAR,
            financial_year_end_month INTEGER, financial_year_end_day INTEGER, short_code VARCHAR,
            organisation_type VARCHAR, sales_tax_basis VARCHAR, version VARCHAR, digest VARCHAR,
            updated_at TIMESTAMPTZ, raw JSON, synced_at TIMESTAMPTZ
        );
        """,
    ),
    (
        # Issue 23 §1: every weekly amount is in the base currency. Documents keep their own currency,
        # rate and amounts and gain the base amounts beside them (amount / CurrencyRate, per line, to
        # the cent). Stored base-currency documents are copied across as they are; a foreign one is
        # marked unread (updated_at NULL) and its tenant's document cursors dropped, so the next sync
        # fetches it again, converts it line by line and rebuilds the weeks it falls in.
        "0051_base_currency_amounts",
        f"""
        ALTER TABLE invoices ADD COLUMN IF NOT EXISTS base_subtotal {MONEY};
        ALTER TABLE invoices ADD COLUMN IF NOT EXISTS base_total_tax {MONEY};
        ALTER TABLE invoices ADD COLUMN IF NOT EXISTS base_total {MONEY};
        ALTER TABLE credit_notes ADD COLUMN IF NOT EXISTS base_subtotal {MONEY};
        ALTER TABLE credit_notes ADD COLUMN IF NOT EXISTS base_total_tax {MONEY};
        ALTER TABLE credit_notes ADD COLUMN IF NOT EXISTS base_total {MONEY};
        ALTER TABLE invoice_lines ADD COLUMN IF NOT EXISTS base_line_amount {MONEY};
        ALTER TABLE invoice_lines ADD COLUMN IF NOT EXISTS base_tax_amount {MONEY};
        ALTER TABLE credit_note_lines ADD COLUMN IF NOT EXISTS base_line_amount {MONEY};
        ALTER TABLE credit_note_lines ADD COLUMN IF NOT EXISTS base_tax_amount {MONEY};
        UPDATE invoices SET base_subtotal = subtotal, base_total_tax = total_tax, base_total = total;
        UPDATE credit_notes SET base_subtotal = subtotal, base_total_tax = total_tax, base_total = total;
        UPDATE invoice_lines SET base_line_amount = line_amount, base_tax_amount = tax_amount;
        UPDATE credit_note_lines SET base_line_amount = line_amount, base_tax_amount = tax_amount;
        DELETE FROM sync_cursors WHERE resource IN ('invoices', 'invoices#mark', 'credit_notes', 'credit_notes#mark')
            AND tenant_id IN (SELECT tenant_id FROM invoices WHERE currency_rate NOT IN (0, 1)
                              UNION SELECT tenant_id FROM credit_notes WHERE currency_rate NOT IN (0, 1));
        UPDATE invoices SET updated_at = NULL WHERE currency_rate NOT IN (0, 1);
        UPDATE credit_notes SET updated_at = NULL WHERE currency_rate NOT IN (0, 1);
        """,
    ),
    (
        # Issue 23 §4: the tie-out says why a week differs. `explained` when every account's
        # difference has a cause found; `cause` the sentence; `causes` per account (JSON list of
        # {account_id, account_code, account_name, difference, cause}); `flagged` = not explained.
        "0052_tieout_causes",
        """
        ALTER TABLE pnl_tieout_weekly ADD COLUMN IF NOT EXISTS explained BOOLEAN;
        ALTER TABLE pnl_tieout_weekly ADD COLUMN IF NOT EXISTS cause VARCHAR;
        ALTER TABLE pnl_tieout_weekly ADD COLUMN IF NOT EXISTS causes JSON;
        """,
    ),
    (
        # Issue 25: each connected organisation's role. The practice ledger (the practice's own books:
        # its customers are its clients, its Xero Files receive client documents) or a client
        # organisation (a client's books, synced for its figures), linked to the practice client it
        # belongs to once an admin confirms it. Clients an earlier version imported from a client
        # organisation are taken out when the roles are set, and each removal is kept here to be reported.
        "0070_connection_roles",
        """
        ALTER TABLE connections ADD COLUMN IF NOT EXISTS role VARCHAR;  -- practice-ledger | client-organisation
        ALTER TABLE connections ADD COLUMN IF NOT EXISTS practice_client_id VARCHAR;  -- clients.client_id
        ALTER TABLE connections ADD COLUMN IF NOT EXISTS practice_client_method VARCHAR;  -- name | tax_number | email | manual
        ALTER TABLE connections ADD COLUMN IF NOT EXISTS practice_client_at TIMESTAMPTZ;
        CREATE TABLE IF NOT EXISTS client_removals (
            client_id       VARCHAR PRIMARY KEY,
            name            VARCHAR,
            email           VARCHAR,
            tenant_id       VARCHAR,           -- the client organisation it had been imported from
            tenant_name     VARCHAR,
            xero_contact_id VARCHAR,
            reason          VARCHAR,
            removed_at      TIMESTAMPTZ,
            acknowledged_at TIMESTAMPTZ        -- NULL until an admin has seen the report
        );
        """,
    ),
    (
        # Chasing that chases (issue 25 §3): a cadence and "what is needed" per mapped state, each
        # practice's templates and sending hours, campaigns that pause or stop by themselves, and the
        # outbox: every reminder recorded (rendered) before it is sent, with its state and attempts.
        "0075_chase_outbox",
        """
        ALTER TABLE xpm_status_mappings ADD COLUMN IF NOT EXISTS cadence VARCHAR;
        ALTER TABLE xpm_status_mappings ADD COLUMN IF NOT EXISTS needed VARCHAR;
        ALTER TABLE chase_campaigns ADD COLUMN IF NOT EXISTS cadence VARCHAR;
        ALTER TABLE chase_campaigns ADD COLUMN IF NOT EXISTS next_reminder_at TIMESTAMPTZ;
        ALTER TABLE chase_campaigns ADD COLUMN IF NOT EXISTS paused_at TIMESTAMPTZ;
        ALTER TABLE chase_campaigns ADD COLUMN IF NOT EXISTS resumed_at TIMESTAMPTZ;
        ALTER TABLE chase_campaigns ADD COLUMN IF NOT EXISTS stopped_at TIMESTAMPTZ;
        ALTER TABLE chase_campaigns ADD COLUMN IF NOT EXISTS stop_reason VARCHAR;
        CREATE TABLE IF NOT EXISTS chase_settings (
            tenant_id        VARCHAR PRIMARY KEY,  -- the Practice Manager tenant
            subject_template VARCHAR,
            body_template    VARCHAR,
            reply_to         VARCHAR,
            send_from        VARCHAR,              -- HH:MM local: quiet hours end
            send_until       VARCHAR,              -- HH:MM local: quiet hours start
            timezone         VARCHAR,              -- IANA; NULL: XERO_TIMEZONE
            updated_at       TIMESTAMPTZ
        );
        CREATE TABLE IF NOT EXISTS chase_outbox (
            reminder_id  VARCHAR PRIMARY KEY,
            campaign_id  VARCHAR NOT NULL,
            tenant_id    VARCHAR NOT NULL,
            client_id    VARCHAR,
            seq          INTEGER NOT NULL,        -- the cadence slot (0: at once); -1.. for "send now"
            address      VARCHAR,
            subject      VARCHAR,
            body         VARCHAR,
            reply_to     VARCHAR,
            message_id   VARCHAR NOT NULL,        -- fixed before the first attempt, the same on every one
            state        VARCHAR NOT NULL,        -- due | sending | sent | failed | bounced | skipped | unconfirmed
            why          VARCHAR,
            attempts     INTEGER DEFAULT 0,
            due_at       TIMESTAMPTZ,
            next_try_at  TIMESTAMPTZ,
            forced       BOOLEAN DEFAULT FALSE,   -- "send now": not held by quiet hours
            claimed_by   VARCHAR,                 -- pid:start time of the process sending it
            claimed_at   TIMESTAMPTZ,
            handed_at    TIMESTAMPTZ,             -- the message's last byte was about to go to the server
            sent_at      TIMESTAMPTZ,
            smtp_reply   VARCHAR,
            created_at   TIMESTAMPTZ,
            updated_at   TIMESTAMPTZ
        );
        CREATE UNIQUE INDEX IF NOT EXISTS chase_outbox_slot ON chase_outbox (campaign_id, seq);
        """,
    ),
]

TABLES = (
    "connections", "sync_log", "sync_cursors", "accounts", "financial_weekly", "pnl_lines",
    "revenue_weekly", "cash_position_weekly", "invoices", "invoice_lines", "journal_lines",
    "pnl_tieout_weekly", "contacts", "clients", "client_match_candidates", "client_documents",
    "xpm_jobs", "xpm_status_mappings", "chase_campaigns", "webhook_events", "credit_notes", "credit_note_lines",
    "report_fingerprints", "organisations", "client_removals", "chase_settings", "chase_outbox",
)
