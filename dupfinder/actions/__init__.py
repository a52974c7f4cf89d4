"""Acting on duplicates: plan (which copy stays), apply (verify, act, journal), undo."""
