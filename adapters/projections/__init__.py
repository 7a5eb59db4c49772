"""Running the read models of ``projections/`` on PostgreSQL: tracking, runner, status."""
