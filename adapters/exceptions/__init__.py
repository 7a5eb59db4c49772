"""The exception workbench: everything stuck, from every source, in one list.

Why a package of readers rather than a table of its own: each source already keeps its own
truth (dead letters, held deliveries, match reviews, the quote-to-cash process, the ERP
view of invoices), and a copy would drift from it. The workbench reads them as they are,
gives each stuck thing a stable opaque id, a reason and the actions it allows, and hands an
action to the operation that already exists for it; only who did what, and when, is its
own (``concord_exception_actions``), and that shows in the object's lineage too.
"""
