"""The WhatsApp Business Account's message templates: sync, status changes, sendability."""
