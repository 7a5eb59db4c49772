"""The ERP's view of the canonical data (customers today; orders, invoices and payments next)."""
