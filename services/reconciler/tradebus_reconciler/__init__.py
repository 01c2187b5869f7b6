"""reconciler: compares the ledger with the venue and reports differences."""
