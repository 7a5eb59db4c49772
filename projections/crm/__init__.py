"""The CRM view: accounts with their hierarchy, and opportunities with order milestones."""
