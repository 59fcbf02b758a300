"""Send email with options: mail whose links let the recipient choose one answer, delivered
to the caller's callback URL (Office 365 Outlook's "Send email with options")."""
