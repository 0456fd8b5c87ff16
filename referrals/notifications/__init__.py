"""In-app messages to a user or to everyone in an organisation."""
