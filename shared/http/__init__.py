"""HTTP adapters: one Blueprint per area, plus the pieces every adapter shares."""
