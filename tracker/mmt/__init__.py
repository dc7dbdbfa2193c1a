"""Map My Tracks API v3: OAuth 2 tokens, login, and the activity client."""
