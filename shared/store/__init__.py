"""Table Storage adapters (one module per table; ciphertext only, never plaintext grants)."""
