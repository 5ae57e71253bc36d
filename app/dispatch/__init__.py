"""Campaign dispatch: the Dramatiq broker, actors, WhatsApp providers, quota and locks."""
