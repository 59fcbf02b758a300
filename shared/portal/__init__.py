"""The "My connections" portal: a person's own sign-in (OpenID Connect) and their
connections, through the connections service."""
