"""Herald: a GraphQL backend for WhatsApp broadcast campaigns."""

__version__ = "0.1.0"
