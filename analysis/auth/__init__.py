"""Identity: local accounts (argon2-hashed passwords), sign-in, demo accounts."""
